"""Moving a project's repository to another storage shard of this site, in the background.

The source copy stays the project's until one transaction switches it; nothing before that
commit changes what the project is, so a failure (or a crash) at any step leaves the project
where it was. The steps:

1. copy the repository to the destination (storage to storage: the destination's storage
   fetches from the source's SSHUploadPack, gitaly-ssh's role), the project still writable;
2. hold new pushes (`queue`, repositories/push_hold.py) and wait for the pushes authorized
   before the hold to reach pre-receive (where they are counted again); then `read_only`, and
   wait for the counted pushes to land;
3. a final, incremental copy, then both copies' refs checksums: a mismatch fails the move, the
   destination copy is removed and the project stays on the source;
4. one transaction: the project's shard, a new repository sequence and `RepositoryMoved` in
   the outbox, the hold lifted, the move `replicated`; held pushes go on, to the destination;
5. after `storage_move_removal_delay_seconds` (clones routed before the switch may still be
   streaming from the source), the source copy is removed: `finished`.

Every step of a move runs under a session-level advisory lock of the move's own (db.py
`session_lock`), so with several API replicas on one database exactly one works on a move at
a time, and the lock goes when the replica running it dies. Each replica sweeps, at start and
every `storage_move_sweep_seconds`, for moves whose lock it can take: a `scheduled` one it runs
(the replica that took the request may be gone, or busy with `storage_move_concurrency` others),
a `started` one was interrupted — it fails (the project is still on its source; its hold is
lifted, the destination copy removed) — and a `replicated` one has its old copy removed when
its delay is over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from geogit.common.proto.storage.v1 import shared_pb2
from geogit.common.repository_client import StorageError
from geogit.internal_api.clients.storage import StorageClient
from geogit.internal_api.config import InternalApiSettings
from geogit.internal_api.db import SessionMaker, database_unavailable, session_lock
from geogit.internal_api.events import project_events
from geogit.internal_api.events.outbox import Outbox
from geogit.internal_api.geo.maintenance import STALE_AFTER
from geogit.internal_api.models import Project, PushReferenceCounter, RepositoryStorageMove, utcnow
from geogit.internal_api.repositories.location import storage_repository

log = logging.getLogger(__name__)
LAND_POLL_SECONDS = 0.05
# The class half of each move's advisory lock (the move's id is the other half).
MOVE_LOCK_CLASS = 0x6767_0008
OPEN_STATES = ("scheduled", "started", "replicated")
INTERRUPTED = "interrupted: the internal API stopped during the move; the project stayed on"
# Storage's own refs (diverged commits kept after a failover, DESIGN §10) are never copied by
# ReplicateRepository, so a copy holding some is not removed: an operator decides.
PRIVATE_REFS = "refs/geogit/"
KEPT_PRIVATE_REFS = (
    "the old copy holds refs under refs/geogit/ (commits kept after a failover), which a move"
    " does not copy; it was kept"
)


class MoveFailed(Exception):
    """A step that ends the move before its switch; the project stays on the source."""


class StorageMoves:
    """Runs this site's moves on the primary: the ones this replica was asked for and, by its
    sweep, any that no live replica runs (module docstring). `before_compare` runs between the
    final copy and the checksums (tests only)."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: SessionMaker,
        storage: StorageClient,
        outbox: Outbox,
        settings: InternalApiSettings,
        is_primary: Callable[[], bool],
        before_compare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._storage = storage
        self._outbox = outbox
        self._settings = settings
        self._is_primary = is_primary
        self._before_compare = before_compare
        self._running = asyncio.Semaphore(settings.storage_move_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._handling: dict[int, asyncio.Task[None]] = {}  # one task per move, here

    def start(self) -> None:
        self._spawn(self._sweep_forever())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def schedule(self, move_id: int) -> None:
        """After the move's row has committed."""
        self._handle(move_id)

    async def wait_idle(self) -> None:
        """Until every move this process works on has ended (tests)."""
        while self._handling:
            await asyncio.gather(*self._handling.values(), return_exceptions=True)

    async def sweep(self) -> None:
        """Take up every open move no task of this replica handles; one another replica runs
        is passed over by `_advance` (its lock is held)."""
        if not self._is_primary():
            return
        async with self._sessions() as session:
            moves = (
                await session.scalars(
                    select(RepositoryStorageMove).where(
                        RepositoryStorageMove.state.in_(OPEN_STATES)
                    )
                )
            ).all()
        for move in moves:
            self._handle(move.id, self._removal_wait(move) if move.state == "replicated" else 0.0)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # the next sweep tries again
                if not database_unavailable(exc):
                    log.exception("storage move sweep broke")
            await asyncio.sleep(self._settings.storage_move_sweep_seconds)

    def _handle(self, move_id: int, wait: float = 0.0) -> None:
        if move_id in self._handling:
            return
        task = self._spawn(self._advance(move_id, wait))
        self._handling[move_id] = task
        task.add_done_callback(lambda _: self._handling.pop(move_id, None))

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _removal_wait(self, move: RepositoryStorageMove) -> float:
        delay = timedelta(seconds=self._settings.storage_move_removal_delay_seconds)
        return (move.updated_at + delay - utcnow()).total_seconds()

    # The move ------------------------------------------------------------------------------

    async def _advance(self, move_id: int, wait: float = 0.0) -> None:
        """The move's steps from where it is, each under its lock; a switched move waits for its
        removal here. Another replica holding the lock has the move: this task ends."""
        while True:
            await asyncio.sleep(max(0.0, wait))
            if not await self._step(move_id):
                return
            async with self._sessions() as session:
                move = await session.get(RepositoryStorageMove, move_id)
            if move is None or move.state != "replicated":
                return
            wait = self._removal_wait(move)

    async def _step(self, move_id: int) -> bool:
        """Run the move, fail it (interrupted) or remove the old copy, whichever its state,
        read again under the lock, calls for; False when another replica holds the lock."""
        async with self._running, session_lock(self._engine, MOVE_LOCK_CLASS, move_id) as mine:
            if not mine:
                return False
            async with self._sessions() as session:
                move = await session.get(RepositoryStorageMove, move_id)
            if move is None:
                return False
            if move.state == "scheduled":
                await self._run(move_id)
            elif move.state == "started":
                await self._fail(move_id, f"{INTERRUPTED} {move.source_storage_name}")
            elif move.state == "replicated" and self._removal_wait(move) <= 0:
                await self._remove_source(move)
            return True

    async def _run(self, move_id: int) -> None:
        target: shared_pb2.Repository | None = None
        try:
            source, target, project_id = await self._start(move_id)
            await self._copy_and_switch(move_id, source, target, project_id)
        except (MoveFailed, StorageError) as exc:
            await self._fail(move_id, str(exc), target)
        except Exception as exc:  # a bug or the database: still, no hold may outlive the move
            log.exception("repository storage move broke", extra={"move_id": move_id})
            await self._fail(move_id, f"{type(exc).__name__}: {exc}", target)

    async def _copy_and_switch(
        self,
        move_id: int,
        source: shared_pb2.Repository,
        target: shared_pb2.Repository,
        project_id: int,
    ) -> None:
        timeout = self._settings.storage_move_copy_timeout_seconds
        await self._storage.replicate_from_storage(target, source, timeout)
        await self._hold(project_id, "queue")
        await self._routed_pushes_arrived(project_id)
        await self._hold(project_id, "read_only")
        await self._pushes_landed(project_id)
        await self._storage.replicate_from_storage(target, source, timeout)
        if self._before_compare is not None:
            await self._before_compare()
        expected = await self._storage.checksum(source)
        copied = await self._storage.checksum(target)
        if expected != copied:
            raise MoveFailed(
                f"checksum mismatch after the final copy: {source.storage_name} has {expected},"
                f" {target.storage_name} has {copied}"
            )
        await self._switch(move_id, target.storage_name, expected)
        log.info("repository moved", extra={"move_id": move_id, "project_id": project_id})

    async def _start(
        self, move_id: int
    ) -> tuple[shared_pb2.Repository, shared_pb2.Repository, int]:
        async with self._sessions() as session, session.begin():
            move = await _move(session, move_id)
            project = await session.get(Project, move.project_id)
            if project is None:
                raise MoveFailed("the project was deleted")
            move.state, move.updated_at = "started", utcnow()
            source = storage_repository(project)
        target = shared_pb2.Repository()
        target.CopyFrom(source)
        target.storage_name = move.destination_storage_name
        return source, target, project.id

    async def _hold(self, project_id: int, hold: str) -> None:
        async with self._sessions() as session, session.begin():
            # The exclusive row lock waits for every pre-receive counting a push (push_hold.py).
            project = await session.get(Project, project_id, with_for_update=True)
            if project is None:
                raise MoveFailed("the project was deleted")
            project.push_hold = hold

    async def _routed_pushes_arrived(self, project_id: int) -> None:
        """Every push authorized before the hold has reached pre-receive (and is counted
        there), or has not for `storage_move_drain_seconds` (no-op pushes, vanished clients)."""
        stale = timedelta(seconds=self._settings.storage_move_drain_seconds)
        await self._wait_for_zero(
            project_id,
            PushReferenceCounter.authorized,
            PushReferenceCounter.authorized_at > func.now() - stale,
            "pushes routed to the old copy did not reach pre-receive",
        )

    async def _pushes_landed(self, project_id: int) -> None:
        """Every push counted at pre-receive has reached post-receive (or went stale)."""
        await self._wait_for_zero(
            project_id,
            PushReferenceCounter.count,
            PushReferenceCounter.updated_at > func.now() - STALE_AFTER,
            "pushes did not land before the switch",
        )

    async def _wait_for_zero(
        self,
        project_id: int,
        counter: InstrumentedAttribute[int],
        fresh: ColumnElement[bool],
        failure: str,
    ) -> None:
        deadline = time.monotonic() + self._settings.storage_move_land_timeout_seconds
        while True:
            async with self._sessions() as session:
                in_flight = await session.scalar(
                    select(func.coalesce(func.sum(counter), 0)).where(
                        PushReferenceCounter.project_id == project_id, fresh
                    )
                )
            if not in_flight:
                return
            if time.monotonic() > deadline:
                raise MoveFailed(f"{failure} ({in_flight} in flight)")
            await asyncio.sleep(LAND_POLL_SECONDS)

    async def _switch(self, move_id: int, destination: str, checksum: str) -> None:
        async with self._sessions() as session, session.begin():
            move = await _move(session, move_id)
            project = await session.get(Project, move.project_id, with_for_update=True)
            if project is None:
                raise MoveFailed("the project was deleted")
            old_shard = project.storage_shard
            project.storage_shard, project.push_hold = destination, ""
            project.repository_seq += 1
            project.repository_checksum = checksum
            move.state, move.updated_at = "replicated", utcnow()
            await project_events.repository_moved(session, self._outbox, project, old_shard)

    async def _fail(
        self, move_id: int, error: str, target: shared_pb2.Repository | None = None
    ) -> None:
        """The project stays on the source: its hold is lifted, the destination copy goes
        (`target`, or found from the move's row)."""
        log.warning("repository storage move failed", extra={"move_id": move_id, "error": error})
        async with self._sessions() as session, session.begin():
            move = await session.get(RepositoryStorageMove, move_id, with_for_update=True)
            project = None
            if move is not None:  # else its project was deleted, and the move's row with it
                project = await session.get(Project, move.project_id, with_for_update=True)
                if project is not None and project.storage_shard == move.destination_storage_name:
                    # The switch committed after all (its answer was lost): nothing to undo.
                    return
                move.state, move.error_message, move.updated_at = "failed", error[:4000], utcnow()
            if project is not None and move is not None:
                project.push_hold = ""
                target = storage_repository(project)
                target.storage_name = move.destination_storage_name
        if target is not None:
            await self._remove(target)

    async def _remove_source(self, move: RepositoryStorageMove) -> None:
        async with self._sessions() as session:
            project = await session.get(Project, move.project_id)
        if project is None:
            return  # deleted: its repository went with it, and the move's row
        source = storage_repository(project)
        source.storage_name = move.source_storage_name
        try:
            if await self._storage.has_refs(source, PRIVATE_REFS):
                await self._set_state(move.id, "cleanup_failed", KEPT_PRIVATE_REFS)
                return
            await self._remove(source, quiet=False)
        except StorageError as exc:
            await self._set_state(move.id, "cleanup_failed", str(exc))
            return
        await self._set_state(move.id, "finished")

    async def _remove(self, repo: shared_pb2.Repository, quiet: bool = True) -> None:
        try:
            await self._storage.remove_repository(repo)
        except StorageError as exc:
            if exc.code.name == "NOT_FOUND":
                return
            if not quiet:
                raise
            log.warning("a storage move's copy was not removed", extra={"error": str(exc)})

    async def _set_state(self, move_id: int, state: str, error: str = "") -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(RepositoryStorageMove)
                .where(RepositoryStorageMove.id == move_id)
                .values(state=state, error_message=error[:4000], updated_at=utcnow())
            )


async def _move(session: AsyncSession, move_id: int) -> RepositoryStorageMove:
    move = await session.get(RepositoryStorageMove, move_id, with_for_update=True)
    if move is None:
        raise MoveFailed(f"storage move {move_id} is gone (its project was deleted)")
    return move
