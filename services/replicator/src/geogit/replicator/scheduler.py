"""Per-project work, serialized and coalesced, with bounded concurrency across projects.

Each project has at most one task. A request for a project that is already being worked on
only marks it to run once more afterwards, so ten pushes during one fetch cost one more fetch,
not ten (DESIGN §5). The work function says whether to come back: a failed sync retries after
an exponential backoff with jitter, and a new request during the wait starts the retry at once
(a push just arrived, so the primary is answering again).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from geogit.replicator.metrics import ReplicatorMetrics

log = logging.getLogger(__name__)


class Action(enum.IntEnum):
    """What a project needs; a stronger request absorbs a weaker one."""

    VERIFY = 1
    SYNC = 2
    # A sync that fetches even when the registry says the replica is current (an operator's
    # "resync": the registry may be what is wrong).
    RESYNC = 3
    DELETE = 4


@dataclass(frozen=True)
class Retry:
    """Come back after a backoff; `attempt` counts the failures in a row (1 for the first)."""

    attempt: int


Work = Callable[[int, Action], Awaitable[Retry | None]]


def backoff_ceiling(base: float, maximum: float, attempt: int) -> float:
    doublings = min(max(attempt, 1) - 1, 30)
    return min(maximum, base * float(2**doublings))


@dataclass
class _Entry:
    action: Action
    again: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Scheduler:
    def __init__(
        self,
        work: Work,
        max_concurrency: int,
        retry_base: float,
        retry_max: float,
        metrics: ReplicatorMetrics | None = None,
        owns: Callable[[int], bool] = lambda project_id: True,
    ) -> None:
        self._work = work
        self._owns = owns
        self._metrics = metrics or ReplicatorMetrics()
        self._slots = asyncio.Semaphore(max_concurrency)
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._entries: dict[int, _Entry] = {}
        self._closed = False

    @property
    def depth(self) -> int:
        """Projects with work requested or running."""
        return len(self._entries)

    def request(self, project_id: int, action: Action) -> bool:
        """Ask for work on a project; False if refused: one another replicator owns is not this
        one's to do, and a draining scheduler takes nothing."""
        if self._closed or not self._owns(project_id):
            return False
        entry = self._entries.get(project_id)
        if entry is not None:
            entry.action = max(entry.action, action)
            entry.again.set()
            return True
        entry = self._entries[project_id] = _Entry(action)
        entry.task = asyncio.create_task(self._run(project_id, entry), name=f"project-{project_id}")
        self._metrics.queue_depth.set(len(self._entries))
        return True

    def backoff(self, attempt: int) -> float:
        """Full exponential backoff, jittered into its upper half so retries spread out."""
        return random.uniform(0.5, 1.0) * backoff_ceiling(
            self._retry_base, self._retry_max, attempt
        )

    async def _run(self, project_id: int, entry: _Entry) -> None:
        try:
            while True:
                entry.again.clear()
                action, entry.action = entry.action, Action.VERIFY
                async with self._slots:
                    try:
                        outcome = await self._work(project_id, action)
                    except Exception:
                        log.exception("replication work failed", extra={"project_id": project_id})
                        outcome = Retry(1)
                if outcome is not None:
                    entry.action = max(entry.action, action)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(entry.again.wait(), self.backoff(outcome.attempt))
                    continue
                if not entry.again.is_set():
                    return
        finally:
            self._entries.pop(project_id, None)
            self._metrics.queue_depth.set(len(self._entries))

    async def release(self, keep: Callable[[int], bool]) -> int:
        """Stop the work on every project `keep` rejects (its partition moved to another
        replicator) and wait until it has stopped; returns how many. A sync cut off is a killed
        fetch that changed nothing, and the new owner's backfill finds it."""
        tasks = [
            entry.task
            for project_id, entry in self._entries.items()
            if entry.task is not None and not keep(project_id)
        ]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return len(tasks)

    async def drain(self, grace: float) -> None:
        """Take no more work; let running work finish within `grace`, then cancel it."""
        self._closed = True
        tasks = [entry.task for entry in self._entries.values() if entry.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
