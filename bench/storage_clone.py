"""Clone through storage (SSHUploadPack via the git-ssh helper) versus `git clone file://`.

Both sides clone the very same bare repository on disk (repacked with bitmaps), so the only
difference is the transport: file:// runs upload-pack as a direct child of the client, storage
puts the helper, a gRPC stream and the storage server between them. DESIGN §9 says a full clone
is bound by the client's index-pack, so throughput should be at parity and what a proxy costs
shows up as fixed per-operation time and as memory; this measures all three.
"""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.common import (
    CACHE_DIR,
    MIB,
    CloneRun,
    ForeignCpu,
    Options,
    RepoSpec,
    Timing,
    clean_env,
    descendants,
    generated_repo,
    git,
    load_average,
    log,
    pack_bytes,
    print_table,
    rss,
    timed_clone,
)
from geogit.common.paths import hashed_repository_path
from geogit.common.proto.storage.v1 import shared_pb2
from geogit.storage.testing import StorageProcess

TARGET = 0.9
LARGE = RepoSpec()
QUICK = RepoSpec(commits=500, binary_mb=10)
# No binaries, a handful of files: a shallow clone of it is almost all per-operation cost.
TINY = RepoSpec(commits=5, files=10, binary_mb=0)
HELPER_MODULE = "geogit.storage.ssh_helper"
STORAGE_DIR = CACHE_DIR / "storage"
# Clones need no internal API (only pushes call it); nothing listens here.
NO_INTERNAL_API = "http://127.0.0.1:9"


class Target:
    """One repository served both ways: as a file:// URL and through storage."""

    def __init__(self, storage: StorageProcess, spec: RepoSpec) -> None:
        self.storage = storage
        self.spec = spec
        self.repo = _repository(storage, spec)
        self.path = storage.path_of(self.repo)
        self.file_url = f"file://{self.path}"
        assert storage.proc is not None
        self.server = psutil.Process(storage.proc.pid)

    def anchor(self, *args: str) -> CloneRun:
        return timed_clone(["clone", "-q", "--no-local", *args, self.file_url], clean_env())

    def subject(
        self, *args: str, probe: Callable[[int], Mapping[str, int]] | None = None
    ) -> CloneRun:
        # A fresh environment per run: it carries a storage token that expires after a minute.
        env = self.storage.git_env(self.repo)
        argv = ["clone", "-q", *args, StorageProcess.url(self.repo)]
        return timed_clone(argv, env, probe, server=self.server)

    def compare(self, repeat: int, *args: str) -> tuple[Timing, Timing]:
        """Median of `repeat` runs each, interleaved so drift (cache, CPU clock) hits both."""
        log(f"warming: {self.spec.key} clone {' '.join(args)}")
        self.anchor(*args)
        self.subject(*args)
        anchor, subject = Timing(), Timing()
        for i in range(repeat):
            anchor.runs.append(self.anchor(*args))
            subject.runs.append(self.subject(*args))
            a, s = anchor.runs[-1], subject.runs[-1]
            log(
                f"run {i + 1}/{repeat}: file {a.seconds:.3f} s ({a.cpu:.2f} CPU s), "
                f"storage {s.seconds:.3f} s ({s.cpu:.2f} CPU s)"
            )
        return anchor, subject


def _repository(storage: StorageProcess, spec: RepoSpec) -> shared_pb2.Repository:
    """The spec's repository in storage, populated once and reused across runs.

    Filled behind storage's back (a local fetch) and repacked with bitmaps, as a busy
    production repository would be after housekeeping. A marker beside the storage root says
    the work finished; without it the repository is rebuilt.
    """
    project_id = zlib.crc32(spec.key.encode()) % 10**9 + 1
    repo = shared_pb2.Repository(
        storage_name=storage.name,
        relative_path=hashed_repository_path(project_id),
        gl_repository=f"project-{project_id}",
        gl_project_path=f"bench/{spec.key}",
    )
    path = storage.path_of(repo)
    marker = STORAGE_DIR / f"{spec.key}.ready"
    if marker.exists() and path.exists():
        return repo
    source = generated_repo(spec)
    shutil.rmtree(path, ignore_errors=True)
    storage.create(project_id=project_id)
    log(f"loading {spec.key} into storage and repacking with bitmaps")
    git("--git-dir", str(path), "fetch", "-q", str(source), "+refs/*:refs/*")
    git("--git-dir", str(path), "repack", "-adbq")
    marker.write_text(git("--git-dir", str(path), "rev-parse", "HEAD"))
    return repo


def _memory_probe(server: psutil.Process) -> Callable[[int], dict[str, int]]:
    """RSS of the server, of its git children, and of the client-side helper and git."""

    def probe(clone_pid: int) -> dict[str, int]:
        client = descendants(clone_pid)
        children = descendants(server.pid)
        helpers = [p for p in client if _is_helper(p)]
        client_git = [p for p in client if p not in helpers] + [psutil.Process(clone_pid)]
        return {
            "server": rss(server),
            "server_children": sum(rss(p) for p in children),
            # Without file-backed pages: pack-objects maps the whole pack, which the page
            # cache holds anyway.
            "server_children_anon": sum(rss(p, anonymous=True) for p in children),
            "helper": sum(rss(p) for p in helpers),
            "client_git": sum(rss(p) for p in client_git),
        }

    return probe


def _is_helper(proc: psutil.Process) -> bool:
    """The Python helper itself, not the `sh -c` git may wrap it in."""
    try:
        return HELPER_MODULE in proc.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False


def _git_objects(path: Path) -> int:
    counts = dict(
        line.split(": ", 1)
        for line in git("--git-dir", str(path), "count-objects", "-v").splitlines()
    )
    return int(counts["in-pack"]) + int(counts["count"])


def run(options: Options) -> dict[str, Any]:
    spec = QUICK if options.quick else LARGE
    load_before = load_average()
    storage = StorageProcess(STORAGE_DIR / "repositories", NO_INTERNAL_API)
    with ForeignCpu() as foreign:
        storage.start()
        try:
            results = _measure(storage, spec, options.repeat)
        finally:
            storage.stop()
    results |= {
        "preset": "quick" if options.quick else "default",
        "load_average": {"before": load_before, "after": load_average()},
        "foreign_cpu": {"seconds": round(foreign.seconds, 1), "share": round(foreign.share, 3)},
    }
    _report(results)
    return results


def _measure(storage: StorageProcess, spec: RepoSpec, repeat: int) -> dict[str, Any]:
    main, tiny = Target(storage, spec), Target(storage, TINY)
    size, objects = pack_bytes(main.path), _git_objects(main.path)
    log(f"{spec.key}: {objects} objects, pack {size / MIB:.1f} MiB")
    full = main.compare(repeat)
    shallow = main.compare(repeat, "--depth", "1")
    shallow_tiny = tiny.compare(repeat, "--depth", "1")
    log("memory run: one more clone through storage, sampling RSS every 50 ms")
    server_idle = rss(main.server)
    peaks = main.subject(probe=_memory_probe(main.server)).peaks
    return {
        "repository": spec.key,
        "objects": objects,
        "pack_bytes": size,
        "git_version": git("--version").strip(),
        "cpus": psutil.cpu_count(),
        "repeat": repeat,
        "full_clone": _comparison(*full, size),
        "shallow_clone": _comparison(*shallow),
        "shallow_clone_tiny": _comparison(*shallow_tiny),
        "memory_mb": {
            "server_idle": round(server_idle / MIB, 1),
            **{f"{name}_peak": round(value / MIB, 1) for name, value in peaks.items()},
        },
    }


def _comparison(anchor: Timing, subject: Timing, size: int | None = None) -> dict[str, Any]:
    """Ratio is file-time / storage-time: storage speed relative to file://, 1.0 is parity."""
    out: dict[str, Any] = {
        "file": anchor.as_json(),
        "storage": subject.as_json(),
        "ratio": round(anchor.median / subject.median, 3),
        "overhead_ms": round((subject.median - anchor.median) * 1000, 1),
        "cpu_ratio": round(subject.median_cpu / anchor.median_cpu, 2),
    }
    if size is not None:
        out["file"]["mib_per_s"] = round(size / MIB / anchor.median, 1)
        out["storage"]["mib_per_s"] = round(size / MIB / subject.median, 1)
    return out


def _report(r: dict[str, Any]) -> None:
    full, shallow, tiny = r["full_clone"], r["shallow_clone"], r["shallow_clone_tiny"]
    print(
        f"\nstorage clone benchmark: {r['repository']} ({r['objects']} objects, "
        f"pack {r['pack_bytes'] / MIB:.1f} MiB), {r['git_version']}, {r['cpus']} CPUs, "
        f"median of {r['repeat']}, load average {r['load_average']['before']} before, "
        f"{r['load_average']['after']} after\n"
    )
    rows = [
        [
            "full clone",
            *_cells(full),
            f"{full['file']['mib_per_s']:.1f}",
            f"{full['storage']['mib_per_s']:.1f}",
        ],
        ["shallow clone --depth 1", *_cells(shallow), "", ""],
        [f"shallow clone --depth 1 ({TINY.key})", *_cells(tiny), "", ""],
    ]
    print_table(
        [
            "operation",
            "file:// s",
            "storage s",
            "ratio",
            "overhead ms",
            "file CPU s",
            "storage CPU s",
            "file MiB/s",
            "storage MiB/s",
        ],
        rows,
    )
    mem = r["memory_mb"]
    print()
    print_table(
        ["process (full clone through storage)", "peak RSS MB"],
        [
            [
                "storage server (python)",
                f"{mem['server_peak']:.1f} (idle {mem['server_idle']:.1f})",
            ],
            [
                "storage children (upload-pack, pack-objects)",
                f"{mem['server_children_peak']:.1f} "
                f"(anonymous {mem['server_children_anon_peak']:.1f})",
            ],
            ["git-ssh helper (client side)", f"{mem['helper_peak']:.1f}"],
            ["client git (clone, index-pack)", f"{mem['client_git_peak']:.1f}"],
        ],
    )
    print(
        "(ratio = file:// time / storage time, 1.0 is parity; CPU s = every process involved:"
        " client git, helper, storage server and its git children)"
    )
    print()
    foreign = r["foreign_cpu"]
    if foreign["share"] > 0.1:
        print(
            f"WARNING: other processes used {foreign['seconds']:.0f} CPU s "
            f"({foreign['share']:.0%} of the machine) during this run: timings are skewed"
        )
    print(f"ratio clone throughput storage/file: {full['ratio']:.2f} (target >= {TARGET})")
    print(
        f"ratio clone CPU storage/file: {full['cpu_ratio']:.2f} "
        f"({full['file']['median_cpu_s']:.2f} vs {full['storage']['median_cpu_s']:.2f} CPU s)"
    )
    print(
        f"ratio shallow clone storage/file: {shallow['ratio']:.2f} "
        f"({shallow['overhead_ms']:+.0f} ms per clone)"
    )
    print(
        f"ratio shallow clone tiny storage/file: {tiny['ratio']:.2f} "
        f"({tiny['overhead_ms']:+.0f} ms per clone)"
    )
    print(
        f"peak RSS storage server: {mem['server_peak']:.1f} MB, "
        f"its git children: {mem['server_children_peak']:.1f} MB, "
        f"git-ssh helper: {mem['helper_peak']:.1f} MB"
    )


def _cells(c: dict[str, Any]) -> list[str]:
    return [
        f"{c['file']['median_s']:.3f}",
        f"{c['storage']['median_s']:.3f}",
        f"{c['ratio']:.2f}",
        f"{c['overhead_ms']:+.0f}",
        f"{c['file']['median_cpu_s']:.2f}",
        f"{c['storage']['median_cpu_s']:.2f}",
    ]
