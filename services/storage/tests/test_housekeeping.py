"""Housekeeping against real repositories and the real git: what the heuristics choose, that a
run keeps every ref and object, the per-repository lock, and refused input."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_internal_api import FakeInternalApi

from geogit.common.paths import hashed_repository_path
from geogit.common.proto.storage.v1 import repository_pb2
from geogit.storage.errors import InvalidArgument, NotFound
from geogit.storage.git import Git
from geogit.storage.git_services import RECEIVE_PACK_CONFIG
from geogit.storage.housekeeping import Housekeeper
from geogit.storage.housekeeping.heuristics import (
    FULL_REPACK_MARKER,
    LOOSE_OBJECT_LIMIT,
    CommitGraph,
    Packs,
    Repack,
    RepositoryInfo,
    inspect_repository,
    plan,
)
from geogit.storage.housekeeping.housekeeper import LOCK_FILE
from geogit.storage.metrics import StorageMetrics
from geogit.storage.testing import StorageProcess, git, make_work_tree

DAY = 24 * 3600


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "repositories"


@pytest.fixture
def repo(root: Path) -> Path:
    path = root / hashed_repository_path(1)
    path.parent.mkdir(parents=True)
    git("init", "-q", "--bare", "-b", "main", str(path))
    return path


@pytest.fixture
def metrics() -> StorageMetrics:
    return StorageMetrics()


@pytest.fixture
def housekeeper(root: Path, metrics: StorageMetrics) -> Housekeeper:
    return Housekeeper(Git(), root, metrics, interval_seconds=0)


def import_commits(repo: Path, branch: str, commits: int, files: int, loose: bool, start=0) -> None:
    """`commits` commits of `files` new blobs each on `branch`, written loose or as one pack."""
    lines = []
    for c in range(start, start + commits):
        lines += [f"commit refs/heads/{branch}", f"mark :{c + 1}"]
        lines += [f"committer T <t@example.com> {1700000000 + c} +0000", "data 3", f"c{c}"]
        if c > start:
            lines.append(f"from :{c}")
        elif c > 0:
            lines.append(f"from refs/heads/{branch}^0")
        for f in range(files):
            body = f"{branch} {c} {f}\n"
            lines += [f"M 100644 inline d{c % 7}/f{c}-{f}.txt", f"data {len(body)}", body]
    limit = "1000000" if loose else "0"
    git(
        "-c",
        f"fastimport.unpackLimit={limit}",
        "--git-dir",
        str(repo),
        "fast-import",
        "--quiet",
        input=("\n".join(lines) + "\n").encode(),
    )


def snapshot(repo: Path) -> tuple[str, list[str]]:
    refs = git("--git-dir", str(repo), "for-each-ref").stdout.decode()
    objects = git("--git-dir", str(repo), "rev-list", "--all", "--objects").stdout.decode()
    return refs, sorted(objects.splitlines())


def fsck(repo: Path) -> None:
    git("--git-dir", str(repo), "fsck", "--no-progress", "--strict")


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    for directory, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.utime(Path(directory) / name, (then, then))
    os.utime(path, (then, then))


def quarantine(repo: Path, name: str, seconds_old: float) -> Path:
    path = repo / "objects" / name
    (path / "pack").mkdir(parents=True)
    (path / "pack" / "pack-x.pack").write_bytes(b"PACK" + b"\0" * 64)
    age(path, seconds_old)
    return path


# Heuristics on the layout alone -----------------------------------------------------------


def test_plan_rules() -> None:
    tidy = Packs(count=1, bytes=1 << 20, midx_packs=1, bitmap=True)
    refs = {"loose_refs": 1, "commit_graph": True, "commit_graph_bloom": True}
    assert plan(RepositoryInfo(packs=tidy, since_full_repack=DAY, **refs)).empty
    # Loose objects over the limit: rolled up, nothing else rewritten.
    many_loose = RepositoryInfo(
        loose_objects=LOOSE_OBJECT_LIMIT + 1, packs=tidy, since_full_repack=DAY, **refs
    )
    assert plan(many_loose).repack is Repack.INCREMENTAL
    assert plan(many_loose).commit_graph is CommitGraph.APPEND
    # In a small repository fewer loose objects already cost more than the rest: the limit is
    # a share of the packed objects, at most LOOSE_OBJECT_LIMIT.
    small = Packs(count=1, bytes=1 << 20, objects=3200, midx_packs=1, bitmap=True)
    for loose, expected in ((150, None), (250, Repack.INCREMENTAL)):
        info = RepositoryInfo(loose_objects=loose, packs=small, since_full_repack=DAY, **refs)
        assert plan(info).repack is expected
    large = Packs(count=1, bytes=1 << 30, objects=10**6, midx_packs=1, bitmap=True)
    info = RepositoryInfo(loose_objects=200, packs=large, since_full_repack=DAY, **refs)
    assert plan(info).repack is None
    info = RepositoryInfo(loose_objects=300, packs=large, since_full_repack=DAY, **refs)
    assert plan(info).repack is Repack.INCREMENTAL
    # New packs beyond what the multi-pack-index covers: geometric; no index yet: geometric.
    piled = Packs(count=5, bytes=1 << 20, midx_packs=1)
    assert (
        plan(RepositoryInfo(packs=piled, since_full_repack=DAY, **refs)).repack is Repack.GEOMETRIC
    )
    no_midx = Packs(count=1, bytes=1 << 20)
    assert plan(RepositoryInfo(packs=no_midx, since_full_repack=DAY)).repack is Repack.GEOMETRIC
    # Several packs and no full repack for a while (or ever): full, and a new commit-graph.
    for since in (None, 6 * DAY):
        chosen = plan(RepositoryInfo(packs=piled, since_full_repack=since, **refs))
        assert chosen.repack is Repack.FULL and chosen.commit_graph is CommitGraph.REPLACE
    # The larger the repository, the more new packs before a geometric repack.
    big = Packs(count=6, bytes=10 << 30, midx_packs=1)
    assert plan(RepositoryInfo(packs=big, since_full_repack=DAY, **refs)).repack is None
    # Loose refs: a few are fine, more than 16 are packed; more are allowed beside a large
    # packed-refs.
    assert not plan(RepositoryInfo(loose_refs=16)).pack_refs
    assert plan(RepositoryInfo(loose_refs=17)).pack_refs
    assert not plan(RepositoryInfo(loose_refs=40, packed_refs_bytes=100_000)).pack_refs
    # A commit-graph without Bloom filters is rewritten; stale loose objects are pruned.
    no_bloom = RepositoryInfo(packs=tidy, since_full_repack=DAY, loose_refs=1, commit_graph=True)
    assert plan(no_bloom).commit_graph is CommitGraph.REPLACE
    stale = RepositoryInfo(loose_objects=2000, stale_loose_objects=1500, packs=tidy, **refs)
    assert plan(stale).prune


def test_inspect_many_loose_objects(repo: Path) -> None:
    import_commits(repo, "main", commits=60, files=20, loose=True)
    info = inspect_repository(repo)
    assert info.loose_objects > LOOSE_OBJECT_LIMIT
    assert info.packs.count == 0 and info.stale_loose_objects == 0
    # No multi-pack-index yet: the first run is a geometric repack, which also rolls up the
    # loose objects.
    assert plan(info).repack is Repack.GEOMETRIC


def test_inspect_many_packs(repo: Path) -> None:
    for i in range(6):
        import_commits(repo, "main", commits=2, files=3, loose=False, start=2 * i)
    info = inspect_repository(repo)
    assert info.packs.count == 6 and info.packs.midx_packs is None
    assert plan(info).repack is Repack.FULL  # never fully repacked
    (repo / FULL_REPACK_MARKER).touch()
    assert plan(inspect_repository(repo)).repack is Repack.GEOMETRIC


def test_inspect_loose_refs(repo: Path) -> None:
    import_commits(repo, "main", commits=1, files=1, loose=False)
    for i in range(20):
        git("--git-dir", str(repo), "update-ref", f"refs/heads/b{i}", "main")
    info = inspect_repository(repo)
    assert info.loose_refs == 21
    assert plan(info).pack_refs
    assert not info.commit_graph and plan(info).commit_graph is CommitGraph.REPLACE


def test_inspect_stale_files(repo: Path) -> None:
    stale = quarantine(repo, "tmp_objdir-incoming-crashed", 2 * DAY)
    stale_old_style = quarantine(repo, "incoming-old", 2 * DAY)
    fresh = quarantine(repo, "tmp_objdir-incoming-running", 60)
    # Old directory, but a pack inside is still being written: alive.
    writing = quarantine(repo, "tmp_objdir-incoming-writing", 2 * DAY)
    os.utime(writing / "pack" / "pack-x.pack")
    lock = repo / "packed-refs.lock"
    lock.touch()
    age(lock, 2 * 3600)
    found = set(inspect_repository(repo).stale_files)
    assert found == {stale, stale_old_style, lock}
    assert fresh not in found and writing not in found


# Runs -----------------------------------------------------------------------------------


def busy_repository(repo: Path) -> None:
    """Several packs, loose objects, loose refs and tags, unreachable objects."""
    for i in range(3):
        import_commits(repo, "main", commits=3, files=5, loose=False, start=3 * i)
    import_commits(repo, "topic", commits=60, files=20, loose=True)
    for i in range(20):
        git("--git-dir", str(repo), "update-ref", f"refs/tags/v{i}", f"main~{i % 9}")
    git("--git-dir", str(repo), "hash-object", "-w", "--stdin", input=b"unreachable\n")


async def test_run_keeps_refs_and_objects(
    repo: Path, housekeeper: Housekeeper, metrics: StorageMetrics
) -> None:
    busy_repository(repo)
    stale = quarantine(repo, "tmp_objdir-incoming-crashed", 2 * DAY)
    fresh = quarantine(repo, "tmp_objdir-incoming-running", 60)
    before = snapshot(repo)

    result = await housekeeper.optimize(repo)
    assert set(result.steps) == {"clean_stale", "repack_full", "pack_refs", "commit_graph_replace"}
    assert snapshot(repo) == before
    fsck(repo)
    assert not stale.exists() and fresh.exists()
    info = inspect_repository(repo)
    assert info.loose_refs == 0 and info.commit_graph and info.commit_graph_bloom
    assert info.packs.bitmap and info.packs.midx_packs == info.packs.count
    assert info.packs.count - info.packs.cruft == 1
    assert (repo / FULL_REPACK_MARKER).exists()

    # Tidy now: the next run has nothing to do.
    assert (await housekeeper.optimize(repo)).steps == ()
    # New loose objects beyond the limit are rolled up incrementally, then a new pack joins
    # the multi-pack-index geometrically once enough pile up.
    import_commits(repo, "main", commits=60, files=20, loose=True, start=9)
    assert (await housekeeper.optimize(repo)).steps == ("repack_incremental", "commit_graph_append")
    assert snapshot(repo) != before
    after_incremental = snapshot(repo)
    for i in range(3):
        import_commits(repo, "main", commits=1, files=2, loose=False, start=69 + i)
    steps = (await housekeeper.optimize(repo)).steps
    assert steps == ("repack_geometric", "commit_graph_append")
    assert set(after_incremental[1]) <= set(snapshot(repo)[1])
    fsck(repo)
    runs = metrics.registry.get_sample_value
    assert (
        runs("geogit_storage_housekeeping_runs_total", {"trigger": "rpc", "outcome": "optimized"})
        == 3
    )
    assert (
        runs("geogit_storage_housekeeping_runs_total", {"trigger": "rpc", "outcome": "unchanged"})
        == 1
    )
    assert runs("geogit_storage_housekeeping_steps_total", {"step": "repack_full"}) == 1


async def test_locked_repository_is_skipped(
    repo: Path, housekeeper: Housekeeper, metrics: StorageMetrics
) -> None:
    import_commits(repo, "main", commits=60, files=20, loose=True)
    loose = inspect_repository(repo).loose_objects
    # Another process's run holds the lock (flock: held per open file, across processes too).
    held = os.open(repo / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = await housekeeper.optimize(repo)
        assert result.skipped and result.steps == ()
        assert inspect_repository(repo).loose_objects == loose
    finally:
        os.close(held)
    assert metrics.registry.get_sample_value("geogit_storage_housekeeping_locked_total") == 1
    # Once released, the repository is optimized.
    assert "repack_geometric" in (await housekeeper.optimize(repo)).steps


async def test_after_push_coalesces(
    repo: Path, housekeeper: Housekeeper, metrics: StorageMetrics
) -> None:
    import_commits(repo, "main", commits=60, files=20, loose=True)
    for _ in range(10):
        housekeeper.after_push(repo)
    await housekeeper.idle(60)
    runs = sum(
        metrics.registry.get_sample_value(
            "geogit_storage_housekeeping_runs_total", {"trigger": "push", "outcome": outcome}
        )
        or 0
        for outcome in ("optimized", "unchanged", "skipped", "failed")
    )
    # The first run, and one more for the pushes that came while it was queued or running.
    assert 1 <= runs <= 2
    assert inspect_repository(repo).loose_objects == 0
    fsck(repo)


def _lock_held(repo: Path) -> bool:
    probe = os.open(repo / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(probe)
    return False


async def test_a_removal_cancels_this_processs_run_and_starts_none(
    repo: Path, root: Path, housekeeper: Housekeeper, metrics: StorageMetrics
) -> None:
    # A repack or commit-graph write still running when the directory is moved away would
    # recreate objects/ at the old path (git creates leading directories for what it writes).
    import_commits(repo, "main", commits=90, files=40, loose=True)
    housekeeper.after_push(repo)
    async with asyncio.timeout(30):
        while not _lock_held(repo):  # noqa: ASYNC110 (a lock held by a git run, not an event)
            await asyncio.sleep(0.001)
    trash = root / "+geogit" / "trash"
    trash.parent.mkdir(parents=True)
    async with housekeeper.excluded(repo):
        housekeeper.after_replication(repo)  # a trigger meanwhile starts no run
        repo.rename(trash)  # noqa: ASYNC240 (what RemoveRepository does, in the same place)
    await housekeeper.idle(30)
    assert not repo.exists()  # noqa: ASYNC240
    runs = metrics.registry.get_sample_value
    assert (
        runs("geogit_storage_housekeeping_runs_total", {"trigger": "push", "outcome": "cancelled"})
        == 1
    )
    assert (
        runs(
            "geogit_storage_housekeeping_runs_total",
            {"trigger": "replication", "outcome": "optimized"},
        )
        is None
    )
    assert inspect_repository(trash).loose_objects > LOOSE_OBJECT_LIMIT  # the repack never finished


async def test_a_removal_waits_for_another_processs_run(
    repo: Path, housekeeper: Housekeeper
) -> None:
    held = os.open(repo / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)
    entered = asyncio.Event()

    async def remove() -> None:
        async with housekeeper.excluded(repo):
            entered.set()
            housekeeper.after_push(repo)  # ignored: the repository is being removed

    try:
        removal = asyncio.create_task(remove())
        await asyncio.sleep(0.3)
        assert not entered.is_set()
    finally:
        os.close(held)
    await asyncio.wait_for(removal, 10)
    assert entered.is_set()
    await housekeeper.idle(10)


async def test_disabled_housekeeper_ignores_triggers(
    repo: Path, root: Path, metrics: StorageMetrics
) -> None:
    off = Housekeeper(Git(), root, metrics, enabled=False)
    import_commits(repo, "main", commits=60, files=20, loose=True)
    off.after_push(repo)
    off.after_replication(repo)
    await off.idle(5)
    assert inspect_repository(repo).loose_objects > LOOSE_OBJECT_LIMIT


async def test_sweep_visits_every_repository(root: Path, housekeeper: Housekeeper) -> None:
    paths = []
    for project in (2, 3, 4):
        path = root / hashed_repository_path(project)
        git("init", "-q", "--bare", str(path))
        import_commits(path, "main", commits=60, files=20, loose=True)
        paths.append(path)
    (root / "+geogit" / "tmp").mkdir(parents=True)  # storage's own space: never visited
    assert await housekeeper.sweep() == 3
    await housekeeper.idle(60)
    assert all(inspect_repository(path).loose_objects == 0 for path in paths)


async def test_bad_input_is_refused(tmp_path: Path, root: Path, housekeeper: Housekeeper) -> None:
    outside = tmp_path / "elsewhere.git"
    git("init", "-q", "--bare", str(outside))
    with pytest.raises(InvalidArgument, match="not inside the storage root"):
        await housekeeper.optimize(outside)
    with pytest.raises(InvalidArgument, match="not inside the storage root"):
        housekeeper.after_push(root / ".." / "elsewhere.git")
    not_a_repo = root / "@hashed" / "aa" / "bb" / "nothing.git"
    not_a_repo.mkdir(parents=True)
    with pytest.raises(NotFound, match="not a git repository"):
        await housekeeper.optimize(not_a_repo)
    with pytest.raises(InvalidArgument, match="not a repository path"):
        housekeeper.after_push(root / "+geogit")


# Storage: git's own gc stays off ------------------------------------------------------------


def test_git_gc_auto_is_off(storage: StorageProcess) -> None:
    assert ("gc.auto", "0") in RECEIVE_PACK_CONFIG
    assert ("receive.autogc", "false") in RECEIVE_PACK_CONFIG
    path = storage.path_of(storage.create())
    config = git("--git-dir", str(path), "config", "--list", "--local").stdout.decode()
    assert "gc.auto=0" in config.splitlines()
    assert "receive.autogc=false" in config.splitlines()


@pytest.fixture(scope="module")
def housekept(
    tmp_path_factory: pytest.TempPathFactory, internal_api: FakeInternalApi
) -> Iterator[StorageProcess]:
    """A storage with background housekeeping on (the shared ones have it off)."""
    server = StorageProcess(tmp_path_factory.mktemp("housekept") / "repositories", internal_api.url)
    server.start()
    yield server
    server.stop()


def test_replication_triggers_housekeeping(
    storage: StorageProcess, housekept: StorageProcess, work: Path
) -> None:
    source = storage.create()
    import_commits(storage.path_of(source), "main", commits=60, files=20, loose=True)
    replica = housekept.create()
    housekept.repositories.ReplicateRepository(
        repository_pb2.ReplicateRepositoryRequest(
            repository=replica,
            storage=repository_pb2.StorageSource(
                address=storage.address, token=storage.token(), repository=source
            ),
        ),
        metadata=housekept.metadata(),
    )
    url = f"http://127.0.0.1:{housekept.ops_port}/metrics"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        if (
            'geogit_storage_housekeeping_runs_total{outcome="optimized",trigger="replication"}'
            in text
        ):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("no housekeeping run after the replication")
    fsck(housekept.path_of(replica))


def _push_runs(storage: StorageProcess) -> float:
    url = f"http://127.0.0.1:{storage.ops_port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    runs = re.findall(r'housekeeping_runs_total\{outcome="\w+",trigger="push"\} (\S+)', text)
    return sum(float(value) for value in runs)


def test_a_push_triggers_housekeeping(housekept: StorageProcess, work: Path) -> None:
    """post-receive hands the repository to housekeeping: a push is followed by a run (or a
    decision that nothing is needed) that the push triggered."""
    before = _push_runs(housekept)
    repo = housekept.create()
    tree = make_work_tree(work / "src", commits=40)
    git("push", "-q", housekept.url(repo), "main", cwd=tree, env=housekept.git_env(repo))
    deadline = time.monotonic() + 30
    while _push_runs(housekept) <= before:
        assert time.monotonic() < deadline, "no housekeeping run after the push"
        time.sleep(0.1)
    fsck(housekept.path_of(repo))
