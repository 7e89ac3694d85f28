"""Which projects this replicator works on, when a site runs several.

Kafka decides, not us: a project is owned by the member of the site's consumer group that holds
the partition of `geogit.repository` its events are keyed to (`project-<id>`, murmur2 as every
Kafka producer). Every path to work asks `owns` — the repository feed only ever delivers owned
projects, but backfill, scheduled verification and operator actions see all of them.

aiokafka rebalances eagerly: every member's partitions are revoked, then the new assignment
handed out, on every change of membership. So a revoke only stops new work from starting, and
the assignment cancels (and waits for) the work of the projects that did leave; those that came
back keep running, so a replica joining does not restart every sync of the site. Between the
two, a project handed over may still be syncing here while its new owner starts: storage
serializes writers of one repository, so the two fetches run one after the other, and the
second finds nothing to fetch. When partitions arrive, backfill looks at this replicator's new
share, which picks up whatever the previous owner was doing (its registry rows, not its queue,
say what is done).

Without Kafka there is one replicator and it owns everything.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiokafka import TopicPartition

from geogit.common.events import project_aggregate
from geogit.common.kafka import Assignment, RebalanceHooks
from geogit.replicator.metrics import ReplicatorMetrics

log = logging.getLogger(__name__)

Release = Callable[[Callable[[int], bool]], Awaitable[int]]


class Ownership:
    def __init__(
        self,
        topic: str | None,
        release: Release,
        gained: Callable[[], None],
        metrics: ReplicatorMetrics,
    ) -> None:
        """`topic` None: no Kafka, everything is owned. `release(keep)` stops the work on
        every project `keep` rejects and says how many; `gained` asks for a backfill."""
        self._topic = topic
        self._release = release
        self._gained = gained
        self._metrics = metrics
        self._held = Assignment()
        self.hooks = RebalanceHooks(self._assigned, self._revoked)

    def owns(self, project_id: int) -> bool:
        if self._topic is None:
            return True
        return self._held.owns(self._topic, project_aggregate(project_id))

    @property
    def partitions(self) -> frozenset[TopicPartition]:
        return self._held.partitions

    async def _assigned(self, assignment: Assignment) -> None:
        self._held = Assignment(
            self._held.partitions | assignment.partitions,
            {**self._held.counts, **assignment.counts},
        )
        stopped = await self._release(self.owns)
        self._changed("partitions assigned", assignment, stopped=stopped)
        if assignment.partitions:
            self._gained()

    async def _revoked(self, assignment: Assignment) -> None:
        self._held = Assignment(self._held.partitions - assignment.partitions, self._held.counts)
        self._changed("partitions revoked", assignment)

    def _changed(self, what: str, assignment: Assignment, **extra: int) -> None:
        self._metrics.owned_partitions.set(len(self._held.partitions))
        log.info(
            what,
            extra={
                "partitions": sorted(tp.partition for tp in assignment.partitions),
                "held": sorted(tp.partition for tp in self._held.partitions),
                **extra,
            },
        )
