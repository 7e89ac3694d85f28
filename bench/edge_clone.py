"""Clone over HTTP through geogit's edge proxy versus `git http-backend` behind nginx + fcgiwrap.

Both sides serve the very same bare repository on disk: a real geogit site (storage, internal
API, edge proxy, with its own fresh database and a Tansu broker) holds a public project loaded
with the generated repository, and nginx + fcgiwrap run `git http-backend` with the site's
storage root as GIT_PROJECT_ROOT. Only the transport differs: nginx forks http-backend, which
runs upload-pack; the edge authorizes every request through the internal API and streams the
pack from storage over gRPC.

DESIGN §9: a full clone is bound by the client's index-pack, so throughput should be at parity;
a proxy's cost shows up as fixed per-operation time (the shallow clone of a tiny repository), as
behaviour under load (50 concurrent clones) and as memory (the edge proxy's peak RSS).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]

from bench.common import (
    CACHE_DIR,
    MIB,
    TINY,
    ForeignCpu,
    Options,
    PeakSampler,
    RepoSpec,
    Side,
    alternate,
    children_cpu,
    clone_attempt,
    clone_headers,
    clone_row,
    compare,
    comparison,
    conditions,
    cpu_cell,
    cpu_delta,
    ensure_installed,
    git,
    host_facts,
    log,
    mb_cell,
    megabytes,
    memory_run,
    pack_bytes,
    print_clone_ratios,
    print_foreign_warning,
    print_overhead,
    print_table,
    process_tree,
    rss,
    rss_by_name,
    run_area,
    start_process,
    total_cpu,
    wait_until,
)
from bench.sites import Project, bench_site, load_project, site_side
from geogit.common.net import free_port
from geogit.devstack.ports import LOOPBACK

TARGET = 0.9
CONCURRENCY = 50
# fcgiwrap serves one request per process: with Debian's default of one process, 50 clients
# would queue behind each other. One per concurrent client gives the anchor its best case.
FCGI_CHILDREN = CONCURRENCY
CLONE_TIMEOUT = 600.0
NAMES = ("nginx", "edge")  # anchor, subject: the keys of every comparison
NGINX_PACKAGES = {"nginx": "nginx", "fcgiwrap": "fcgiwrap"}  # binary -> package


# Anchor: nginx + fcgiwrap + git http-backend -----------------------------------------------


_NGINX_CONF = """\
daemon off;
master_process on;
worker_processes auto;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 0;
    server {{
        listen {host}:{port};
        location ~ /(.*\\.git/(info/refs|git-upload-pack|git-receive-pack))$ {{
            fastcgi_pass unix:{socket};
            fastcgi_buffering off;
            fastcgi_param SCRIPT_FILENAME {backend};
            fastcgi_param GIT_PROJECT_ROOT {root};
            fastcgi_param GIT_HTTP_EXPORT_ALL "";
            fastcgi_param PATH_INFO /$1;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param HTTP_GIT_PROTOCOL $http_git_protocol;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
        }}
    }}
}}
"""


class CpuGroup:
    """A cgroup of our own whose CPU counter covers every process that ever ran in it.

    fcgiwrap's workers ignore SIGCHLD, so the kernel reaps http-backend, upload-pack and
    pack-objects and their CPU reaches no parent's rusage (and the workers themselves are
    orphaned when the master stops): psutil cannot see it. A process started through `wrap`
    joins the group before it execs, so all its descendants are counted. Created under our
    own cgroup (v1 cpuacct, else v2), so whatever limits apply to us still apply; None when
    cgroups are not writable here.
    """

    def __init__(self, path: Path, usage: Callable[[Path], float]) -> None:
        self.path = path
        self._usage = usage

    @classmethod
    def create(cls, name: str) -> CpuGroup | None:
        mounts = {}  # "cpuacct" / "cgroup2" -> mount point
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields, _, tail = line.partition(" - ")
            fstype, _, options = tail.split()[:3]
            if fstype == "cgroup" and "cpuacct" in options.split(","):
                mounts["cpuacct"] = fields.split()[4]
            elif fstype == "cgroup2":
                mounts["cgroup2"] = fields.split()[4]
        ours = {}  # "cpuacct" / "cgroup2" -> our path in that hierarchy
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "cpuacct" in controllers.split(","):
                ours["cpuacct"] = path
            elif controllers == "":
                ours["cgroup2"] = path
        for kind, usage in (("cpuacct", _cpuacct_usage), ("cgroup2", _cgroup2_usage)):
            if kind in mounts and kind in ours:
                where = Path(mounts[kind]) / ours[kind].lstrip("/") / name
                try:
                    where.mkdir()
                    group = cls(where, usage)
                    group.seconds()
                    return group
                except OSError:
                    with suppress(OSError):
                        where.rmdir()
        return None

    def wrap(self, argv: list[str]) -> list[str]:
        join = f'echo $$ > "{self.path}/cgroup.procs" && exec "$@"'
        return ["sh", "-c", join, "sh", *argv]

    def seconds(self) -> float:
        return self._usage(self.path)

    def remove(self) -> None:
        """Once its processes are gone (orphans wait for init to reap them: retry a while)."""
        deadline = time.monotonic() + 10
        while True:
            try:
                self.path.rmdir()
                return
            except OSError as exc:
                if time.monotonic() > deadline:
                    log(f"could not remove cgroup {self.path}: {exc}")
                    return
                time.sleep(0.1)


def _cpuacct_usage(path: Path) -> float:
    return int((path / "cpuacct.usage").read_text()) / 1e9


def _cgroup2_usage(path: Path) -> float:
    stats = dict(line.split() for line in (path / "cpu.stat").read_text().splitlines())
    return int(stats["usage_usec"]) / 1e6


@contextmanager
def nginx_git(
    root: Path, work: Path, projects: Sequence[Project], foreign: ForeignCpu
) -> Iterator[Side]:
    """nginx in front of fcgiwrap in front of `git http-backend`, serving `root` on loopback.

    Yields the anchor side for `projects` (under `root`); nginx and fcgiwrap are stopped on
    the way out, and the CPU of fcgiwrap's orphaned descendants is handed to `foreign`.
    """
    binaries = ensure_installed(NGINX_PACKAGES)
    nginx_bin, fcgiwrap_bin = binaries["nginx"], binaries["fcgiwrap"]
    work.mkdir(parents=True, exist_ok=True)
    sock, port = work / "fcgiwrap.sock", free_port(LOOPBACK)
    backend = Path(git("--exec-path").strip()) / "git-http-backend"
    conf = work / "nginx.conf"
    conf.write_text(
        _NGINX_CONF.format(
            user="user root;" if os.geteuid() == 0 else "",
            dir=work,
            host=LOOPBACK,
            port=port,
            socket=sock,
            backend=backend,
            root=root,
        )
    )
    url = f"http://{LOOPBACK}:{port}"
    with ExitStack() as stack:
        log_file = stack.enter_context(open(work / "processes.log", "ab"))
        group = CpuGroup.create(f"geogit-bench-fcgiwrap-{os.getpid()}")
        argv = [fcgiwrap_bin, "-c", str(FCGI_CHILDREN), "-s", f"unix:{sock}"]
        if group is None:
            log("WARNING: no writable cgroup: http-backend's CPU is not counted (and shows up as")
            log("foreign CPU), since fcgiwrap's workers leave their children to the kernel")
        else:
            stack.callback(group.remove)
            argv = group.wrap(argv)
        fcgiwrap = start_process(stack, argv, log_file)
        master = psutil.Process(fcgiwrap.pid)
        if group is not None:
            # Runs before fcgiwrap is stopped: all but the master's own CPU is never reaped.
            stack.callback(
                lambda: setattr(foreign, "unreaped", group.seconds() - total_cpu([master]))
            )
        wait_until(lambda: sock.exists(), fcgiwrap, "fcgiwrap socket", work)
        nginx = start_process(
            stack,
            [nginx_bin, "-p", str(work), "-c", str(conf), "-e", str(work / "error.log")],
            log_file,
        )
        urls = {p.spec.key: f"{url}/{p.relative_path}" for p in projects}
        probe_url = f"{urls[projects[0].spec.key]}/info/refs"
        wait_until(lambda: _answers(probe_url), nginx, "nginx", work)
        nginx_proc = psutil.Process(nginx.pid)

        def cpu() -> dict[str, float]:
            fcgi = group.seconds() if group is not None else total_cpu(process_tree([master]))
            return {"nginx": total_cpu(process_tree([nginx_proc])), "fcgiwrap_git": fcgi}

        yield Side("nginx", urls, cpu, _nginx_probe(nginx_proc, master))


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _nginx_probe(nginx: psutil.Process, fcgiwrap: psutil.Process) -> Callable[[], dict[str, int]]:
    """nginx's master and workers; fcgiwrap's, and the git children of http-backend."""

    def probe() -> dict[str, int]:
        return {
            "nginx": sum(rss(p) for p in process_tree([nginx])),
            **rss_by_name(fcgiwrap, "fcgiwrap"),
        }

    return probe


# Measurements --------------------------------------------------------------------------------


@dataclass
class Burst:
    """Rounds of CONCURRENCY clones started at once against one side."""

    walls: list[float] = field(default_factory=list)
    per_clone: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    server_cpu: list[dict[str, float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    peaks: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "rounds": len(self.walls),
            "clones": len(self.per_clone),
            "wall_median_s": round(statistics.median(self.walls), 3),
            "walls_s": [round(w, 3) for w in self.walls],
            "per_clone_median_s": round(statistics.median(self.per_clone), 3),
            "per_clone_max_s": round(max(self.per_clone), 3),
            "cpu_median_s": round(statistics.median(self.cpu), 2),
            "server_cpu_median_s": {
                name: round(statistics.median(parts[name] for parts in self.server_cpu), 2)
                for name in self.server_cpu[0]
            },
            "errors": len(self.failures),
            "error_samples": self.failures[:5],
            "peak_mb": megabytes(self.peaks),
        }


def burst(side: Side, spec: RepoSpec, expected_head: str, result: Burst) -> None:
    """CONCURRENCY `git clone`s at once from a thread pool; each checked for the right HEAD."""
    url = side.urls[spec.key]
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="burst-") as tmp:

        def one(i: int) -> tuple[float, str | None]:
            return clone_attempt((), url, f"{tmp}/{i}", CLONE_TIMEOUT)

        client_before, server_before = children_cpu(), side.cpu()
        with PeakSampler(side.probe) as sampler, ThreadPoolExecutor(CONCURRENCY) as pool:
            started = time.perf_counter()
            outcomes = list(pool.map(one, range(CONCURRENCY)))
            wall = time.perf_counter() - started
        server = cpu_delta(side.cpu(), server_before)
        result.server_cpu.append(server)
        result.cpu.append(children_cpu() - client_before + sum(server.values()))
        for i, (_, error) in enumerate(outcomes):
            if error is None:
                head = subprocess.run(
                    ["git", "-C", f"{tmp}/{i}", "rev-parse", "HEAD"],
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout.strip()
                if head != expected_head:
                    result.failures.append(f"clone {i}: HEAD {head!r}, expected {expected_head}")
            else:
                result.failures.append(f"clone {i}: {error}")
    result.walls.append(wall)
    result.per_clone.extend(seconds for seconds, _ in outcomes)
    for name, value in sampler.peaks.items():
        result.peaks[name] = max(result.peaks.get(name, 0), value)


def run(options: Options) -> dict[str, Any]:
    ensure_installed(NGINX_PACKAGES)
    spec = options.spec
    return run_area(
        options,
        lambda foreign: _run_stack(spec, options.repeat, foreign),
        _report,
        prebuilt=(spec, TINY),
    )


def _run_stack(spec: RepoSpec, repeat: int, foreign: ForeignCpu) -> dict[str, Any]:
    """Broker, site and nginx up, both projects loaded; everything stopped on the way out."""
    with bench_site("edge-") as (tmp, site, token):
        main = load_project(site, token, spec)
        tiny = load_project(site, token, TINY)
        with nginx_git(site.repositories_dir, tmp / "nginx", [tiny, main], foreign) as anchor:
            urls = {p.spec.key: f"{site.http_url}/{p.full_path}.git" for p in (main, tiny)}
            subject = site_side(site, "edge", "edge-proxy", urls)
            return _measure(anchor, subject, main, tiny, repeat)


def _measure(
    anchor: Side, subject: Side, main: Project, tiny: Project, repeat: int
) -> dict[str, Any]:
    size, spec = pack_bytes(main.path), main.spec
    log(f"{spec.key}: pack {size / MIB:.1f} MiB")
    edge_idle = subject.probe()["edge"]
    full = compare(anchor, subject, spec, repeat)
    shallow_tiny = compare(anchor, subject, TINY, repeat, "--depth", "1")
    peaks, memory_cpu = memory_run((anchor, subject), spec)
    log(f"{CONCURRENCY} concurrent clones of {TINY.key}, {repeat} rounds each way")
    tiny_head = git("--git-dir", str(tiny.path), "rev-parse", "HEAD").strip()
    bursts = Burst(), Burst()
    rounds = alternate(
        partial(burst, anchor, TINY, tiny_head, bursts[0]),
        partial(burst, subject, TINY, tiny_head, bursts[1]),
        repeat,
        warm=False,
    )
    for i, _ in enumerate(rounds, 1):
        log(
            f"round {i}/{repeat}: {anchor.name} {bursts[0].walls[-1]:.2f} s, "
            f"{subject.name} {bursts[1].walls[-1]:.2f} s"
        )
    return {
        "repository": spec.key,
        "pack_bytes": size,
        **host_facts(repeat),
        "fcgiwrap_children": FCGI_CHILDREN,
        "full_clone": comparison(NAMES, *full, size),
        "shallow_clone_tiny": comparison(NAMES, *shallow_tiny),
        "concurrent_clones_tiny": {
            "concurrency": CONCURRENCY,
            "nginx": bursts[0].as_json(),
            "edge": bursts[1].as_json(),
            "ratio": round(
                statistics.median(bursts[0].walls) / statistics.median(bursts[1].walls), 3
            ),
        },
        # Server CPU by process for the memory run's full clone.
        "full_clone_server_cpu_s": memory_cpu,
        "memory_mb": {"edge_idle": round(edge_idle / MIB, 1), **peaks},
    }


def _report(r: dict[str, Any]) -> None:
    full, tiny, conc = r["full_clone"], r["shallow_clone_tiny"], r["concurrent_clones_tiny"]
    print(
        f"\nedge clone benchmark: {r['repository']} (pack {r['pack_bytes'] / MIB:.1f} MiB), "
        f"{r['git_version']}, {conditions(r)}\n"
    )
    print_table(
        clone_headers("operation", *NAMES),
        [
            clone_row("full clone", full, NAMES),
            clone_row(f"shallow clone --depth 1 ({TINY.key})", tiny, NAMES),
        ],
    )
    print()
    n, e = conc["nginx"], conc["edge"]
    print_table(
        [
            f"{conc['concurrency']} concurrent clones ({TINY.key})",
            "wall s",
            "per-clone median s",
            "per-clone max s",
            "CPU s",
            "errors",
        ],
        [
            [
                name,
                f"{b['wall_median_s']:.2f}",
                f"{b['per_clone_median_s']:.3f}",
                f"{b['per_clone_max_s']:.3f}",
                f"{b['cpu_median_s']:.2f}",
                f"{b['errors']}/{b['clones']}",
            ]
            for name, b in (
                (f"nginx + fcgiwrap (-c {r['fcgiwrap_children']})", n),
                ("edge proxy", e),
            )
        ],
    )
    mem, cpu, count = r["memory_mb"], r["full_clone_server_cpu_s"], conc["concurrency"]
    rows = []
    for side, key, label in _PROCESSES:
        burst, full_peak = conc[side], mem.get(f"{side}_{key}_peak")
        burst_peak = burst["peak_mb"].get(key)
        if burst_peak == 0 and "children" in key:
            burst_peak = "-"  # sampling every 50 ms rarely catches a tiny clone's git processes
        rows.append(
            [
                label,
                mb_cell(full_peak),
                mb_cell(burst_peak),
                cpu_cell(cpu[side], key),
                cpu_cell(burst["server_cpu_median_s"], key),
            ]
        )
    rows[0][1] += f" (idle {mem['edge_idle']:.1f})"
    print()
    print_table(
        [
            "server process",
            "peak RSS MB full clone",
            f"peak RSS MB {count} clones",
            "CPU s full clone",
            f"CPU s {count} clones",
        ],
        rows,
    )
    print(
        "(ratio = nginx time / edge time, 1.0 is parity; CPU s in the first tables = client git"
        " plus every server process below; PostgreSQL, behind the internal API, is not counted)"
    )
    print()
    print_foreign_warning(r)
    print_clone_ratios(full, NAMES, TARGET)
    print_overhead("shallow clone tiny", tiny, NAMES)
    print(
        f"ratio {conc['concurrency']} concurrent clones edge/nginx: {conc['ratio']:.2f} "
        f"(wall {n['wall_median_s']:.2f} s vs {e['wall_median_s']:.2f} s)"
    )
    print(
        f"errors in {conc['concurrency']} concurrent clones: edge {e['errors']}, "
        f"nginx {n['errors']} (target 0; {e['rounds']} rounds each)"
    )
    peak = max(mem["edge_edge_peak"], e["peak_mb"]["edge"])
    print(f"edge peak RSS: {peak:.0f} MB (idle {mem['edge_idle']:.0f} MB)")


# (side, probe/CPU key, label); CPU keys that no probe has (and vice versa) print blank.
_PROCESSES = [
    ("edge", "edge", "edge proxy (python)"),
    ("edge", "internal_api", "internal API (python)"),
    ("edge", "storage", "storage server (python; CPU with its git children)"),
    ("edge", "storage_children", "storage git children"),
    ("nginx", "nginx", "nginx (master + workers)"),
    ("nginx", "fcgiwrap", "fcgiwrap (master + workers)"),
    ("nginx", "git_children", "http-backend git children"),
    ("nginx", "fcgiwrap_git", "fcgiwrap + http-backend git children (CPU)"),
]
