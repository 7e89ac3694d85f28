"""The scheduler's promises: one task per project, coalesced requests, bounded concurrency,
backoff with a wake-up, and a drain that cancels what outlives the grace."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from geogit.common.internal_api import Replicable
from geogit.replicator.backfill import needed
from geogit.replicator.scheduler import Action, Retry, Scheduler, backoff_ceiling


class Recorder:
    def __init__(self, hold: float = 0.05, fail_times: int = 0) -> None:
        self.hold = hold
        self.fail_times = fail_times
        self.calls: list[tuple[int, Action]] = []
        self.running: set[int] = set()
        self.peak = 0
        self.overlapped = False

    async def __call__(self, project_id: int, action: Action) -> Retry | None:
        if project_id in self.running:
            self.overlapped = True
        self.running.add(project_id)
        self.peak = max(self.peak, len(self.running))
        self.calls.append((project_id, action))
        try:
            await asyncio.sleep(self.hold)
        finally:
            self.running.discard(project_id)
        if self.fail_times:
            self.fail_times -= 1
            return Retry(1)
        return None


async def idle(scheduler: Scheduler) -> None:
    async with asyncio.timeout(10):
        while scheduler.depth:  # noqa: ASYNC110 (the scheduler exposes a count, not an event)
            await asyncio.sleep(0.01)


async def test_requests_during_a_run_coalesce_into_one_more_run() -> None:
    work = Recorder(hold=0.1)
    scheduler = Scheduler(work, max_concurrency=4, retry_base=0.01, retry_max=0.01)
    scheduler.request(7, Action.SYNC)
    await asyncio.sleep(0.02)
    for _ in range(10):
        scheduler.request(7, Action.SYNC)
    await idle(scheduler)
    assert work.calls == [(7, Action.SYNC), (7, Action.SYNC)]
    assert not work.overlapped


async def test_a_stronger_request_wins_and_concurrency_is_bounded() -> None:
    work = Recorder(hold=0.05)
    scheduler = Scheduler(work, max_concurrency=2, retry_base=0.01, retry_max=0.01)
    for project in range(6):
        scheduler.request(project, Action.VERIFY)
    scheduler.request(3, Action.DELETE)
    await idle(scheduler)
    assert work.peak == 2
    assert sorted(p for p, _ in work.calls) == list(range(6))
    assert (3, Action.DELETE) in work.calls


async def test_failures_back_off_and_a_new_request_retries_at_once() -> None:
    work = Recorder(hold=0.0, fail_times=2)
    scheduler = Scheduler(work, max_concurrency=1, retry_base=30.0, retry_max=30.0)
    scheduler.request(1, Action.SYNC)
    await asyncio.sleep(0.05)
    assert len(work.calls) == 1  # waiting out a 15-30 s backoff
    scheduler.request(1, Action.SYNC)  # a push arrived: the primary answers again
    await asyncio.sleep(0.05)
    assert len(work.calls) == 2
    scheduler.request(1, Action.VERIFY)
    await idle(scheduler)
    # The failed sync is retried as a sync, not downgraded by the weaker request.
    assert work.calls == [(1, Action.SYNC)] * 3


def test_backoff_doubles_up_to_its_ceiling() -> None:
    assert [backoff_ceiling(1.0, 10.0, attempt) for attempt in (1, 2, 3, 4, 5)] == [
        1.0,
        2.0,
        4.0,
        8.0,
        10.0,
    ]
    scheduler = Scheduler(Recorder(), 1, retry_base=4.0, retry_max=100.0)
    assert all(4.0 <= scheduler.backoff(2) <= 8.0 for _ in range(100))


async def test_drain_cancels_work_that_outlives_the_grace() -> None:
    cancelled = asyncio.Event()

    async def stuck(project_id: int, action: Action) -> Retry | None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return None

    scheduler = Scheduler(stuck, max_concurrency=1, retry_base=1, retry_max=1)
    scheduler.request(1, Action.SYNC)
    await asyncio.sleep(0.01)
    await scheduler.drain(grace=0.1)
    assert cancelled.is_set()
    scheduler.request(2, Action.SYNC)
    assert scheduler.depth == 0  # closed: no new work after the drain began


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        (None, Action.SYNC),
        ({"state": "failed", "synced_seq": 3}, Action.SYNC),
        ({"state": "failed", "next_retry_at": "2000-01-01T00:00:00Z"}, Action.SYNC),
        ({"state": "failed", "next_retry_at": "2999-01-01T00:00:00Z"}, None),
        ({"state": "synced", "synced_seq": 2}, Action.SYNC),
        (
            {"state": "synced", "synced_seq": 3, "verified_at": "2000-01-01T00:00:00Z"},
            Action.VERIFY,
        ),
        ({"state": "synced", "synced_seq": 3, "verified_at": "2999-01-01T00:00:00Z"}, None),
    ],
)
def test_backfill_asks_for_what_each_replica_needs(registry, expected) -> None:
    replicable = Replicable.model_validate(
        {
            "project_id": 1,
            "full_path": "a/b",
            "storage_shard": "default",
            "disk_path": "@hashed/x.git",
            "default_branch": "main",
            "seq": 3,
            "checksum": "c",
            "registry": registry,
        }
    )
    assert needed(replicable, timedelta(hours=1), datetime.now(UTC)) == expected
