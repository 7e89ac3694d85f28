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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.common import (
    CACHE_DIR,
    MIB,
    TINY,
    CloneRun,
    Options,
    RepoSpec,
    clean_env,
    clone_headers,
    clone_row,
    compare,
    comparison,
    conditions,
    descendants,
    generated_repo,
    git,
    host_facts,
    log,
    megabytes,
    pack_bytes,
    print_clone_ratios,
    print_foreign_warning,
    print_overhead,
    print_table,
    rss,
    run_area,
    timed_clone,
)
from geogit.common.paths import hashed_repository_path
from geogit.common.proto.storage.v1 import shared_pb2
from geogit.storage.testing import StorageProcess

TARGET = 0.9
NAMES = ("file", "storage")  # anchor, subject: the keys of every comparison
HELPER_MODULE = "geogit.storage.ssh_helper"
STORAGE_DIR = CACHE_DIR / "storage"
# Clones need no internal API (only pushes call it); nothing listens here.
NO_INTERNAL_API = "http://127.0.0.1:9"


@dataclass(frozen=True)
class FileSide:
    """The anchor: `git clone --no-local file://`, upload-pack a direct child of the client."""

    paths: dict[str, Path]  # spec key -> bare repository
    name: str = "file"

    def clone(self, spec: RepoSpec, *args: str) -> CloneRun:
        url = f"file://{self.paths[spec.key]}"
        return timed_clone(["clone", "-q", "--no-local", *args, url], clean_env())


@dataclass(frozen=True)
class StorageSide:
    """The subject: the same repositories through the git-ssh helper and storage's RPC."""

    storage: StorageProcess
    repos: dict[str, shared_pb2.Repository]  # spec key -> repository
    server: psutil.Process
    name: str = "storage"

    def clone(
        self, spec: RepoSpec, *args: str, probe: Callable[[int], Mapping[str, int]] | None = None
    ) -> CloneRun:
        repo = self.repos[spec.key]
        # A fresh environment per run: it carries a storage token that expires after a minute.
        env = self.storage.git_env(repo)
        argv = ["clone", "-q", *args, StorageProcess.url(repo)]
        return timed_clone(argv, env, probe, server=self.server)


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
    storage = StorageProcess(STORAGE_DIR / "repositories", NO_INTERNAL_API)
    return run_area(options, lambda _: _serve(storage, options.spec, options.repeat), _report)


def _serve(storage: StorageProcess, spec: RepoSpec, repeat: int) -> dict[str, Any]:
    """The server up for the measurements, and stopped before ForeignCpu reads the counters."""
    storage.start()
    try:
        return _measure(storage, spec, repeat)
    finally:
        storage.stop()


def _measure(storage: StorageProcess, spec: RepoSpec, repeat: int) -> dict[str, Any]:
    repos = {s.key: _repository(storage, s) for s in (spec, TINY)}
    assert storage.proc is not None
    anchor = FileSide({key: storage.path_of(repo) for key, repo in repos.items()})
    subject = StorageSide(storage, repos, psutil.Process(storage.proc.pid))
    path = anchor.paths[spec.key]
    size, objects = pack_bytes(path), _git_objects(path)
    log(f"{spec.key}: {objects} objects, pack {size / MIB:.1f} MiB")
    full = compare(anchor, subject, spec, repeat)
    shallow = compare(anchor, subject, spec, repeat, "--depth", "1")
    shallow_tiny = compare(anchor, subject, TINY, repeat, "--depth", "1")
    log("memory run: one more clone through storage, sampling RSS every 50 ms")
    server_idle = rss(subject.server)
    peaks = subject.clone(spec, probe=_memory_probe(subject.server)).peaks
    return {
        "repository": spec.key,
        "objects": objects,
        "pack_bytes": size,
        **host_facts(repeat),
        "full_clone": comparison(NAMES, *full, size),
        "shallow_clone": comparison(NAMES, *shallow),
        "shallow_clone_tiny": comparison(NAMES, *shallow_tiny),
        "memory_mb": {
            "server_idle": round(server_idle / MIB, 1),
            **megabytes(peaks, suffix="_peak"),
        },
    }


def _report(r: dict[str, Any]) -> None:
    full, shallow, tiny = r["full_clone"], r["shallow_clone"], r["shallow_clone_tiny"]
    print(
        f"\nstorage clone benchmark: {r['repository']} ({r['objects']} objects, "
        f"pack {r['pack_bytes'] / MIB:.1f} MiB), {r['git_version']}, {conditions(r)}\n"
    )
    print_table(
        clone_headers("operation", *NAMES, anchor_seconds="file://"),
        [
            clone_row("full clone", full, NAMES),
            clone_row("shallow clone --depth 1", shallow, NAMES),
            clone_row(f"shallow clone --depth 1 ({TINY.key})", tiny, NAMES),
        ],
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
    print_foreign_warning(r)
    print_clone_ratios(full, NAMES, TARGET)
    print_overhead("shallow clone", shallow, NAMES)
    print_overhead("shallow clone tiny", tiny, NAMES)
    print(
        f"peak RSS storage server: {mem['server_peak']:.1f} MB, "
        f"its git children: {mem['server_children_peak']:.1f} MB, "
        f"git-ssh helper: {mem['helper_peak']:.1f} MB"
    )
