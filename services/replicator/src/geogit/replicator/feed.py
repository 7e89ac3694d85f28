"""Repository events from `geogit.repository` (this site's own consumer group, whose members
divide the projects by partition: ownership.py), turned into work for the scheduler: the fast
path from a push to a sync. `geogit.domain` is read by every replicator of the site, with no
group: its events are keyed by their own aggregates (a site, a project) and each replicator acts
on its share of them, so none may go to one member only. From it,
`ProjectUpdated` moves the replica's HEAD to a new default branch, `GeoActionRequested`
for this site is an operator's resync, reverify or backfill (the Geo page, the API), and
selective sync is re-evaluated once the read model has the change: this site's `SiteAdded`
or `SiteUpdated` backfills (projects that left the selection lose their replica, those that
entered sync), a `ProjectRenamed` (a transfer to another namespace) re-checks that project.

The offset is committed once the work is requested, not done: the registry, not the offset,
records what is replicated, and backfill finds whatever a crash left undone. A broker that lost
its data costs nothing here either; backfill compares every project with the read model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC
from typing import Any

from geogit.common.events import Event, Topics
from geogit.common.kafka import ConsumerLoop, ConsumerRecordInfo, KafkaConfig
from geogit.common.storage_client import EMPTY_CHECKSUM
from geogit.replicator.ownership import Ownership
from geogit.replicator.read_model_wait import ReadModelWait
from geogit.replicator.scheduler import Action, Scheduler
from geogit.replicator.sync_state import Hint, SyncStates

# An operator's resync fetches even a replica its registry calls current; a reverify checks
# one that was verified a minute ago.
OPERATOR_ACTIONS = {"resync": Action.RESYNC, "reverify": Action.VERIFY}


class RepositoryFeed:
    def __init__(
        self,
        kafka: KafkaConfig,
        topics: Topics,
        site: str,
        scheduler: Scheduler,
        states: SyncStates,
        backfill_now: Callable[[], None],
        read_model: ReadModelWait,
        ownership: Ownership,
    ) -> None:
        self._site = site
        self._read_model = read_model
        self._scheduler = scheduler
        self._states = states
        self._backfill_now = backfill_now
        self._loops = [
            ConsumerLoop(
                kafka,
                [topics.repository],
                topics.group(f"replicator-{site}"),
                self.handle,
                hooks=ownership.hooks,
            ),
            ConsumerLoop(kafka, [topics.domain], None, self.handle),
        ]
        self._owns = ownership.owns

    async def start(self, timeout: float) -> None:
        """Start consuming; return once both consumers are (or after `timeout`: without the
        broker, backfill alone keeps the site converging). The domain consumer starts at the
        end, so an operator action or selection change made after this returns is seen."""
        for loop in self._loops:
            loop.start()
        await asyncio.gather(*(loop.consuming(timeout) for loop in self._loops))

    async def stop(self) -> None:
        for loop in self._loops:
            await loop.stop()
        await self._read_model.stop()

    async def handle(self, event: Event, info: ConsumerRecordInfo) -> None:
        payload: Any = event.payload
        project_id = getattr(payload, "project_id", 0)  # 0: none (a site's, a backfill)
        if project_id and not self._owns(project_id):
            return  # another replicator's project: its hints and actions are for that one
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
            # No push time: an empty repository arriving is not a push, so no lag sample
            # (lag is per push; a creation counted too would depend on how soon a push follows).
            self._states.hint(payload.project_id, Hint(payload.seq, EMPTY_CHECKSUM, None))
            self._scheduler.request(payload.project_id, Action.SYNC)
        elif event.type == "GeoActionRequested" and payload.site == self._site:
            self._act(payload.action, payload.project_id)
        elif event.type in ("SiteAdded", "SiteUpdated") and payload.name == self._site:
            self._read_model.then(event.global_seq, self._backfill_now)
        elif event.type == "RepositoryMoved":  # the replica follows, on the read model's shard
            moved = payload.project_id
            self._read_model.then(
                event.global_seq, lambda: self._scheduler.request(moved, Action.SYNC)
            )
        elif event.type == "ProjectRenamed":
            renamed = payload.project_id
            self._read_model.then(
                event.global_seq, lambda: self._scheduler.request(renamed, Action.SYNC)
            )

    def _act(self, action: str, project_id: int) -> None:
        if action == "backfill":
            self._backfill_now()
        elif action in OPERATOR_ACTIONS:
            self._scheduler.request(project_id, OPERATOR_ACTIONS[action])
