"""`geogit dev up|down|status|demo|stop|start|restart`: the dev stack built from the pieces of
this package.

`up` starts, in order: Kafka (Tansu), PostgreSQL (unless GEOGIT_DATABASE_URL names a server),
the primary site (storage, internal API, edge proxy, SSH gateway, replicator), bootstraps the
admin, registers the secondaries on the primary, starts them (the same services), writes
`.run/stack.json` with the roles the sites report and returns once everything answers its
health check. Which site is primary is what the sites last reported (`.run/roles.json`, kept
across `down`): after `geogit geo promote` it is no longer the one named `primary`. If any step
fails it stops what it started, so a failed `up` leaves nothing running. `down` stops, last
started first, exactly the processes recorded in `.run/pids/`, then the throwaway cluster.
`stop|start|restart COMPONENT` act on one part of a running stack, or on a whole site
(components.py).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import TextIO

from geogit.common.geo_coordination import PromotionMode
from geogit.devstack import kafka
from geogit.devstack.admin import ensure_admin
from geogit.devstack.api import ApiError
from geogit.devstack.balancer import BalancerError
from geogit.devstack.components import (
    KAFKA,
    POSTGRESQL,
    Component,
    ComponentError,
    resolve,
    stack_sites,
)
from geogit.devstack.credentials import CredentialStore
from geogit.devstack.databases import (
    DatabaseError,
    can_connect,
    ensure_database,
    site_database_url,
)
from geogit.devstack.demo import Demo, DemoError, ensure_demo, geo_story, ssh_clone_command
from geogit.devstack.geo_promote import PromoteError, promote
from geogit.devstack.geo_sites import register_sites
from geogit.devstack.geo_status import print_status
from geogit.devstack.layout import RunLayout
from geogit.devstack.ports import (
    KAFKA_PORT,
    MAX_REPLICAS,
    POSTGRES_PORT,
    ReplicaPorts,
    SitePorts,
    busy_ports,
)
from geogit.devstack.postgres import PostgresError, ThrowawayPostgres
from geogit.devstack.processes import ProcessError, Supervisor
from geogit.devstack.site import Site, SiteError
from geogit.devstack.site_roles import (
    RolesError,
    load_roles,
    refresh_roles,
    save_roles,
    starting_roles,
)
from geogit.devstack.stack import Stack, StackDemo, StackSite, read_stack, write_stack

DATABASE_URL_VARIABLE = "GEOGIT_DATABASE_URL"
PRIMARY = "primary"
# Ports of secondary N are the primary's plus 100*N; past 9 they would collide with others.
MAX_SECONDARIES = 9


def up_failed_next(layout: RunLayout) -> str:
    """What to do after `up` failed: every failure message ends with it."""
    return (
        f"What next: the logs are in {layout.logs_dir} (the message above names the one"
        " that failed); fix the cause and run `make up` again, or start afresh with"
        " `geogit dev down --purge && make up` (this deletes the dev database, repositories"
        " and secrets)."
    )


_FAILURES = (
    ProcessError,
    PostgresError,
    DatabaseError,
    SiteError,
    ApiError,
    DemoError,
    ComponentError,
    RolesError,
    BalancerError,
)


@dataclass
class DevStack:
    """One dev stack, identified by its run directory."""

    layout: RunLayout
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(self.layout.run_dir)
        self.store = CredentialStore(self.layout.secrets_file)
        self.postgres = ThrowawayPostgres(self.layout.postgres_dir)

    def _say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    def _fail(self, command: str, message: str) -> int:
        print(f"geogit {command}: {message}", file=self.err, flush=True)
        return 1

    def _record(self, stack: Stack) -> None:
        """Write stack.json, and the roles apart so they outlive `down` (site_roles.py)."""
        write_stack(self.layout.stack_file, stack)
        save_roles(self.layout.roles_file, stack)

    # Wiring --------------------------------------------------------------------------------

    @property
    def external_database(self) -> str | None:
        return os.environ.get(DATABASE_URL_VARIABLE) or None

    def sites(self, secondaries: int = 1, replicas: int = 1) -> list[Site]:
        """Site `primary` and `secondaries` secondaries on their fixed ports and own databases,
        each in the role the sites last reported (bootstrap: `primary` is the primary); with
        `replicas` ≥ 2, that many of each stateless service behind HAProxy on every site."""
        server = self.external_database or self.postgres.url("geogit")
        names = [PRIMARY] + [f"secondary-{index}" for index in range(1, secondaries + 1)]
        roles = starting_roles(names, load_roles(self.layout.roles_file))
        primary = next(name for name, role in roles.items() if role == "primary")
        primary_url = f"http://127.0.0.1:{SitePorts.fixed(names.index(primary)).http}"
        return [
            Site(
                name=name,
                role=roles[name],
                base_dir=self.layout.run_dir,
                ports=SitePorts.fixed(index),
                database_url=site_database_url(server, name),
                kafka_bootstrap=kafka.bootstrap(),
                secrets=self.store.site(name),
                supervisor=self.supervisor,
                primary_url="" if roles[name] == "primary" else primary_url,
                replica_ports=[
                    ReplicaPorts.fixed(index, replica)
                    for replica in range(1, replicas + 1)
                    if replicas > 1
                ],
            )
            for index, name in enumerate(names)
        ]

    # up ------------------------------------------------------------------------------------

    def up(self, secondaries: int = 1, demo: bool = False, replicas: int = 1) -> int:
        if not 0 <= secondaries <= MAX_SECONDARIES:
            return self._fail("dev up", f"--secondaries must be 0 to {MAX_SECONDARIES}")
        if not 1 <= replicas <= MAX_REPLICAS:
            return self._fail("dev up", f"--replicas must be 1 to {MAX_REPLICAS}")
        live = [record for record in self.supervisor.records() if record.is_running()]
        if live:
            names = ", ".join(f"{record.name} (pid {record.pid})" for record in live)
            return self._fail("dev up", f"already up: {names}; run `geogit dev down` first")
        self.supervisor.forget_dead()
        try:
            sites = self.sites(secondaries, replicas)
        except RolesError as exc:
            return self._fail("dev up", str(exc))
        busy = busy_ports(self._wanted_ports(sites))
        if busy:
            taken = ", ".join(f"{port} ({label})" for label, port in busy.items())
            return self._fail("dev up", f"ports already in use by another process: {taken}")
        try:
            stack = self._start(sites)
        except KeyboardInterrupt:
            self._stop_everything()
            return 130
        except _FAILURES as exc:
            self._stop_everything()
            return self._fail(
                "dev up",
                f"{exc}\n(everything started has been stopped)\n{up_failed_next(self.layout)}",
            )
        self._say(next_steps(stack, self.layout))
        if demo:
            # The stack is up and usable either way; a demo failure leaves it running.
            return self.demo()
        return 0

    def _wanted_ports(self, sites: list[Site]) -> dict[str, int]:
        wanted = {"kafka": KAFKA_PORT}
        if self.external_database is None and not self.postgres.running():
            wanted["postgres"] = POSTGRES_PORT
        for site in sites:
            wanted |= {f"{site.name} {what}": port for what, port in site.listening().items()}
        return wanted

    def _start(self, sites: list[Site]) -> Stack:
        self._say(f"starting kafka (tansu) on {kafka.bootstrap()}")
        kafka.start_kafka(self.supervisor)
        if self.external_database is None:
            where = f"127.0.0.1:{self.postgres.port} ({self.postgres.root})"
            self._say(f"starting postgresql on {where}")
            self.postgres.start()
        primary = next(site for site in sites if site.role == "primary")
        secondaries = [site for site in sites if site is not primary]
        self._start_site(primary)
        admin = ensure_admin(primary, self.store)
        register_sites(primary, admin.token, secondaries)
        for site in secondaries:
            self._start_site(site)
        stack = refresh_roles(Stack.of(sites, admin, kafka.bootstrap()), self._say)
        self._record(stack)
        return stack

    def _start_site(self, site: Site) -> None:
        ensure_database(site.database_url)
        self._say(f"starting {site.role} site {site.name}: {', '.join(site.services)}")
        site.start()

    def _stop_everything(self) -> None:
        for result in self.supervisor.stop_all():
            if result.outcome == "refused":
                print(f"warning: {result.name}: {result.detail}", file=self.err)
        try:
            self.postgres.stop()
        except PostgresError as exc:
            print(f"warning: {exc}", file=self.err)

    # down ----------------------------------------------------------------------------------

    def down(self, purge: bool = False) -> int:
        for result in self.supervisor.stop_all():
            detail = f": {result.detail}" if result.detail else ""
            self._say(f"{result.name} (pid {result.pid}): {result.outcome}{detail}")
        try:
            if self.postgres.stop():
                self._say(f"postgresql ({self.postgres.data_dir}): stopped")
        except PostgresError as exc:
            return self._fail("dev down", str(exc))
        if purge:
            if self.layout.stack_file.exists() and self.external_database:
                self._say(f"databases on {DATABASE_URL_VARIABLE}'s server are kept")
            shutil.rmtree(self.layout.run_dir, ignore_errors=True)
            self._say(f"removed {self.layout.run_dir}")
        else:
            self.layout.stack_file.unlink(missing_ok=True)
        return 0

    # stop, start, restart one component or a whole site ---------------------------------

    def _components(self, name: str) -> list[Component]:
        if not self.layout.stack_file.exists():
            raise ComponentError("the dev stack is not up; run `geogit dev up` first")
        stack = read_stack(self.layout.stack_file)
        sites = stack_sites(stack, self.supervisor, self.store)
        postgres = None if self.external_database else self.postgres
        return resolve(name, stack, sites, self.supervisor, postgres)

    def _stop_components(self, components: list[Component], kill: bool) -> None:
        for component in reversed(components):
            self._say(component.stop(kill))

    def _start_components(self, components: list[Component]) -> None:
        for component in components:
            self._say(component.start())

    def stop_component(self, name: str, kill: bool = False) -> int:
        try:
            self._stop_components(self._components(name), kill)
        except _FAILURES as exc:
            return self._fail("dev stop", str(exc))
        return 0

    def start_component(self, name: str) -> int:
        try:
            self._start_components(self._components(name))
        except _FAILURES as exc:
            return self._fail("dev start", str(exc))
        return 0

    def restart_component(self, name: str) -> int:
        try:
            components = self._components(name)
            self._stop_components(components, kill=False)
            self._start_components(components)
        except _FAILURES as exc:
            return self._fail("dev restart", str(exc))
        return 0

    # status --------------------------------------------------------------------------------

    def status(self) -> int:
        records = self.supervisor.records()
        own_postgres = self.postgres.running()
        if not records and not own_postgres and not self.layout.stack_file.exists():
            self._say("the dev stack is down")
            return 3
        healthy = self._report_stopped({record.name for record in records}, own_postgres)
        for record in records:
            if not record.is_running():
                state, healthy = "not running", False
            elif record.probe is None or record.probe.check():
                state = "ready"
            else:
                state, healthy = "running, not ready", False
            probe = record.probe.describe() if record.probe else ""
            self._say(f"{record.name:<24} pid {record.pid:<8} {state:<20} {probe}")
        if own_postgres:
            self._say(f"{'postgresql':<24} {'':<12} {'running':<20} {self.postgres.data_dir}")
        if self.layout.stack_file.exists():
            for site in read_stack(self.layout.stack_file).sites:
                reachable = can_connect(site.database_url)
                healthy &= reachable
                state = "ready" if reachable else "unreachable"
                self._say(f"{site.name + ' database':<24} {'':<12} {state:<20} {site.database_url}")
        return 0 if healthy else 1

    def _report_stopped(self, recorded: set[str], own_postgres: bool) -> bool:
        """List the components of the stack that were stopped (`geogit dev stop`); False if
        there are any."""
        if not self.layout.stack_file.exists():
            return True
        stack = read_stack(self.layout.stack_file)
        stopped = [] if KAFKA in recorded else [KAFKA]
        if self.external_database is None and not own_postgres:
            stopped.append(POSTGRESQL)
        for site in stack_sites(stack, self.supervisor, self.store):
            stopped += [
                f"{site.name}/{service}"
                for service in site.services
                if site.process_name(service) not in recorded
            ]
        for name in stopped:
            self._say(f"{name:<24} {'':<12} {'stopped':<20} geogit dev start {name}")
        return not stopped

    def geo_status(self) -> int:
        """`geogit status`: replication and roles per site (geo_status.py)."""
        if not self.layout.stack_file.exists():
            return self._fail("status", "the dev stack is not up; run `geogit dev up` first")
        print_status(read_stack(self.layout.stack_file), self.store, self._say)
        return 0

    # geo promote ---------------------------------------------------------------------------

    def promote(self, name: str, mode: PromotionMode) -> int:
        """`geogit geo promote` (geo_promote.py), then record the roles the sites report."""
        if not self.layout.stack_file.exists():
            return self._fail("geo promote", "the dev stack is not up; run `geogit dev up` first")
        stack = read_stack(self.layout.stack_file)
        try:
            promote(stack, name, mode, self._say)
        except (ApiError, PromoteError) as exc:
            return self._fail("geo promote", f"{exc}\n(stack.json is unchanged)")
        self._record(refresh_roles(stack, self._say))
        self._say(f"roles recorded in {self.layout.stack_file}")
        return 0

    # demo ----------------------------------------------------------------------------------

    def demo(self) -> int:
        if not self.layout.stack_file.exists():
            return self._fail("dev demo", "the dev stack is not up; run `geogit dev up` first")
        stack = read_stack(self.layout.stack_file)
        admin = self.store.user("admin")
        if admin is None:
            return self._fail("dev demo", f"no admin credentials in {self.layout.secrets_file}")
        self._say("\ncreating demo data: user alice, her token, alice/demo with a few commits")
        try:
            primary = stack.primary()
            demo = ensure_demo(primary.http_url, admin, self.store, self.layout.run_dir / "demo")
            stack.demo = _stack_demo(demo, primary)
            write_stack(self.layout.stack_file, stack)
            self._say(demo_text(stack.demo))
            secondaries = [site for site in stack.sites if site.role == "secondary"]
            if secondaries:
                geo_story(primary, secondaries[0], stack.demo, self._say)
        except _FAILURES as exc:
            return self._fail(
                "dev demo", f"{exc}\n(the stack stays up; retry with `geogit dev demo`)"
            )
        return 0


def _stack_demo(demo: Demo, primary: StackSite) -> StackDemo:
    return StackDemo(
        username=demo.username,
        token=demo.token,
        project=demo.project,
        clone_url=demo.clone_url,
        ssh_clone=ssh_clone_command(demo.ssh_key, primary, demo.project),
    )


def demo_text(demo: StackDemo) -> str:
    return (
        f"demo: {demo.project} (private), {demo.username}'s token (read_repository,"
        f" write_repository): {demo.token}\n"
        f"  git clone {demo.clone_url}\n"
        f"  {demo.ssh_clone}"
    )


def next_steps(stack: Stack, layout: RunLayout) -> str:
    primary = stack.primary()
    host = primary.http_url.removeprefix("http://")
    lines = [
        f"geogit dev stack is up; state in {layout.run_dir} (logs in {layout.logs_dir})",
        "",
    ]
    for site in stack.sites:
        lines.append(
            f"  {site.name:<12} {site.http_url}  internal API {site.internal_api_url}"
            f"  storage {site.storage_address}  ssh {site.ssh_host}:{site.ssh_port}"
        )
    lines += [
        f"  {'kafka':<12} {stack.kafka_bootstrap}",
        f"  {'admin':<12} {stack.admin.username}, token {stack.admin.token} (scope api)",
        f"  {'stack file':<12} {layout.stack_file}",
        "",
        "next steps:",
        f"  export GEOGIT_TOKEN={stack.admin.token}",
        '  curl -H "PRIVATE-TOKEN: $GEOGIT_TOKEN" -H "Content-Type: application/json" \\',
        f'       -d \'{{"name": "hello"}}\' {primary.http_url}/api/v4/projects',
        f"  git clone http://{stack.admin.username}:$GEOGIT_TOKEN@{host}/"
        f"{stack.admin.username}/hello.git",
        "  geogit dev demo      # user alice, project alice/demo with commits, its clone command",
        "  geogit dev status    # every process and its health check",
        "  geogit dev down      # stop everything (--purge also deletes .run/)",
    ]
    if stack.demo is not None:
        lines += ["", demo_text(stack.demo)]
    return "\n".join(lines)
