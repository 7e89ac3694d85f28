"""The Housekeeper: runs what the heuristics chose, after pushes and replications, on a
schedule and on request (OptimizeRepository), and is the only thing that does: repositories
carry `gc.auto=0`, so git never starts a `gc --auto` of its own.

At most GEOGIT_HOUSEKEEPING_CONCURRENCY repositories are optimized at once, and one repository
never twice at once: a run holds an flock on `<repo>/geogit-housekeeping.lock`, so a second
storage process (or a second run here) skips the repository rather than wait. Triggers for one
repository coalesce: a hundred pushes during one repack cost one more check, not a hundred.
Writers are not blocked: git's repack, pack-refs and commit-graph are safe beside pushes and
fetches (new objects are never expired: cruft packs keep recent ones, prune only old ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from geogit.storage.errors import InvalidArgument, NotFound
from geogit.storage.git import Git, GitCommand
from geogit.storage.housekeeping.heuristics import (
    FULL_REPACK_MARKER,
    STALE_OBJECT_SECONDS,
    CommitGraph,
    Plan,
    Repack,
    inspect_repository,
    plan,
)
from geogit.storage.metrics import StorageMetrics

log = logging.getLogger(__name__)
LOCK_FILE = "geogit-housekeeping.lock"
# Repositories live at @hashed/xx/yy/<sha256>.git (geogit.common.paths).
REPOSITORY_GLOB = "@hashed/*/*/*.git"
# Every loose object, reachable or not, into one new pack, without a walk of the history: the
# cost follows the loose objects, not the repository (prune-packed then drops the loose copies).
_PACK_LOOSE_OPTIONS = [
    "--revs",
    "--pack-loose-unreachable",
    "--local",
    "--non-empty",
    "--delta-base-offset",
    "--quiet",
]
_REPACK_OPTIONS = {
    Repack.GEOMETRIC: ["-d", "-n", "-q", "--geometric=2", "--write-midx", "--write-bitmap-index"],
    Repack.FULL: ["-a", "-d", "-n", "-q", "--cruft", "--write-midx", "--write-bitmap-index"],
}


@dataclass(frozen=True)
class HousekeepingResult:
    """What one run did: the steps it ran, or `skipped` when another run held the lock."""

    steps: tuple[str, ...] = ()
    skipped: bool = False


class RepositoryLocked(Exception):
    """Another run (in this process or another) is optimizing the repository."""


class Housekeeper:
    def __init__(
        self,
        git: Git,
        root: Path,
        metrics: StorageMetrics,
        *,
        enabled: bool = True,
        concurrency: int = 2,
        interval_seconds: float = 3600.0,
        timeout: float = 3600.0,
    ) -> None:
        self.git = git
        self.root = root.resolve()
        self.metrics = metrics
        self.enabled = enabled
        self.interval_seconds = interval_seconds
        self.timeout = timeout
        self._concurrency = max(1, concurrency)
        self._slots = asyncio.Semaphore(self._concurrency)
        # Repositories with a background run queued or running, and those triggered again
        # since their run started (they get one more).
        self._tasks: dict[Path, asyncio.Task[None]] = {}
        self._again: set[Path] = set()
        # Repositories being removed: no run may start on them (see `excluded`).
        self._excluded: set[Path] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._stopped = False

    # Triggers ----------------------------------------------------------------------------

    def after_push(self, repo_path: Path) -> None:
        """Check the repository soon, in the background; returns at once. Calls for a
        repository already queued or running coalesce into one more run at most."""
        self._trigger(repo_path, "push")

    def after_replication(self, repo_path: Path) -> None:
        self._trigger(repo_path, "replication")

    def _trigger(self, repo_path: Path, trigger: str) -> None:
        if not self.enabled or self._stopped:
            return
        path = self.check(repo_path)
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and loop is not running:
            loop.call_soon_threadsafe(self._schedule, path, trigger)
        elif running is not None:
            self._schedule(path, trigger)
        else:
            raise RuntimeError("Housekeeper triggered outside an event loop before start()")

    def _schedule(self, path: Path, trigger: str) -> None:
        if self._stopped or path in self._excluded:
            return
        if path in self._tasks:
            self._again.add(path)
            return
        self._tasks[path] = asyncio.get_running_loop().create_task(self._background(path, trigger))

    async def _background(self, path: Path, trigger: str) -> None:
        try:
            while True:
                async with self._slots:
                    # Triggers from here on see this run's result only if they come after it.
                    self._again.discard(path)
                    with contextlib.suppress(Exception):
                        await self._run(path, trigger)
                if path not in self._again:
                    return
        finally:
            del self._tasks[path]

    # Runs --------------------------------------------------------------------------------

    async def optimize(self, repo_path: Path, trigger: str = "rpc") -> HousekeepingResult:
        """One run now, within the concurrency bound; a repository another run holds is
        skipped (`skipped`)."""
        path = self.check(repo_path)
        async with self._slots:
            return await self._run(path, trigger)

    async def _run(self, path: Path, trigger: str) -> HousekeepingResult:
        started = time.monotonic()
        outcome = "failed"
        try:
            with self._locked(path):
                if path in self._excluded or not (path / "HEAD").is_file():
                    return HousekeepingResult()  # removed meanwhile: nothing left to optimize
                chosen = plan(await asyncio.to_thread(inspect_repository, path))
                await self._execute(path, chosen)
            outcome = "optimized" if not chosen.empty else "unchanged"
            return HousekeepingResult(tuple(chosen.steps()))
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except RepositoryLocked:
            outcome = "skipped"
            self.metrics.housekeeping_locked_total.inc()
            log.info("housekeeping skipped: repository locked", extra={"path": str(path)})
            return HousekeepingResult(skipped=True)
        except Exception:
            log.exception("housekeeping failed", extra={"path": str(path), "trigger": trigger})
            raise
        finally:
            elapsed = time.monotonic() - started
            self.metrics.housekeeping_runs_total.labels(trigger, outcome).inc()
            if outcome != "skipped":
                self.metrics.housekeeping_seconds.observe(elapsed)

    @contextlib.asynccontextmanager
    async def excluded(self, repo_path: Path) -> AsyncIterator[None]:
        """Housekeeping kept off a repository for the block (its removal): a repack still
        running when the directory is moved away would recreate `objects/` at the old path.
        This process's run is cancelled (its git killed); another process's is waited for
        through the flock."""
        path = self.check(repo_path)
        self._excluded.add(path)
        try:
            if (task := self._tasks.get(path)) is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)
        finally:
            self._excluded.discard(path)

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        """An flock held for the run: across processes too, and released if the holder dies."""
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise RepositoryLocked(str(path)) from exc
            yield
        finally:
            os.close(fd)

    async def _execute(self, path: Path, chosen: Plan) -> None:
        if chosen.empty:
            return
        log.info("housekeeping", extra={"path": str(path), "steps": chosen.steps()})
        if chosen.stale_files:
            await asyncio.to_thread(_remove, chosen.stale_files)
            self._count("clean_stale")
        if chosen.repack is not None:
            await self._repack(path, chosen.repack)
        if chosen.prune:
            await self._git(path, "prune", [f"--expire={_expiry()}"])
            self._count("prune")
        if chosen.pack_refs:
            await self._git(path, "pack-refs", ["--all"], separator=False)
            self._count("pack_refs")
        if chosen.commit_graph is not None:
            await self._write_commit_graph(path, chosen.commit_graph)

    async def _repack(self, path: Path, strategy: Repack) -> None:
        if strategy is Repack.INCREMENTAL:
            await self._pack_loose_objects(path)
            self._count(f"repack_{strategy.value}")
            return
        options = list(_REPACK_OPTIONS[strategy])
        if strategy is Repack.FULL:
            options.append(f"--cruft-expiration={_expiry()}")
        await self._git(path, "repack", options, separator=False)
        if strategy is Repack.FULL:
            (path / FULL_REPACK_MARKER).touch()
        self._count(f"repack_{strategy.value}")

    async def _pack_loose_objects(self, path: Path) -> None:
        base = str(path / "objects" / "pack" / "pack")
        command = GitCommand("pack-objects", options=_PACK_LOOSE_OPTIONS, args=[base], git_dir=path)
        # No revisions on stdin: only the loose objects are packed.
        await self.git.check(command, input=b"", timeout=self.timeout)
        await self._git(path, "prune-packed", ["--quiet"], separator=False)

    async def _write_commit_graph(self, path: Path, mode: CommitGraph) -> None:
        split = "--split=replace" if mode is CommitGraph.REPLACE else "--split"
        args = ["write", "--reachable", split, "--changed-paths", "--size-multiple=4"]
        await self._git(path, "commit-graph", [], args=args, separator=False)
        self._count(f"commit_graph_{mode.value}")

    async def _git(
        self,
        path: Path,
        subcommand: str,
        options: list[str],
        *,
        args: list[str] | None = None,
        separator: bool = True,
    ) -> None:
        command = GitCommand(
            subcommand,
            options=options,
            args=args or [],
            git_dir=path,
            separator=separator,
            config=(("gc.auto", "0"),),
        )
        await self.git.check(command, timeout=self.timeout)

    def _count(self, step: str) -> None:
        self.metrics.housekeeping_steps_total.labels(step).inc()

    # Input -------------------------------------------------------------------------------

    def check(self, repo_path: Path) -> Path:
        """The repository's real path; refused unless it is a repository under the root."""
        try:
            path = Path(repo_path).resolve()
        except (OSError, RuntimeError) as exc:
            raise InvalidArgument(f"repository path cannot be resolved: {repo_path}") from exc
        if path == self.root or not path.is_relative_to(self.root):
            raise InvalidArgument(f"not inside the storage root: {repo_path}")
        if path.relative_to(self.root).parts[0].startswith("+"):
            raise InvalidArgument(f"not a repository path: {repo_path}")
        if not (path / "HEAD").is_file() or not (path / "objects").is_dir():
            raise NotFound(f"not a git repository: {repo_path}")
        return path

    # Schedule ----------------------------------------------------------------------------

    def start(self) -> None:
        """Begin the periodic sweep (if enabled); triggers from other threads go to this loop."""
        self._loop = asyncio.get_running_loop()
        if self.enabled and self.interval_seconds > 0:
            self._scheduler = self._loop.create_task(self._every_interval())

    async def stop(self, grace: float = 10.0) -> None:
        """Stop sweeping; give running repacks `grace` seconds, then kill them (a killed
        repack leaves only temporary files, which a later run removes). Later triggers are
        ignored."""
        self._stopped = True
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
            self._scheduler = None
        await self.idle(grace)
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def idle(self, timeout: float | None = None) -> None:
        """Until no background run is queued or running (or `timeout` passes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._tasks:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            await asyncio.wait(list(self._tasks.values()), timeout=remaining)

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                await self.sweep()
            except Exception:
                log.exception("housekeeping sweep failed")

    async def sweep(self) -> int:
        """Every repository on this storage checked once; returns how many were queued."""
        paths = await asyncio.to_thread(lambda: sorted(self.root.glob(REPOSITORY_GLOB)))
        queued = 0
        for path in paths:
            # A few queued beyond the running ones, not one task per repository of the shard.
            while len(self._tasks) >= 2 * self._concurrency:
                await asyncio.wait(list(self._tasks.values()), return_when=asyncio.FIRST_COMPLETED)
            if (path / "HEAD").is_file():
                self._schedule(path.resolve(), "schedule")
                queued += 1
        log.info("housekeeping sweep", extra={"repositories": queued})
        return queued


def _expiry() -> str:
    """The date before which unreachable objects may go, in a form git's --expire reads."""
    return f"{STALE_OBJECT_SECONDS}.seconds.ago"


def _remove(paths: tuple[Path, ...]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        log.info("removed stale file", extra={"path": str(path)})
