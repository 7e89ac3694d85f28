"""Clone storm: 20 CI-style clones of one commit at once, through nginx + `git http-backend`
(the anchor) and through a geogit site with storage's pack-objects cache off and on.

CI fleets clone the same commit dozens of times at once. Without a cache every clone runs its
own `pack-objects`; with it, the first request runs it and the others read the same entry as it
is written (services/storage/src/geogit/storage/pack_cache). The figure that matters is server
CPU per clone: http-backend's process tree (fcgiwrap's cgroup) against storage's (storage and
every git it runs: upload-pack, the pack-objects hook, pack-objects). The edge proxy and the
internal API are reported beside it, with the peak RSS of edge and storage. Each side runs one
storm of `--depth 1` clones and one of full clones; storage is restarted (its cache emptied)
before each geogit storm, so every cache-on storm starts cold, as a new commit's would.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from bench.common import (
    CACHE_DIR,
    MIB,
    ForeignCpu,
    Options,
    PeakSampler,
    RepoSpec,
    Side,
    clean_env,
    clone_attempt,
    conditions,
    cpu_delta,
    git,
    host_facts,
    log,
    megabytes,
    pack_bytes,
    print_foreign_warning,
    print_table,
    run_area,
)
from bench.edge_clone import nginx_git
from bench.sites import Project, bench_site, load_project, site_process, site_side
from geogit.devstack.site import Site

CONCURRENCY = 20
CLONE_TIMEOUT = 900.0
TARGET_CPU_RATIO = 3.0
# Large enough that pack-objects is real work, small enough that 3 sides x 2 storms x 20 clones
# fit in a few minutes on two cores (the default main repository would take the better part of
# an hour: each client's index-pack runs at ~20 MiB/s).
STORM = RepoSpec(commits=2000, files=400, binary_mb=40)
QUICK_STORM = RepoSpec(commits=300, files=100, binary_mb=5)
KINDS = {"depth1": ("--depth", "1"), "full": ()}
SIDES = ("nginx", "cache_off", "cache_on")
CACHE_ENV = "GEOGIT_PACK_CACHE_ENABLED"


@dataclass
class Storm:
    wall: float = 0.0
    per_clone: list[float] = field(default_factory=list)
    server_cpu: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    peaks: dict[str, int] = field(default_factory=dict)
    cache: dict[str, float] = field(default_factory=dict)

    def as_json(self, served_by: tuple[str, ...]) -> dict[str, Any]:
        served = sum(self.server_cpu.get(name, 0.0) for name in served_by)
        return {
            "clones": len(self.per_clone),
            "wall_s": round(self.wall, 2),
            "per_clone_median_s": round(statistics.median(self.per_clone), 2),
            "per_clone_max_s": round(max(self.per_clone), 2),
            "server_cpu_s": {name: round(value, 2) for name, value in self.server_cpu.items()},
            "server_cpu_per_clone_s": round(served / CONCURRENCY, 3),
            "errors": len(self.failures),
            "error_samples": self.failures[:3],
            "peak_mb": megabytes(self.peaks),
            **({"cache": self.cache} if self.cache else {}),
        }


def storm(side: Side, url: str, args: tuple[str, ...], head: str) -> Storm:
    """CONCURRENCY clones started together; each must finish with the expected HEAD."""
    result = Storm()
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="storm-") as tmp:

        def one(i: int) -> tuple[float, str | None]:
            elapsed, error = clone_attempt(args, url, f"{tmp}/{i}", CLONE_TIMEOUT)
            if error is not None:
                return elapsed, error
            cloned = git("-C", f"{tmp}/{i}", "rev-parse", "HEAD").strip()
            return elapsed, None if cloned == head else f"HEAD {cloned}, expected {head}"

        before = side.cpu()
        with PeakSampler(side.probe, 0.1) as sampler, ThreadPoolExecutor(CONCURRENCY) as pool:
            started = time.perf_counter()
            outcomes = list(pool.map(one, range(CONCURRENCY)))
            result.wall = time.perf_counter() - started
        result.server_cpu = cpu_delta(side.cpu(), before)
    result.per_clone = [seconds for seconds, _ in outcomes]
    result.failures = [f"clone {i}: {e}" for i, (_, e) in enumerate(outcomes) if e is not None]
    result.peaks = sampler.peaks
    return result


def run(options: Options) -> dict[str, Any]:
    spec = RepoSpec(source=str(options.repo)) if options.repo else STORM
    if options.quick and not options.repo:
        spec = QUICK_STORM
    return run_area(options, lambda foreign: _run_stack(spec, foreign), _report, prebuilt=(spec,))


def _run_stack(spec: RepoSpec, foreign: ForeignCpu) -> dict[str, Any]:
    with bench_site("storm-") as (tmp, site, token):
        project = load_project(site, token, spec)
        with nginx_git(site.repositories_dir, tmp / "nginx", [project], foreign) as anchor:
            return _measure(site, anchor, project)


def _restart_storage(site: Site, cache: bool, url: str) -> None:
    """Storage again with the cache on or off (and empty); ready once the edge reaches it."""
    site.supervisor.stop(site.process_name("storage"))
    site.extra_env[CACHE_ENV] = "true" if cache else "false"
    site.start_storage()
    deadline = time.monotonic() + 30
    probe = ["git", "ls-remote", url]
    while subprocess.run(probe, env=clean_env(), capture_output=True, check=False).returncode:
        if time.monotonic() > deadline:
            raise RuntimeError("the edge proxy does not reach the restarted storage")
        time.sleep(0.2)


def _with_storage_self(site: Site, side: Side) -> Side:
    """The side's CPU meter, plus storage's own CPU apart from its git children's."""
    storage, cpu = site_process(site, "storage"), side.cpu

    def meter() -> dict[str, float]:
        own = storage.cpu_times()
        return cpu() | {"storage_self": float(own.user + own.system)}

    return replace(side, cpu=meter)


def _cache_counters(site: Site) -> dict[str, float]:
    with urllib.request.urlopen(f"{site.storage_ops_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    counters: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("geogit_storage_pack_cache_") and "_total" in line:
            name, value = line.rsplit(" ", 1)
            name = name.removeprefix("geogit_storage_pack_cache_").replace("_total", "")
            counters[name] = counters.get(name, 0.0) + float(value)
    return counters


def _measure(site: Site, anchor: Side, project: Project) -> dict[str, Any]:
    size, spec = pack_bytes(project.path), project.spec
    head = git("--git-dir", str(project.path), "rev-parse", "HEAD").strip()
    url = f"{site.http_url}/{project.full_path}.git"
    anchor_url = anchor.urls[spec.key]
    log(f"{spec.key}: pack {size / MIB:.1f} MiB; warming the page cache with one clone")
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="warm-") as tmp:
        git("clone", "-q", anchor_url, f"{tmp}/c", env=clean_env())
    storms: dict[str, dict[str, Any]] = {}
    for kind, args in KINDS.items():
        storms[kind] = {}
        for name in SIDES:
            if name == "nginx":
                side = anchor
            else:
                _restart_storage(site, name == "cache_on", url)
                side = _with_storage_self(
                    site, site_side(site, "edge", "edge-proxy", {spec.key: url})
                )
            log(f"{kind} storm of {CONCURRENCY} clones: {name}")
            result = storm(side, anchor_url if name == "nginx" else url, args, head)
            if name == "cache_on":
                result.cache = _cache_counters(site)
            served_by = ("fcgiwrap_git",) if name == "nginx" else ("storage",)
            storms[kind][name] = result.as_json(served_by)
            log(
                f"  wall {result.wall:.1f} s, server CPU/clone "
                f"{storms[kind][name]['server_cpu_per_clone_s']:.3f} s, "
                f"errors {len(result.failures)}"
            )
    return {
        "repository": spec.key,
        "pack_bytes": size,
        "concurrency": CONCURRENCY,
        **host_facts(1),
        "storms": storms,
    }


def _report(r: dict[str, Any]) -> None:
    print(
        f"\nclone storm benchmark: {r['repository']} (pack {r['pack_bytes'] / MIB:.1f} MiB), "
        f"{r['concurrency']} concurrent clones, {r['git_version']}, {conditions(r)}\n"
    )
    rows = []
    for kind, sides in r["storms"].items():
        anchor_cpu = sides["nginx"]["server_cpu_per_clone_s"]
        for name, s in sides.items():
            cpu = s["server_cpu_s"]
            peaks = s["peak_mb"]
            rows.append(
                [
                    kind,
                    name,
                    f"{s['wall_s']:.1f}",
                    f"{s['per_clone_median_s']:.1f}",
                    f"{s['server_cpu_per_clone_s']:.3f}",
                    f"{anchor_cpu / s['server_cpu_per_clone_s']:.2f}",
                    f"{cpu['storage_self'] / r['concurrency']:.3f}"
                    if "storage_self" in cpu
                    else "",
                    f"{cpu['edge'] / r['concurrency']:.3f}" if "edge" in cpu else "",
                    f"{s['errors']}/{s['clones']}",
                    f"{peaks.get('edge', 0.0):.0f}" if "edge" in peaks else "",
                    f"{peaks.get('storage', 0.0):.0f}" if "storage" in peaks else "",
                    f"{peaks.get('storage_children', 0.0):.0f}" if "storage" in peaks else "",
                ]
            )
    print_table(
        [
            "storm",
            "side",
            "wall s",
            "clone median s",
            "server CPU s/clone",
            "anchor/side",
            "storage self s/clone",
            "edge CPU s/clone",
            "errors",
            "edge MB",
            "storage MB",
            "storage git MB",
        ],
        rows,
    )
    print(
        "(server CPU = http-backend's tree for nginx, storage with all its git children for"
        " geogit; peak RSS sampled every 100 ms)"
    )
    print_foreign_warning(r)
    for kind, sides in r["storms"].items():
        on, anchor = sides["cache_on"], sides["nginx"]
        ratio = anchor["server_cpu_per_clone_s"] / on["server_cpu_per_clone_s"]
        print(
            f"{kind}: CPU/clone http-backend {anchor['server_cpu_per_clone_s']:.3f} / cache off "
            f"{sides['cache_off']['server_cpu_per_clone_s']:.3f} / on "
            f"{on['server_cpu_per_clone_s']:.3f}: {ratio:.2f}x lower (target >= "
            f"{TARGET_CPU_RATIO:.0f}x); wall {anchor['wall_s']:.1f} vs {on['wall_s']:.1f} s; "
            f"cache {on.get('cache', {})}"
        )
