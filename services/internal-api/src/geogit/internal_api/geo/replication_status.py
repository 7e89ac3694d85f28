"""The primary listens to its secondaries' replicators on `geogit.replication` (DESIGN §4).

Each report updates that site's row for the project and, for a sync, adds a lag sample for
the percentiles of `/geo/sites/:id/status`. Every replica of the internal API runs this
consumer in one group, so each report is handled by one of them — but a rebalance hands a
partition over at its last commit, and its old owner may still be writing the record it had.
So the handler is idempotent and ordered on its own: a row changes only for a report made
after the one it holds (`updated_at` is the report's own time, stamped once by the reporting
site's outbox), and only a report that changed the row adds a lag sample. A repeated report
changes nothing; an older one arriving late cannot undo a newer one.
"""

from __future__ import annotations

import time
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert

from geogit.common.events import Event, Topics
from geogit.common.kafka import ConsumerLoop, ConsumerRecordInfo, KafkaConfig
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.models import ReplicationLagSample, ReplicationStatus, utcnow

SAMPLE_RETENTION = timedelta(days=1)
PRUNE_EVERY_SECONDS = 60.0


class ReplicationStatusConsumer:
    def __init__(
        self, sessions: SessionMaker, kafka: KafkaConfig, topics: Topics, site_name: str
    ) -> None:
        self._sessions = sessions
        self._pruned_at = 0.0
        self._loop = ConsumerLoop(
            kafka,
            [topics.replication],
            topics.group(f"replication-status-{site_name}"),
            self.handle,
        )

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def handle(self, event: Event, info: ConsumerRecordInfo) -> None:
        payload: Any = event.payload
        values: dict[str, object] = {"updated_at": event.occurred_at}
        if event.type == "ReplicaSynced":
            values |= {
                "state": "synced",
                "seq": payload.seq,
                "error": "",
                "attempts": 0,
                "next_retry_at": None,
                "synced_at": event.occurred_at,
            }
        elif event.type == "ReplicaFailed":
            values |= {
                "state": "failed",
                "seq": payload.seq,
                "error": payload.error[:2000],
                "attempts": payload.attempts,
                "next_retry_at": (
                    payload.next_retry_at.ToDatetime(tzinfo=UTC)
                    if payload.HasField("next_retry_at")
                    else None
                ),
            }
        elif event.type == "ReplicaVerified":
            values |= {"verified": payload.ok, "verified_at": event.occurred_at}
        else:
            return
        async with self._sessions() as session, session.begin():
            statement = insert(ReplicationStatus).values(
                {"site": payload.site, "project_id": payload.project_id, "state": "pending"}
                | values
            )
            upsert = statement.on_conflict_do_update(
                index_elements=["site", "project_id"],
                set_=values,
                where=ReplicationStatus.updated_at < statement.excluded.updated_at,
            ).returning(ReplicationStatus.site)
            changed = (await session.execute(upsert)).first() is not None
            if changed and event.type == "ReplicaSynced" and payload.HasField("lag_ms"):
                session.add(ReplicationLagSample(site=payload.site, lag_ms=max(payload.lag_ms, 0)))
            if time.monotonic() - self._pruned_at > PRUNE_EVERY_SECONDS:
                self._pruned_at = time.monotonic()
                await session.execute(
                    delete(ReplicationLagSample).where(
                        ReplicationLagSample.recorded_at < utcnow() - SAMPLE_RETENTION
                    )
                )
