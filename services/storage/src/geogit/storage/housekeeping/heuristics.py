"""What a repository needs, decided from what is on disk (Gitaly's OptimizeRepository heuristics).

`inspect_repository` reads the repository's layout without running git (loose objects, packs, the
multi-pack-index, refs, the commit-graph, leftovers of crashed processes); `plan` turns that
into the steps housekeeping runs. Thresholds scale with the repository's size, so a large
repository is fully repacked rarely and a small one is kept tight.
"""

from __future__ import annotations

import enum
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

# More loose objects than this are rolled into a pack (git gc's default is 6700, Gitaly's
# 1024). Each loose object costs every clone and fetch a fresh compression and a delta search,
# and a disk block, while rolling them up costs only what they weigh (no history walk,
# housekeeper.py): so the limit is low, and in a small repository only a sixteenth of its
# packed objects, down to LOOSE_OBJECT_FLOOR.
LOOSE_OBJECT_LIMIT = 256
LOOSE_OBJECT_FLOOR = 64
LOOSE_OBJECT_SHARE = 16
# Unreachable loose objects past their grace period: this many make a prune worth it.
STALE_LOOSE_OBJECT_LIMIT = 1024
# Unreachable loose objects older than this may be pruned; cruft packs expire them alike.
STALE_OBJECT_SECONDS = 14 * 24 * 3600
# A full repack (which also expires unreachable objects) at most this often.
FULL_REPACK_COOLDOWN_SECONDS = 5 * 24 * 3600
# A push or fetch that has been quiet this long is dead (its process crashed or was killed).
STALE_QUARANTINE_SECONDS = 24 * 3600
STALE_TMP_PACK_SECONDS = 24 * 3600
# A lock git holds for more than an hour belongs to a process that died.
STALE_LOCK_SECONDS = 3600
# Written beside the repository's config after each full repack.
FULL_REPACK_MARKER = "geogit-full-repack-timestamp"
QUARANTINE_GLOBS = ("tmp_objdir-incoming-*", "incoming-*")
_HEX = frozenset("0123456789abcdef")


class Repack(enum.Enum):
    # Loose objects (reachable or not) into one new pack, no history walk; nothing else is
    # rewritten.
    INCREMENTAL = "incremental"
    # Packs merged so their sizes form a geometric progression, with a multi-pack-index and
    # its bitmap: cost scales with what is new, not with the repository.
    GEOMETRIC = "geometric"
    # Everything reachable into one pack, the unreachable into a cruft pack that expires.
    FULL = "full"


class CommitGraph(enum.Enum):
    # Append a layer to the split commit-graph.
    APPEND = "append"
    # Rewrite the whole chain (missing Bloom filters, or objects may have gone).
    REPLACE = "replace"


@dataclass(frozen=True)
class Packs:
    count: int = 0
    cruft: int = 0
    bytes: int = 0
    objects: int = 0
    # Packs the multi-pack-index covers; None without one.
    midx_packs: int | None = None
    bitmap: bool = False


@dataclass(frozen=True)
class RepositoryInfo:
    loose_objects: int = 0
    stale_loose_objects: int = 0
    packs: Packs = field(default_factory=Packs)
    loose_refs: int = 0
    packed_refs_bytes: int = 0
    commit_graph: bool = False
    commit_graph_bloom: bool = False
    # Seconds since the last full repack; None if none is recorded.
    since_full_repack: float | None = None
    stale_files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Plan:
    repack: Repack | None = None
    prune: bool = False
    pack_refs: bool = False
    commit_graph: CommitGraph | None = None
    stale_files: tuple[Path, ...] = ()

    @property
    def empty(self) -> bool:
        return (
            self.repack is None
            and not self.prune
            and not self.pack_refs
            and self.commit_graph is None
            and not self.stale_files
        )

    def steps(self) -> list[str]:
        """The step names, as metrics and logs label them."""
        names = ["clean_stale"] if self.stale_files else []
        if self.repack is not None:
            names.append(f"repack_{self.repack.value}")
        if self.prune:
            names.append("prune")
        if self.pack_refs:
            names.append("pack_refs")
        if self.commit_graph is not None:
            names.append(f"commit_graph_{self.commit_graph.value}")
        return names


def plan(info: RepositoryInfo) -> Plan:
    repack = repack_strategy(info)
    prune = info.stale_loose_objects > STALE_LOOSE_OBJECT_LIMIT
    return Plan(
        repack=repack,
        prune=prune,
        pack_refs=should_pack_refs(info),
        commit_graph=commit_graph_strategy(info, repack, prune),
        stale_files=info.stale_files,
    )


def repack_strategy(info: RepositoryInfo) -> Repack | None:
    packs = info.packs
    if packs.count == 0 and info.loose_objects == 0:
        return None
    # Regular full repacks evict unreachable objects into an expiring cruft pack: how long
    # garbage stays is then a matter of schedule, not of luck.
    never_full = info.since_full_repack is None
    if packs.count - packs.cruft > 1 and (
        never_full or (info.since_full_repack or 0) > FULL_REPACK_COOLDOWN_SECONDS
    ):
        return Repack.FULL
    # The next rule counts packs the multi-pack-index does not cover, so one must exist.
    if packs.midx_packs is None:
        return Repack.GEOMETRIC
    # New packs since the last geometric repack: allowed to pile up a little more the larger
    # the repository (2 below 10 MiB, 7 at 100 MiB, 11 at 1 GiB).
    allowed = max(2.0, math.log(max(packs.bytes / 1024 / 1024, 1.0)) / math.log(1.8))
    if packs.count - packs.midx_packs > int(allowed):
        return Repack.GEOMETRIC
    # The pack layout is fine; roll loose objects up without rewriting anything else.
    if info.loose_objects > loose_object_limit(packs):
        return Repack.INCREMENTAL
    return None


def loose_object_limit(packs: Packs) -> int:
    share = packs.objects // LOOSE_OBJECT_SHARE
    return min(LOOSE_OBJECT_LIMIT, max(LOOSE_OBJECT_FLOOR, share))


def should_pack_refs(info: RepositoryInfo) -> bool:
    """Loose refs allowed grow with packed-refs (16 up to ~10 refs, +16 per tenfold more):
    rewriting a huge packed-refs for every few refs would cost more than it saves."""
    if info.loose_refs == 0:
        return False
    size = max(info.packed_refs_bytes / 100, 1.0)
    allowed = max(16.0, math.log(size) / math.log(1.15))
    return info.loose_refs > int(allowed)


def commit_graph_strategy(
    info: RepositoryInfo, repack: Repack | None, prune: bool
) -> CommitGraph | None:
    if info.loose_refs == 0 and info.packed_refs_bytes == 0:
        return None  # no refs, nothing reachable to index
    # Pruned or expired objects may still be named by the graph; a graph without Bloom
    # filters cannot answer path-limited history fast: both need a fresh chain.
    if prune or repack is Repack.FULL or not info.commit_graph or not info.commit_graph_bloom:
        return CommitGraph.REPLACE
    if repack is not None:
        return CommitGraph.APPEND
    return None


# Reading the repository --------------------------------------------------------------------


def inspect_repository(path: Path, now: float | None = None) -> RepositoryInfo:
    """The repository's state from its files alone (cheap enough to run after every push)."""
    now = time.time() if now is None else now
    objects = path / "objects"
    loose, stale = _loose_objects(objects, now)
    refs, packed = _refs(path)
    graph, bloom = _commit_graph(objects / "info")
    return RepositoryInfo(
        loose_objects=loose,
        stale_loose_objects=stale,
        packs=_packs(objects / "pack"),
        loose_refs=refs,
        packed_refs_bytes=packed,
        commit_graph=graph,
        commit_graph_bloom=bloom,
        since_full_repack=_age(path / FULL_REPACK_MARKER, now),
        stale_files=tuple(stale_files(path, now)),
    )


def _loose_objects(objects: Path, now: float) -> tuple[int, int]:
    """Every loose object counted (256 small directory reads); their ages only when there are
    enough that pruning could be due."""
    names: list[Path] = []
    for entry in _scandir(objects):
        if len(entry.name) == 2 and set(entry.name) <= _HEX and entry.is_dir():
            names += [
                Path(e.path) for e in _scandir(Path(entry.path)) if not e.name.startswith("tmp_")
            ]
    stale = 0
    if len(names) > STALE_LOOSE_OBJECT_LIMIT:
        cutoff = now - STALE_OBJECT_SECONDS
        stale = sum(1 for name in names if (_mtime(name) or now) < cutoff)
    return len(names), stale


def _packs(pack_dir: Path) -> Packs:
    count = cruft = size = objects = 0
    bitmap = False
    for entry in _scandir(pack_dir):
        if entry.name.endswith(".pack") and entry.name.startswith("pack-"):
            stem = entry.name.removesuffix(".pack")
            if not (pack_dir / f"{stem}.idx").exists():
                continue  # being written, or a leftover
            count += 1
            size += entry.stat().st_size
            objects += _idx_objects(pack_dir / f"{stem}.idx")
            cruft += (pack_dir / f"{stem}.mtimes").exists()
        elif entry.name.endswith(".bitmap"):
            bitmap = True
    midx = _midx_packs(pack_dir / "multi-pack-index")
    return Packs(count, cruft, size, objects, midx, bitmap)


def _idx_objects(idx: Path) -> int:
    """The object count of a pack, the last entry of its index's fan-out table (version 2
    indexes start with an 8-byte header, version 1 ones with the table)."""
    try:
        with idx.open("rb") as f:
            head = f.read(8)
            f.seek(8 + 255 * 4 if head[:4] == b"\377tOc" else 255 * 4)
            last = f.read(4)
    except OSError:
        return 0
    return int.from_bytes(last, "big") if len(last) == 4 else 0


def _midx_packs(midx: Path) -> int | None:
    """The pack count in a multi-pack-index header ("MIDX", version, hash, chunks, bases,
    then a 4-byte big-endian number of packs)."""
    try:
        with midx.open("rb") as f:
            header = f.read(12)
    except OSError:
        return None
    if len(header) < 12 or header[:4] != b"MIDX":
        return None
    return int.from_bytes(header[8:12], "big")


def _refs(path: Path) -> tuple[int, int]:
    loose = 0
    for _, _, files in os.walk(path / "refs"):
        loose += sum(1 for name in files if not name.endswith(".lock"))
    try:
        packed = (path / "packed-refs").stat().st_size
    except OSError:
        packed = 0
    return loose, packed


def _commit_graph(info_dir: Path) -> tuple[bool, bool]:
    """Whether a commit-graph exists, and whether its newest layer has Bloom filters."""
    chain = info_dir / "commit-graphs" / "commit-graph-chain"
    try:
        layers = chain.read_text().split()
    except OSError:
        layers = []
    if layers:
        graph = info_dir / "commit-graphs" / f"graph-{layers[-1]}.graph"
    else:
        graph = info_dir / "commit-graph"
    try:
        with graph.open("rb") as f:
            header = f.read(8)
            if len(header) < 8 or header[:4] != b"CGPH":
                return False, False
            table = f.read(12 * (header[6] + 1))
    except OSError:
        return False, False
    chunks = {table[i : i + 4] for i in range(0, len(table), 12)}
    return True, b"BIDX" in chunks


def stale_files(path: Path, now: float) -> list[Path]:
    """What crashed processes leave behind: quarantines of pushes that never finished (one
    was 696 MB), half-written packs, and locks whose holder died."""
    found = []
    objects = path / "objects"
    for pattern in QUARANTINE_GLOBS:
        for quarantine in objects.glob(pattern):
            newest = _newest_mtime(quarantine)
            # None: the push finished (and removed it) while we looked.
            if newest is not None and now - newest > STALE_QUARANTINE_SECONDS:
                found.append(quarantine)
    for pattern in (".tmp-*", "tmp_pack_*", "tmp_idx_*"):
        for tmp in (objects / "pack").glob(pattern):
            if now - (_mtime(tmp) or now) > STALE_TMP_PACK_SECONDS:
                found.append(tmp)
    locks = [path / "packed-refs.lock", path / "HEAD.lock", path / "config.lock"]
    for directory, _, files in os.walk(path / "refs"):
        locks += [Path(directory) / name for name in files if name.endswith(".lock")]
    found += [lock for lock in locks if now - (_mtime(lock) or now) > STALE_LOCK_SECONDS]
    return found


def _newest_mtime(directory: Path) -> float | None:
    """A quarantine is alive while anything in it changes; its own mtime alone misses a pack
    still being written inside objects/pack/. None if it has gone."""
    newest = _mtime(directory)
    if newest is None:
        return None
    for root, dirs, files in os.walk(directory):
        for name in (*dirs, *files):
            newest = max(newest, _mtime(Path(root) / name) or newest)
    return newest


def _age(marker: Path, now: float) -> float | None:
    mtime = _mtime(marker)
    return None if mtime is None else now - mtime


def _mtime(path: Path) -> float | None:
    try:
        return path.lstat().st_mtime
    except OSError:
        return None


def _scandir(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError:
        return []
