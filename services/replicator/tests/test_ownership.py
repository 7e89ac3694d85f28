"""A replicator's share of the projects: only what its partitions hold is requested, work on
projects whose partitions left is stopped before the new assignment returns (and only theirs),
and new partitions ask for a backfill."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from geogit.common.events import project_aggregate
from geogit.common.kafka import Assignment, partition_for
from geogit.replicator.metrics import ReplicatorMetrics
from geogit.replicator.ownership import Ownership
from geogit.replicator.scheduler import Action, Retry, Scheduler

TOPIC = "geogit.repository"
PARTITIONS = 3


def _on(partition: int, count: int = 2) -> list[int]:
    """The first `count` project ids whose key lands on `partition`."""
    found: list[int] = []
    project_id = 1
    while len(found) < count:
        if partition_for(project_aggregate(project_id), PARTITIONS) == partition:
            found.append(project_id)
        project_id += 1
    return found


def _assignment(*partitions: int) -> Assignment:
    return Assignment(frozenset(TopicPartition(TOPIC, p) for p in partitions), {TOPIC: PARTITIONS})


class Stuck:
    """Work that runs until cancelled, remembering who started and who was cancelled."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.cancelled: list[int] = []

    async def __call__(self, project_id: int, action: Action) -> Retry | None:
        self.started.append(project_id)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.append(project_id)
            raise
        return None


async def test_only_held_partitions_projects_are_taken_and_those_that_leave_stop() -> None:
    work = Stuck()
    backfills: list[None] = []
    metrics = ReplicatorMetrics()
    holder: list[Ownership] = []
    scheduler = Scheduler(work, 8, 1, 1, metrics, owns=lambda pid: holder[0].owns(pid))
    ownership = Ownership(TOPIC, scheduler.release, lambda: backfills.append(None), metrics)
    holder.append(ownership)
    kept, moved, foreign = _on(0), _on(1), _on(2)

    assert not scheduler.request(kept[0], Action.SYNC)  # nothing is held before the group says
    await ownership.hooks.assigned(_assignment(0, 1))
    assert backfills == [None]
    assert metrics.registry.get_sample_value("geogit_replicator_owned_partitions") == 2
    for project_id in [*kept, *moved, *foreign]:
        scheduler.request(project_id, Action.SYNC)
    await asyncio.sleep(0.05)
    assert sorted(work.started) == sorted([*kept, *moved])

    # A revoke only stops new work: in an eager rebalance the partition may well come back.
    await ownership.hooks.revoked(_assignment(0, 1))
    assert not scheduler.request(kept[0], Action.VERIFY) and work.cancelled == []
    # The new assignment keeps partition 0: the moved projects' work is stopped, and the
    # assignment returned only after it had.
    await ownership.hooks.assigned(_assignment(0))
    assert sorted(work.cancelled) == sorted(moved)
    assert scheduler.depth == len(kept)
    assert not scheduler.request(moved[0], Action.SYNC)
    assert ownership.owns(kept[0]) and not ownership.owns(moved[0])
    assert backfills == [None, None]  # each assignment looks at the new share
    await scheduler.drain(0)


async def test_without_kafka_everything_is_owned() -> None:
    scheduler = Scheduler(Stuck(), 1, 1, 1)
    ownership = Ownership(None, scheduler.release, lambda: None, ReplicatorMetrics())
    assert all(ownership.owns(project_id) for project_id in range(1, 50))
