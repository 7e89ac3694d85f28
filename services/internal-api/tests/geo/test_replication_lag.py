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
from geogit.internal_api.models import GeoSite


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
