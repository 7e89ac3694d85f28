"""Repository events from `geogit.repository` (this site's own consumer group), turned into
work for the scheduler: the fast path from a push to a sync. From `geogit.domain` only
`ProjectUpdated` matters here: a new default branch moves the replica's HEAD.

The offset is committed once the work is requested, not done: the registry, not the offset,
records what is replicated, and backfill finds whatever a crash left undone. A broker that lost
its data costs nothing here either; backfill compares every project with the read model.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from geogit.common.events import Event, Topics
from geogit.common.kafka import ConsumerLoop, ConsumerRecordInfo, KafkaConfig
from geogit.common.storage_client import EMPTY_CHECKSUM
from geogit.replicator.scheduler import Action, Scheduler
from geogit.replicator.sync_state import Hint, SyncStates


class RepositoryFeed:
    def __init__(
        self,
        kafka: KafkaConfig,
        topics: Topics,
        site: str,
        scheduler: Scheduler,
        states: SyncStates,
    ) -> None:
        self._scheduler = scheduler
        self._states = states
        self._loop = ConsumerLoop(
            kafka, [topics.repository, topics.domain], f"geogit-replicator-{site}", self.handle
        )

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def handle(self, event: Event, info: ConsumerRecordInfo) -> None:
        payload: Any = event.payload
        if event.type == "RepositoryDeleted":
            self._scheduler.request(payload.project_id, Action.DELETE)
        elif event.type == "RepositoryUpdated":
            pushed_at = (
                payload.pushed_at.ToDatetime(tzinfo=UTC) if payload.HasField("pushed_at") else None
            )
            self._states.hint(payload.project_id, Hint(payload.seq, payload.checksum, pushed_at))
            self._scheduler.request(payload.project_id, Action.SYNC)
        elif event.type == "ProjectUpdated":
            self._states.default_branch(payload.project_id, payload.default_branch)
            self._scheduler.request(payload.project_id, Action.SYNC)
        elif event.type == "RepositoryCreated":
            hint = Hint(payload.seq, EMPTY_CHECKSUM, event.occurred_at)
            self._states.hint(payload.project_id, hint)
            self._scheduler.request(payload.project_id, Action.SYNC)
