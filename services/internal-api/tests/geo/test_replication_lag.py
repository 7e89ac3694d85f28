"""Lag on the primary's status is per push: each ReplicaSynced that brought a push is one sample,
a sync that brought none (a resync, a re-check) is none, and a quiet site shows no lag at all
rather than a figure that grows with the time since its last event."""

from __future__ import annotations

import uuid

from geogit.common.events import Topics, new_event
from geogit.common.kafka import KafkaConfig
from geogit.common.proto.events.v1 import replication_pb2
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.geo.replication_status import ReplicationStatusConsumer
from geogit.internal_api.geo.status import site_status
from geogit.internal_api.models import GeoSite, ReplicationStatus


def _synced(site: str, seq: int, lag_ms: int | None) -> replication_pb2.ReplicaSynced:
    return replication_pb2.ReplicaSynced(site=site, project_id=1, seq=seq, lag_ms=lag_ms)


async def _lag(db: SessionMaker, site: str) -> tuple[float | None, float | None, int]:
    async with db() as session:
        status = await site_status(session, GeoSite(id=0, name=site))
    return status.replication_lag_p50_ms, status.replication_lag_p99_ms, status.lag_samples


async def test_only_syncs_that_brought_a_push_are_lag_samples(db: SessionMaker) -> None:
    site = f"quiet-{uuid.uuid4().hex[:8]}"
    consumer = ReplicationStatusConsumer(
        db, KafkaConfig(bootstrap="127.0.0.1:9"), Topics(prefix="unused"), "primary"
    )
    assert await _lag(db, site) == (None, None, 0)  # a site that never synced: no lag
    for seq, lag_ms in ((1, 400), (1, None), (2, 800), (2, None), (2, None)):
        event = new_event(
            _synced(site, seq, lag_ms),
            aggregate_id=f"{site}:1",
            aggregate_seq=seq,
            origin_site=site,
        )
        await consumer.handle(event, None)  # type: ignore[arg-type]
    p50, p99, samples = await _lag(db, site)
    assert samples == 2
    assert p50 == 600 and p99 is not None and 790 < p99 <= 800


async def test_a_repeated_or_late_report_changes_nothing(db: SessionMaker) -> None:
    """Two internal API replicas share the consumer group; a rebalance may hand a report to the
    second while the first still writes it, or deliver an older one after a newer."""
    site = f"twice-{uuid.uuid4().hex[:8]}"
    consumer = ReplicationStatusConsumer(
        db, KafkaConfig(bootstrap="127.0.0.1:9"), Topics(prefix="unused"), "primary"
    )
    events = [
        new_event(
            _synced(site, seq, 100 * seq),
            aggregate_id=f"{site}:1",
            aggregate_seq=seq,
            origin_site=site,
        )
        for seq in (1, 2)
    ]
    for event in (events[0], events[1], events[1], events[0]):  # again, then late
        await consumer.handle(event, None)  # type: ignore[arg-type]
    async with db() as session:
        row = await session.get(ReplicationStatus, (site, 1))
    assert row is not None and row.seq == 2 and row.updated_at == events[1].occurred_at
    assert (await _lag(db, site))[2] == 2  # one sample per report, not per delivery
