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

import math
import os
import pwd
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.common import (
    CACHE_DIR,
    LARGE,
    MIB,
    QUICK,
    TINY,
    ForeignCpu,
    Options,
    Project,
    RepoSpec,
    Side,
    api_call,
    clean_env,
    compare,
    comparison,
    comparison_cells,
    cpu_delta,
    ensure_installed,
    generated_repo,
    git,
    load_average,
    load_project,
    log,
    pack_bytes,
    print_table,
    process_name,
    process_tree,
    rss,
    site_process,
    start_process,
    tree_cpu,
    wait_until,
)
from geogit.common.net import free_port
from geogit.common.tansu import TansuBroker
from geogit.devstack.ports import LOOPBACK
from geogit.devstack.site import Site
from geogit.devstack.testing import running_site

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

    def probe() -> dict[str, int]:
        procs = process_tree([listener])
        return {
            "sshd": sum(rss(p) for p in procs if process_name(p) == "sshd"),
            "git_children": sum(rss(p) for p in procs if process_name(p) != "sshd"),
        }

    return probe


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
    gateway = site_process(site, "ssh-gateway")
    api, storage = site_process(site, "internal-api"), site_process(site, "storage")
    return Side(
        "gateway",
        {p.spec.key: f"git@{site.host}:{p.full_path}.git" for p in projects},
        tree_cpu(gateway=gateway, internal_api=api, storage=storage),
        _gateway_probe(gateway, api, storage),
        env={"GIT_SSH_COMMAND": ssh_command(key, site.ports.ssh)},
    )


def _gateway_probe(
    gateway: psutil.Process, api: psutil.Process, storage: psutil.Process
) -> Callable[[], dict[str, int]]:
    def probe() -> dict[str, int]:
        return {
            "gateway": rss(gateway),
            "internal_api": rss(api),
            "storage": rss(storage),
            "storage_children": sum(rss(p) for p in process_tree([storage])[1:]),
        }

    return probe


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
        ordered = sorted(self.seconds)
        return ordered[math.ceil(0.99 * len(ordered)) - 1]

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
    """`runs` ls-remotes each after one unmeasured each, alternating so drift hits both."""
    log(f"connection setup: {runs} x git ls-remote of {spec.key} each way")
    ls_remote(anchor, spec)
    ls_remote(subject, spec)
    setups = Setup(), Setup()
    for _ in range(runs):
        for side, setup in zip((anchor, subject), setups, strict=True):
            setup.seconds.append(ls_remote(side, spec))
    return setups


def memory_run(sides: Sequence[Side], spec: RepoSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """One more full clone each way with RSS sampled every 50 ms: peaks and server CPU."""
    log("memory run: one more full clone each way, sampling RSS every 50 ms")
    peaks, cpu = {}, {}
    for side in sides:
        before = side.cpu()
        peaks[side.name] = side.clone(spec, sample=True).peaks
        cpu[side.name] = {k: round(v, 2) for k, v in cpu_delta(side.cpu(), before).items()}
    return peaks, cpu


def run(options: Options) -> dict[str, Any]:
    spec = QUICK if options.quick else LARGE
    ensure_installed(SSHD_PACKAGES)
    for s in (spec, TINY):
        generated_repo(s)
    runs = QUICK_SETUP_RUNS if options.quick else SETUP_RUNS
    load_before = load_average()
    # Every process is stopped and reaped before ForeignCpu reads the machine's counters.
    with ForeignCpu() as foreign:
        results = _run_stack(spec, options.repeat, runs)
    results |= {
        "preset": "quick" if options.quick else "default",
        "load_average": {"before": load_before, "after": load_average()},
        "foreign_cpu": {"seconds": round(foreign.seconds, 1), "share": round(foreign.share, 3)},
    }
    _report(results)
    return results


def _run_stack(spec: RepoSpec, repeat: int, runs: int) -> dict[str, Any]:
    """Broker, site and sshd up, the user and both projects made; all stopped on the way out."""
    with (
        tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="ssh-") as tmp,
        TansuBroker() as broker,
        running_site(Path(tmp) / "site", broker.bootstrap) as (site, admin),
    ):
        assert admin is not None
        key = make_client_key(Path(tmp))
        owner = bench_user(site, admin.token, key)
        main, tiny = (
            load_project(site, admin.token, s, owner_id=owner, visibility="private")
            for s in (spec, TINY)
        )
        with openssh([main, tiny], key, Path(tmp) / "sshd") as anchor:
            subject = gateway_side(site, [main, tiny], key)
            for side in (anchor, subject):
                check_protocol_v2(side, TINY, Path(tmp))
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
        "git_version": git("--version").strip(),
        "openssh_version": _openssh_version(),
        "asyncssh_version": version("asyncssh"),
        "cpus": psutil.cpu_count(),
        "repeat": repeat,
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
        "memory_mb": {
            "gateway_idle": round(gateway_idle / MIB, 1),
            **{
                f"{side}_{name}_peak": round(value / MIB, 1)
                for side, side_peaks in peaks.items()
                for name, value in side_peaks.items()
            },
        },
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
        f"{r['cpus']} CPUs, median of {r['repeat']}, load average "
        f"{r['load_average']['before']} before, {r['load_average']['after']} after\n"
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
    print_table(
        [
            "operation",
            "sshd s",
            "gateway s",
            "ratio",
            "overhead ms",
            "sshd CPU s",
            "gateway CPU s",
            "sshd MiB/s",
            "gateway MiB/s",
        ],
        [
            [
                "full clone",
                *comparison_cells(full, NAMES),
                f"{full['sshd']['mib_per_s']:.1f}",
                f"{full['gateway']['mib_per_s']:.1f}",
            ]
        ],
    )


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
    rows = []
    for side, key, label in _PROCESSES:
        peak = mem.get(f"{side}_{key}_peak")
        rows.append(
            [
                label,
                "" if peak is None else f"{peak:.1f}",
                f"{cpu[side][key]:.2f}" if key in cpu[side] else "",
            ]
        )
    rows[0][1] += f" (idle {mem['gateway_idle']:.1f})"
    print_table(["server process", "peak RSS MB full clone", "CPU s full clone"], rows)


def _summary(r: dict[str, Any]) -> None:
    full, setup, mem = r["full_clone"], r["connection_setup_tiny"], r["memory_mb"]
    foreign = r["foreign_cpu"]
    if foreign["share"] > 0.1:
        print(
            f"WARNING: other processes used {foreign['seconds']:.0f} CPU s "
            f"({foreign['share']:.0%} of the machine) during this run: timings are skewed"
        )
    print(f"ratio clone throughput gateway/sshd: {full['ratio']:.2f} (target >= {TARGET})")
    print(
        f"ratio clone CPU gateway/sshd: {full['cpu_ratio']:.2f} "
        f"({full['sshd']['median_cpu_s']:.2f} vs {full['gateway']['median_cpu_s']:.2f} CPU s)"
    )
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
