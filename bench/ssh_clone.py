"""Clone over SSH through geogit's SSH gateway versus OpenSSH's sshd running git-upload-pack.

Both sides serve the very same bare repository on disk: a real geogit site (storage, internal
API, edge proxy and SSH gateway, with its own fresh database and a Tansu broker) holds private
projects of a bench user loaded with the generated repositories, and an sshd of our own (own
config, host key and authorized_keys in a temporary directory, loopback port) lets the same
client key run `git-upload-pack` on those paths directly. Only the transport differs: sshd
forks a session per connection whose shell execs upload-pack; the gateway, one asyncio process,
asks the internal API who the key is and whether it may read the project, then relays storage's
SSHUploadPack RPC.

DESIGN §9: a full clone is bound by the client's index-pack, so throughput should be at parity;
what a front door costs shows up in connection setup (`git ls-remote` of a tiny repository is
almost nothing else; OpenSSH adds 0.2-0.4 s to every operation) and in memory (the gateway's
peak RSS).
"""

from __future__ import annotations

import os
import pwd
import socket
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.common import (
    MIB,
    TINY,
    Options,
    RepoSpec,
    Side,
    alternate,
    clean_env,
    clone_headers,
    clone_row,
    compare,
    comparison,
    conditions,
    cpu_cell,
    ensure_installed,
    host_facts,
    log,
    mb_cell,
    memory_run,
    pack_bytes,
    percentile,
    print_clone_ratios,
    print_foreign_warning,
    print_table,
    rss_by_name,
    run_area,
    start_process,
    tree_cpu,
    wait_until,
)
from bench.sites import Project, api_call, bench_site, load_project, site_side
from geogit.common.net import free_port
from geogit.devstack.ports import LOOPBACK
from geogit.devstack.site import Site

TARGET = 0.85
NAMES = ("sshd", "gateway")  # anchor, subject: the keys of every comparison
SETUP_RUNS = 30
QUICK_SETUP_RUNS = 10
SSHD_PACKAGES = {"sshd": "openssh-server"}  # binary -> package
# sshd refuses to start without its privilege-separation directory, which Debian's service
# unit creates at boot (not the package): made here if missing, removed again afterwards.
PRIVSEP_DIR = Path("/run/sshd")
BENCH_USER = "bench"  # every run has a fresh database, so a fixed name never collides


# The client's key and ssh command -----------------------------------------------------------


@dataclass(frozen=True)
class ClientKey:
    private: Path
    public: str  # the authorized_keys line


def make_client_key(directory: Path) -> ClientKey:
    path = directory / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", BENCH_USER, "-f", str(path)],
        check=True,
    )
    return ClientKey(path, path.with_suffix(".pub").read_text().strip())


def ssh_command(key: ClientKey, port: int) -> str:
    """GIT_SSH_COMMAND for one server: no agent, no config, no known_hosts, no prompts."""
    return (
        f"ssh -i {key.private} -p {port} -o StrictHostKeyChecking=no"
        " -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes -F /dev/null"
    )


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((LOOPBACK, port)) == 0


# Anchor: OpenSSH sshd -----------------------------------------------------------------------

# SetEnv SHLVL=1: Debian's bash sources ~/.bashrc for every command sshd runs (it checks
# SSH_CLIENT and SHLVL < 2), and root's .bashrc here runs `pyenv init`, ~100 ms. That is this
# machine's account, not OpenSSH: the anchor gets its best case, as fcgiwrap does in `edge`.
_SSHD_CONFIG = """\
ListenAddress {host}
Port {port}
HostKey {dir}/ssh_host_ed25519_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
AcceptEnv GIT_PROTOCOL
SetEnv SHLVL=1
PrintMotd no
"""


@contextmanager
def openssh(projects: Sequence[Project], key: ClientKey, work: Path) -> Iterator[Side]:
    """sshd on a loopback port, letting `key` log in as the current user; stopped on exit."""
    sshd = ensure_installed(SSHD_PACKAGES)["sshd"]
    work.mkdir(parents=True, exist_ok=True)
    port = _write_sshd_config(work, key)
    with ExitStack() as stack:
        if not PRIVSEP_DIR.exists():
            PRIVSEP_DIR.mkdir(mode=0o755)
            stack.callback(PRIVSEP_DIR.rmdir)
        log_file = stack.enter_context(open(work / "processes.log", "ab"))
        proc = start_process(stack, [sshd, "-D", "-e", "-f", str(work / "sshd_config")], log_file)
        wait_until(lambda: _port_open(port), proc, "sshd", work)
        listener = psutil.Process(proc.pid)
        user = pwd.getpwuid(os.geteuid()).pw_name
        yield Side(
            "sshd",
            {p.spec.key: f"{user}@{LOOPBACK}:{p.path}" for p in projects},
            tree_cpu(sshd=listener),
            _sshd_probe(listener),
            env={"GIT_SSH_COMMAND": ssh_command(key, port)},
        )


def _write_sshd_config(work: Path, key: ClientKey) -> int:
    """Host key, authorized_keys and sshd_config in `work`; returns the port chosen."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "ssh_host_ed25519_key")],
        check=True,
    )
    (work / "authorized_keys").write_text(key.public + "\n")
    port = free_port(LOOPBACK)
    (work / "sshd_config").write_text(_SSHD_CONFIG.format(host=LOOPBACK, port=port, dir=work))
    return port


def _sshd_probe(listener: psutil.Process) -> Callable[[], dict[str, int]]:
    """The listener and its per-connection sshd processes; the session's git processes."""

    return lambda: rss_by_name(listener, "sshd")


# Subject: the site's SSH gateway ------------------------------------------------------------


def bench_user(site: Site, token: str, key: ClientKey) -> int:
    """A user holding `key`, created by the admin; returns its id."""
    user = api_call(
        site,
        token,
        "/users",
        {
            "username": BENCH_USER,
            "email": f"{BENCH_USER}@example.com",
            "name": "Bench",
            "password": uuid.uuid4().hex,
        },
    )
    api_call(site, token, f"/users/{user['id']}/keys", {"title": BENCH_USER, "key": key.public})
    return int(user["id"])


def gateway_side(site: Site, projects: Sequence[Project], key: ClientKey) -> Side:
    return site_side(
        site,
        "gateway",
        "ssh-gateway",
        {p.spec.key: f"git@{site.host}:{p.full_path}.git" for p in projects},
        env={"GIT_SSH_COMMAND": ssh_command(key, site.ports.ssh)},
    )


# Measurements -------------------------------------------------------------------------------


def check_protocol_v2(side: Side, spec: RepoSpec, work: Path) -> None:
    """Fail unless `side` speaks protocol v2: a server that drops GIT_PROTOCOL (sshd without
    AcceptEnv) silently falls back to v0, and the comparison would be of two protocols."""
    trace = work / f"trace-{side.name}"
    ls_remote(side, spec, GIT_TRACE_PACKET=str(trace))
    if "version 2" not in trace.read_text(errors="replace"):
        raise RuntimeError(f"{side.name} did not answer with protocol v2 (trace in {trace})")


@dataclass
class Setup:
    """Seconds of each `git ls-remote`: connection, authentication, authorization, ref list."""

    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p99(self) -> float:
        """Nearest rank: the slowest run when there are fewer than 100."""
        return percentile(self.seconds, 99)

    def as_json(self) -> dict[str, Any]:
        return {
            "median_s": round(self.median, 4),
            "p99_s": round(self.p99, 4),
            "runs_s": [round(s, 4) for s in self.seconds],
        }


def ls_remote(side: Side, spec: RepoSpec, **env: str) -> float:
    """Seconds of one `git ls-remote` through `side`, which must list HEAD."""
    started = time.perf_counter()
    done = subprocess.run(
        ["git", "ls-remote", side.urls[spec.key]],
        env=clean_env(**side.env, **env),
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or "HEAD" not in done.stdout:
        raise RuntimeError(f"{side.name}: git ls-remote failed: {done.stderr.strip()[-500:]}")
    return elapsed


def setup_times(anchor: Side, subject: Side, spec: RepoSpec, runs: int) -> tuple[Setup, Setup]:
    """`runs` ls-remotes each way, after one unmeasured each."""
    log(f"connection setup: {runs} x git ls-remote of {spec.key} each way")
    pairs = list(
        alternate(partial(ls_remote, anchor, spec), partial(ls_remote, subject, spec), runs)
    )
    return Setup([a for a, _ in pairs]), Setup([s for _, s in pairs])


def run(options: Options) -> dict[str, Any]:
    ensure_installed(SSHD_PACKAGES)
    spec = options.spec
    runs = QUICK_SETUP_RUNS if options.quick else SETUP_RUNS
    return run_area(
        options,
        lambda _: _run_stack(spec, options.repeat, runs),
        _report,
        prebuilt=(spec, TINY),
    )


def _run_stack(spec: RepoSpec, repeat: int, runs: int) -> dict[str, Any]:
    """Broker, site and sshd up, the user and both projects made; all stopped on the way out."""
    with bench_site("ssh-") as (tmp, site, token):
        key = make_client_key(tmp)
        owner = bench_user(site, token, key)
        main, tiny = (
            load_project(site, token, s, owner_id=owner, visibility="private") for s in (spec, TINY)
        )
        with openssh([main, tiny], key, tmp / "sshd") as anchor:
            subject = gateway_side(site, [main, tiny], key)
            for side in (anchor, subject):
                check_protocol_v2(side, TINY, tmp)
            return _measure(anchor, subject, main, repeat, runs)


def _measure(anchor: Side, subject: Side, main: Project, repeat: int, runs: int) -> dict[str, Any]:
    size, spec = pack_bytes(main.path), main.spec
    log(f"{spec.key}: pack {size / MIB:.1f} MiB")
    gateway_idle = subject.probe()["gateway"]
    full = compare(anchor, subject, spec, repeat)
    setups = setup_times(anchor, subject, TINY, runs)
    peaks, memory_cpu = memory_run((anchor, subject), spec)
    return {
        "repository": spec.key,
        "pack_bytes": size,
        **host_facts(
            repeat, openssh_version=_openssh_version(), asyncssh_version=version("asyncssh")
        ),
        "full_clone": comparison(NAMES, *full, size),
        "connection_setup_tiny": {
            "runs": runs,
            "sshd": setups[0].as_json(),
            "gateway": setups[1].as_json(),
            "ratio": round(setups[0].median / setups[1].median, 3),
            "overhead_ms": round((setups[1].median - setups[0].median) * 1000, 1),
        },
        # Server CPU by process for the memory run's full clone.
        "full_clone_server_cpu_s": memory_cpu,
        "memory_mb": {"gateway_idle": round(gateway_idle / MIB, 1), **peaks},
    }


def _openssh_version() -> str:
    done = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
    return done.stderr.strip()


# Report -------------------------------------------------------------------------------------

# (side, probe/CPU key, label); CPU keys that no probe has (and vice versa) print blank.
_PROCESSES = [
    ("gateway", "gateway", "SSH gateway (python)"),
    ("gateway", "internal_api", "internal API (python)"),
    ("gateway", "storage", "storage server (python; CPU with its git children)"),
    ("gateway", "storage_children", "storage git children"),
    ("sshd", "sshd", "sshd (listener + per-connection; CPU with the session)"),
    ("sshd", "git_children", "sshd session git processes"),
]


def _report(r: dict[str, Any]) -> None:
    full, setup = r["full_clone"], r["connection_setup_tiny"]
    print(
        f"\nssh clone benchmark: {r['repository']} (pack {r['pack_bytes'] / MIB:.1f} MiB), "
        f"{r['git_version']}, {r['openssh_version']}, asyncssh {r['asyncssh_version']}, "
        f"{conditions(r)}\n"
    )
    _clone_table(full)
    print()
    _setup_table(setup)
    print()
    _memory_table(r)
    print("(ratio = sshd time / gateway time, 1.0 is parity and higher is better; CPU s =")
    print(" client git and ssh plus every server process; PostgreSQL, behind the internal API,")
    print(" is not counted)")
    print()
    _summary(r)


def _clone_table(full: dict[str, Any]) -> None:
    print_table(clone_headers("operation", *NAMES), [clone_row("full clone", full, NAMES)])


def _setup_table(setup: dict[str, Any]) -> None:
    print_table(
        [f"git ls-remote ({TINY.key}), {setup['runs']} runs", "median s", "p99 s"],
        [
            [label, f"{setup[name]['median_s']:.3f}", f"{setup[name]['p99_s']:.3f}"]
            for name, label in (("sshd", "OpenSSH sshd"), ("gateway", "SSH gateway"))
        ],
    )


def _memory_table(r: dict[str, Any]) -> None:
    mem, cpu = r["memory_mb"], r["full_clone_server_cpu_s"]
    rows = [
        [label, mb_cell(mem.get(f"{side}_{key}_peak")), cpu_cell(cpu[side], key)]
        for side, key, label in _PROCESSES
    ]
    rows[0][1] += f" (idle {mem['gateway_idle']:.1f})"
    print_table(["server process", "peak RSS MB full clone", "CPU s full clone"], rows)


def _summary(r: dict[str, Any]) -> None:
    full, setup, mem = r["full_clone"], r["connection_setup_tiny"], r["memory_mb"]
    print_foreign_warning(r)
    print_clone_ratios(full, NAMES, TARGET)
    s, g = setup["sshd"], setup["gateway"]
    print(
        f"ratio connection setup gateway/sshd: {setup['ratio']:.2f} (median "
        f"{s['median_s']:.3f} s vs {g['median_s']:.3f} s, {setup['overhead_ms']:+.0f} ms; "
        f"p99 {s['p99_s']:.3f} s vs {g['p99_s']:.3f} s)"
    )
    print(
        f"gateway peak RSS during a full clone: {mem['gateway_gateway_peak']:.0f} MB "
        f"(idle {mem['gateway_idle']:.0f} MB); storage server "
        f"{mem['gateway_storage_peak']:.0f} MB"
    )
