"""One geogit site as real processes: storage, the internal API, the edge proxy, the SSH
gateway and the replicator.

Every site runs a replicator, the primary too: a promotion demotes the old primary to a
secondary without restarting it, and its replicator (which idles while its site is primary)
then starts following the new one. The dev stack runs one `Site` per site on the fixed ports of
`geogit.devstack.ports` (primary: edge proxy 8080, internal API 8081, storage gRPC 8082,
storage ops 8083, SSH 2222, SSH ops 8084, replicator ops 8085; secondary N: the same plus
100*N). End-to-end tests build a `Site` on a temporary directory
with `SitePorts.free()` and a fresh database, so they start exactly what the dev stack starts,
wired the same way.

With replicas (`geogit dev up --replicas 2`, `running_sites(replicas=2)`) the internal API, the
edge proxy and the SSH gateway run R processes each (`edge-proxy-1`, `edge-proxy-2`, ...) on
ports of their own, and HAProxy (`balancer`, balancer.py) takes the site's edge proxy, internal
API and SSH ports in front of them, as a Kubernetes Service would: every URL above, and every
service's own calls to the internal API, go through it. Storage and the replicator stay single.

Start order follows the dependencies: storage answers readiness without the API; the internal
API's schema is migrated before it serves, and it needs storage to create repositories; the
edge proxy and the SSH gateway are the front doors; the replicator needs the internal API
and storage, and comes last. Stop is the reverse. Every variable a service reads is set here;
inherited `GEOGIT_*` variables are dropped (except the log level) so a stray export cannot
cross-wire two sites.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from geogit.common.events import Topics
from geogit.common.geo_coordination import SiteRole
from geogit.common.net import free_port
from geogit.devstack.balancer import Backend, haproxy_binary, haproxy_config, replica_states
from geogit.devstack.credentials import SiteSecrets, UserCredentials
from geogit.devstack.ports import LOOPBACK, ReplicaPorts, SitePorts
from geogit.devstack.probes import HttpProbe
from geogit.devstack.processes import StopResult, Supervisor, log_tail

Role = SiteRole
SERVICES = ("storage", "internal-api", "edge-proxy", "ssh-gateway", "replicator")
"""Start order, on every site; stop order is the reverse."""
REPLICATED = ("internal-api", "edge-proxy", "ssh-gateway")
"""The stateless services a site may run several of, behind its balancer."""
BALANCER = "balancer"

STORAGE_NAME = "default"
_PASSED_THROUGH = frozenset({"GEOGIT_LOG_LEVEL"})
_SHUTDOWN_GRACE_SECONDS = "5"  # dev: `down` should not wait the production 30 s drain


class SiteError(RuntimeError):
    """A site could not be started, migrated or bootstrapped; the message quotes the output."""


def _numbered(service: str, replica: int) -> str:
    return f"{service}-{replica}" if replica else service


def console_script(name: str) -> str:
    """An entry point of this virtualenv (beside our interpreter), else one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SiteError(f"{name} is not installed; run `make install`")
    return found


def _base_env() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GEOGIT_") or key in _PASSED_THROUGH
    }


class Site:
    """A site's processes under one supervisor; `start()` returns once its front door is ready."""

    def __init__(
        self,
        name: str,
        role: Role,
        base_dir: Path,
        ports: SitePorts,
        database_url: str,
        kafka_bootstrap: str,
        secrets: SiteSecrets | None = None,
        supervisor: Supervisor | None = None,
        kafka_idempotent: bool = False,
        extra_env: Mapping[str, str] | None = None,
        host: str = LOOPBACK,
        primary_url: str = "",
        extra_shards: tuple[str, ...] = (),
        replica_ports: Sequence[ReplicaPorts] = (),
        topics: Topics | None = None,
    ) -> None:
        self.name = name
        self.role: Role = role
        self.base_dir = base_dir
        self.ports = ports
        self.database_url = database_url
        self.kafka_bootstrap = kafka_bootstrap
        self.secrets = secrets or SiteSecrets.generate()
        self.supervisor = supervisor or Supervisor(base_dir)
        self.kafka_idempotent = kafka_idempotent
        # Every site of a stack shares the topics and so the consumer groups named after them;
        # stacks sharing a broker (tests) each take a prefix of their own.
        self.topics = topics or Topics()
        # Tuning for tests (shorter polls and intervals); wins over everything set here.
        self.extra_env = dict(extra_env or {})
        self.host = host
        # A secondary: the primary's front door, where it proxies, catches up and fetches.
        # Empty on the primary.
        self.primary_url = primary_url
        if role == "secondary" and not primary_url:
            raise SiteError(f"{name}: a secondary needs the primary's URL")
        # More storage shards beside STORAGE_NAME (tests of storage moves): name -> (gRPC port,
        # ops port), free ones. Every site of a stack names the same shards (DESIGN §5).
        self.extra_shards = {shard: (free_port(), free_port()) for shard in extra_shards}
        # Empty: one of each service on the site's own ports, no balancer.
        self.replica_ports = list(replica_ports)
        if len(self.replica_ports) == 1:
            raise SiteError(f"{name}: one replica runs on the site's own ports; give two or more")

    # Addresses -----------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.ports.http}"

    @property
    def internal_api_url(self) -> str:
        return f"http://{self.host}:{self.ports.internal_api}"

    @property
    def storage_address(self) -> str:
        return f"{self.host}:{self.ports.storage}"

    @property
    def storage_ops_url(self) -> str:
        return f"http://{self.host}:{self.ports.storage_ops}"

    @property
    def ssh_ops_url(self) -> str:
        return f"http://{self.host}:{self.ports.ssh_ops}"

    @property
    def repositories_dir(self) -> Path:
        return self.base_dir / "sites" / self.name / "repositories"

    @property
    def storages(self) -> dict[str, str]:
        """Every shard of the site by name: GEOGIT_STORAGES of its internal API and replicator."""
        extra = {name: f"{self.host}:{grpc}" for name, (grpc, _) in self.extra_shards.items()}
        return {STORAGE_NAME: self.storage_address} | extra

    def shard_repositories_dir(self, shard: str) -> Path:
        if shard == STORAGE_NAME:
            return self.repositories_dir
        return self.base_dir / "sites" / self.name / f"repositories-{shard}"

    @property
    def host_keys_dir(self) -> Path:
        return self.base_dir / "sites" / self.name / "ssh-host-keys"

    @property
    def replicator_ops_url(self) -> str:
        return f"http://{self.host}:{self.ports.replicator_ops}"

    def listening(self) -> dict[str, int]:
        """Every port the started site binds, named (`up` checks they are free first)."""
        ports = self.ports.listening()
        if self.replica_ports:
            ports["balancer stats"] = self.ports.balancer_ops
            for replica, replica_ports in enumerate(self.replica_ports, start=1):
                ports |= replica_ports.listening(replica)
        return ports

    @property
    def replicas(self) -> int:
        return max(1, len(self.replica_ports))

    def replica_port(self, replica: int) -> ReplicaPorts:
        """Replica `replica` (1..R)'s ports; replica 0 is the unreplicated site's own."""
        if replica == 0:
            ports = self.ports
            return ReplicaPorts(ports.http, ports.internal_api, ports.ssh, ports.ssh_ops)
        return self.replica_ports[replica - 1]

    def replica_urls(self, service: str) -> list[str]:
        """The URL of each replica of `service` (its ops URL for the SSH gateway), for tests
        that ask which replica served what."""
        urls = []
        for replica in range(1 if self.replica_ports else 0, len(self.replica_ports) + 1):
            ports = self.replica_port(replica)
            port = {
                "edge-proxy": ports.http,
                "internal-api": ports.internal_api,
                "ssh-gateway": ports.ssh_ops,
            }[service]
            urls.append(f"http://{self.host}:{port}")
        return urls

    @property
    def services(self) -> tuple[str, ...]:
        if not self.replica_ports:
            return SERVICES
        numbered = [
            f"{service}-{replica}"
            for service in REPLICATED
            for replica in range(1, self.replicas + 1)
        ]
        return ("storage", BALANCER, *numbered, "replicator")

    def process_name(self, service: str) -> str:
        return f"{self.name}-{service}"

    def _replica_of(self, service: str) -> tuple[str, int]:
        """`edge-proxy-2` → ("edge-proxy", 2); an unreplicated service is replica 0."""
        if self.replica_ports:
            base, _, number = service.rpartition("-")
            if base in REPLICATED and number.isdigit() and 1 <= int(number) <= self.replicas:
                return base, int(number)
        return service, 0

    # Environment ---------------------------------------------------------------------------

    def _env(self, variables: Mapping[str, str]) -> dict[str, str]:
        return {
            **_base_env(),
            "GEOGIT_ENVIRONMENT": "development",
            "GEOGIT_SITE_NAME": self.name,
            "GEOGIT_SHUTDOWN_GRACE_SECONDS": _SHUTDOWN_GRACE_SECONDS,
            **variables,
            **self.extra_env,
        }

    def storage_env(self, shard: str = STORAGE_NAME) -> dict[str, str]:
        grpc, ops = self.extra_shards.get(shard, (self.ports.storage, self.ports.storage_ops))
        return self._env(
            {
                "GEOGIT_STORAGE_NAME": shard,
                "GEOGIT_STORAGE_ROOT": str(self.shard_repositories_dir(shard)),
                "GEOGIT_LISTEN_ADDRESS": f"{self.host}:{grpc}",
                "GEOGIT_OPS_ADDRESS": f"{self.host}:{ops}",
                "GEOGIT_STORAGE_SECRET": self.secrets.storage_secret,
                "GEOGIT_INTERNAL_API_URL": self.internal_api_url,
                "GEOGIT_INTERNAL_API_SECRET": self.secrets.internal_api_secret,
            }
        )

    def internal_api_env(self, replica: int = 0) -> dict[str, str]:
        port = self.replica_port(replica).internal_api
        return self._env(
            {
                "GEOGIT_DATABASE_URL": self.database_url,
                "GEOGIT_HTTP_ADDRESS": f"{self.host}:{port}",
                "GEOGIT_INTERNAL_API_SECRET": self.secrets.internal_api_secret,
                "GEOGIT_STORAGE_SECRET": self.secrets.storage_secret,
                "GEOGIT_STORAGES": json.dumps(self.storages),
                "GEOGIT_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
                "GEOGIT_KAFKA_IDEMPOTENT": "true" if self.kafka_idempotent else "false",
                "GEOGIT_TOPIC_PREFIX": self.topics.prefix,
                # The bootstrap role and primary (empty on the primary); after a promotion the
                # site's database holds them (DESIGN §10).
                "GEOGIT_SITE_ROLE": self.role,
                "GEOGIT_PRIMARY_URL": self.primary_url,
                "GEOGIT_EXTERNAL_URL": self.http_url,
                "GEOGIT_EXTERNAL_SSH_URL": f"ssh://git@{self.host}:{self.ports.ssh}",
                "GEOGIT_SERVICE_HEALTH_URLS": json.dumps(self.health_urls()),
                **self._geo_env(),
            }
        )

    def health_urls(self) -> dict[str, str]:
        """The readiness URL of every service but the internal API, which checks them."""
        return {
            "storage": f"{self.storage_ops_url}/-/readiness",
            "edge-proxy": f"{self.http_url}/-/readiness",
            "ssh-gateway": f"{self.ssh_ops_url}/-/readiness",
            "replicator": f"{self.replicator_ops_url}/-/readiness",
        }

    def _geo_env(self) -> dict[str, str]:
        """Every site signs its Geo tokens with its own key, the primary too: a demoted primary
        signs as a secondary at once."""
        return {"GEOGIT_GEO_PRIVATE_KEY": self.secrets.geo_private_key}

    def edge_proxy_env(self, replica: int = 0) -> dict[str, str]:
        return self._env(
            {
                "GEOGIT_HTTP_ADDRESS": f"{self.host}:{self.replica_port(replica).http}",
                "GEOGIT_INTERNAL_API_URL": self.internal_api_url,
                "GEOGIT_INTERNAL_API_SECRET": self.secrets.internal_api_secret,
            }
        )

    def ssh_gateway_env(self, replica: int = 0) -> dict[str, str]:
        ports = self.replica_port(replica)
        return self._env(
            {
                "GEOGIT_SSH_ADDRESS": f"{self.host}:{ports.ssh}",
                "GEOGIT_OPS_ADDRESS": f"{self.host}:{ports.ssh_ops}",
                "GEOGIT_HOST_KEYS_DIR": str(self.host_keys_dir),
                "GEOGIT_INTERNAL_API_URL": self.internal_api_url,
                "GEOGIT_INTERNAL_API_SECRET": self.secrets.internal_api_secret,
            }
        )

    def replicator_env(self) -> dict[str, str]:
        return self._env(
            {
                "GEOGIT_OPS_ADDRESS": f"{self.host}:{self.ports.replicator_ops}",
                "GEOGIT_INTERNAL_API_URL": self.internal_api_url,
                "GEOGIT_INTERNAL_API_SECRET": self.secrets.internal_api_secret,
                "GEOGIT_STORAGES": json.dumps(self.storages),
                "GEOGIT_STORAGE_SECRET": self.secrets.storage_secret,
                "GEOGIT_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
                "GEOGIT_KAFKA_IDEMPOTENT": "true" if self.kafka_idempotent else "false",
                "GEOGIT_TOPIC_PREFIX": self.topics.prefix,
                **self._geo_env(),
            }
        )

    # Lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start every service, wave by wave (`_waves`); if one fails, stop them all."""
        try:
            for wave in self._waves():
                together(wave)
            if self.replica_ports:
                self._wait_balanced()
        except BaseException:
            self.stop()
            raise

    def _wait_balanced(self, timeout: float = 30.0) -> None:
        """Until the balancer sends traffic to every replica. A replica is ready before
        HAProxy has seen it so (its rise checks), and the site has started only when its one
        address reaches them all, as a Kubernetes Service's endpoints."""
        deadline = time.monotonic() + timeout
        while True:
            states = {name: replica_states(self.balancer_url, name) for name in REPLICATED}
            if all(len(s) == self.replicas and set(s.values()) == {"UP"} for s in states.values()):
                return
            if time.monotonic() > deadline:
                raise SiteError(f"{self.name}: the balancer sees {states} after {timeout:.0f}s")
            time.sleep(0.1)

    def _waves(self) -> list[list[Callable[[], None]]]:
        """The start order of `services` as waves of steps that need nothing from each other,
        each started once the one before is ready: storage, the balancer and the schema's
        migration; the internal APIs; then the front doors and the replicator."""
        waves: list[list[Callable[[], None]]] = [[self.migrate], [], []]
        for service in self.services:
            base, _ = self._replica_of(service)
            wave = {"storage": 0, BALANCER: 0, "internal-api": 1}.get(base, 2)
            waves[wave].append(partial(self.start_service, service))
        return waves

    def start_storage(self, timeout: float = 30.0) -> None:
        """The default shard's storage, then any extra shards' (one process each)."""
        for shard in (STORAGE_NAME, *self.extra_shards):
            self.shard_repositories_dir(shard).mkdir(parents=True, exist_ok=True)
            ops = self.extra_shards.get(shard, (0, self.ports.storage_ops))[1]
            self.supervisor.start(
                self._storage_process(shard),
                [console_script("geogit-storage")],
                self.storage_env(shard),
                HttpProbe(f"http://{self.host}:{ops}/-/readiness"),
                timeout,
            )

    def _storage_process(self, shard: str) -> str:
        return self.process_name("storage" if shard == STORAGE_NAME else f"storage-{shard}")

    def start_internal_api(self, replica: int = 0, timeout: float = 60.0) -> None:
        port = self.replica_port(replica).internal_api
        self.supervisor.start(
            self.process_name(_numbered("internal-api", replica)),
            [console_script("geogit-internal-api"), "serve"],
            self.internal_api_env(replica),
            HttpProbe(f"http://{self.host}:{port}/-/readiness"),
            timeout,
        )

    def start_edge_proxy(self, replica: int = 0, timeout: float = 30.0) -> None:
        port = self.replica_port(replica).http
        self.supervisor.start(
            self.process_name(_numbered("edge-proxy", replica)),
            [console_script("geogit-edge-proxy")],
            self.edge_proxy_env(replica),
            HttpProbe(f"http://{self.host}:{port}/-/readiness"),
            timeout,
        )

    def start_ssh_gateway(self, replica: int = 0, timeout: float = 60.0) -> None:
        # The first start generates an RSA host key, which takes a moment; replicas share the
        # site's key directory, so every one presents the same keys.
        port = self.replica_port(replica).ssh_ops
        self.supervisor.start(
            self.process_name(_numbered("ssh-gateway", replica)),
            [console_script("geogit-ssh-gateway")],
            self.ssh_gateway_env(replica),
            HttpProbe(f"http://{self.host}:{port}/-/readiness"),
            timeout,
        )

    def start_replicator(self, timeout: float = 30.0) -> None:
        self.supervisor.start(
            self.process_name("replicator"),
            [console_script("geogit-replicator")],
            self.replicator_env(),
            HttpProbe(f"{self.replicator_ops_url}/-/readiness"),
            timeout,
        )

    @property
    def balancer_url(self) -> str:
        """HAProxy's stats page (`/stats`, `/stats;csv`) when the site runs replicas."""
        return f"http://{self.host}:{self.ports.balancer_ops}"

    @property
    def balancer_config_path(self) -> Path:
        return self.base_dir / "sites" / self.name / "haproxy.cfg"

    def balancer_config(self) -> str:
        """HAProxy's configuration: the site's three addresses, each replica behind them."""
        replicas = [self.replica_port(r) for r in range(1, self.replicas + 1)]
        backends = [
            Backend("edge-proxy", self.ports.http, [(p.http, p.http) for p in replicas]),
            Backend(
                "internal-api",
                self.ports.internal_api,
                [(p.internal_api, p.internal_api) for p in replicas],
            ),
            Backend("ssh-gateway", self.ports.ssh, [(p.ssh, p.ssh_ops) for p in replicas]),
        ]
        return haproxy_config(self.host, backends, self.ports.balancer_ops)

    def start_balancer(self, timeout: float = 30.0) -> None:
        path = self.balancer_config_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.balancer_config())
        self.supervisor.start(
            self.process_name(BALANCER),
            # -db: stay in the foreground, logging to stderr (the supervisor's log).
            [haproxy_binary(), "-db", "-f", str(path)],
            {**_base_env()},
            HttpProbe(f"http://{self.host}:{self.ports.balancer_ops}/-/readiness"),
            timeout,
        )

    def start_service(self, service: str) -> None:
        """Start one of the site's services alone, as `start()` does (`geogit dev start`)."""
        if service not in self.services:
            raise SiteError(f"{self.name} has no {service}; it runs {', '.join(self.services)}")
        base, replica = self._replica_of(service)
        starters: dict[str, Callable[[], None]] = {
            "storage": self.start_storage,
            BALANCER: self.start_balancer,
            "internal-api": lambda: self.start_internal_api(replica),
            "edge-proxy": lambda: self.start_edge_proxy(replica),
            "ssh-gateway": lambda: self.start_ssh_gateway(replica),
            "replicator": self.start_replicator,
        }
        starters[base]()

    def stop(self, kill: bool = False) -> list[StopResult]:
        """Stop the site's services, last started first; `kill` sends SIGKILL at once, as a
        crashed machine would (for unplanned-failover drills)."""
        stopped = [
            self.supervisor.stop(self.process_name(service), kill=kill)
            for service in reversed(self.services)
        ]
        return stopped + [
            self.supervisor.stop(self._storage_process(shard), kill=kill)
            for shard in self.extra_shards
        ]

    # One-shot internal API commands --------------------------------------------------------

    def migrate(self, timeout: float = 120.0) -> None:
        """Bring the site's database schema up to date (Alembic, through the service's CLI)."""
        self._internal_api_command(["migrate"], "migrate", timeout)

    def bootstrap_admin(
        self, username: str, email: str, password: str, timeout: float = 60.0
    ) -> UserCredentials:
        """Create the administrator and an `api`-scoped token; the CLI prints them as JSON.

        The password goes in a file of mode 0600: on the command line any value starting with
        '-' read as an option, and argv is visible to every user of the machine.
        """
        with tempfile.NamedTemporaryFile("w", prefix="password-", suffix=".txt") as secret:
            secret.write(password)
            secret.flush()
            output = self._internal_api_command(
                [
                    "bootstrap-admin",
                    "--username",
                    username,
                    "--email",
                    email,
                    "--password-file",
                    secret.name,
                ],
                "bootstrap-admin",
                timeout,
                log_stdout=False,  # it carries the token
            )
        for line in reversed(output.splitlines()):
            if line.startswith("{"):
                try:
                    answer = json.loads(line)
                    return UserCredentials(str(answer["username"]), str(answer["token"]), password)
                except (ValueError, KeyError) as exc:
                    raise SiteError(f"bootstrap-admin printed {line!r}: {exc}") from exc
        raise SiteError(f"bootstrap-admin printed no JSON line:\n{output[-2000:]}")

    def _internal_api_command(
        self, args: list[str], what: str, timeout: float, log_stdout: bool = True
    ) -> str:
        """Run `geogit-internal-api <args>` to completion; its stderr goes to the site's log."""
        log_path = self.supervisor.log_path(self.process_name(f"internal-api-{what}"))
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            result = subprocess.run(
                [console_script("geogit-internal-api"), *args],
                env=self.internal_api_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            message = f"{self.name}: geogit-internal-api {what} took over {timeout:.0f}s"
            raise SiteError(message) from exc
        with open(log_path, "a") as log:
            log.write(f"=== geogit-internal-api {what}: status {result.returncode}\n")
            log.write((result.stdout if log_stdout else "") + result.stderr)
        if result.returncode != 0:
            raise SiteError(
                f"{self.name}: geogit-internal-api {what} failed (status {result.returncode});"
                f" {log_path}:\n{log_tail(log_path)}"
            )
        return result.stdout


def together(steps: Sequence[Callable[[], None]]) -> None:
    """Run `steps` at once and wait for all of them; the first failure is raised once every
    step has ended, so that none is still starting something when the caller cleans up."""
    with ThreadPoolExecutor(max(1, len(steps))) as pool:
        futures = [pool.submit(step) for step in steps]
    for future in futures:
        future.result()
