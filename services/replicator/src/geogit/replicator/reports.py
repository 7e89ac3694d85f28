"""Replication reports on `geogit.replication` (DESIGN §4): ReplicaSynced / ReplicaFailed /
ReplicaVerified, keyed by site and project, for the primary's status page and anyone observing.

Reports are telemetry: the registry in the site's database is the state. So a sync only puts
its report in a bounded queue and goes on; one background task publishes them. While Kafka is
down the queue fills and further reports are dropped (and counted), rather than holding up
replication.
"""

from __future__ import annotations

import asyncio
import logging

from google.protobuf.message import Message
from prometheus_client import Counter

from geogit.common.background import Background
from geogit.common.events import Event, Topics, new_event
from geogit.common.kafka import EventProducer, KafkaConfig, ensure_topics

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 5.0
QUEUE_SIZE = 1000
DROPPED = Counter("geogit_replication_reports_dropped_total", "Reports not published")


class Reports:
    def __init__(self, kafka: KafkaConfig | None, topics: Topics, site: str) -> None:
        self._kafka = kafka
        self._topic = topics.replication
        self.site = site
        self._queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        self._producer: EventProducer | None = None
        self._publisher = Background("replication-reports", self._publish_forever)

    def start(self) -> None:
        if self._kafka is not None:
            self._publisher.start()

    async def stop(self) -> None:
        await self._publisher.stop()
        await self._disconnect()

    def publish(self, project_id: int, seq: int, payload: Message) -> None:
        if self._kafka is None:
            return
        event = new_event(
            payload,
            aggregate_id=f"{self.site}:{project_id}",
            aggregate_seq=seq,
            origin_site=self.site,
        )
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            DROPPED.inc()

    async def _publish_forever(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                    producer = await self._connected()
                    await producer.publish(self._topic, event)
            except Exception as exc:  # Kafka down or refusing: the report is telemetry
                DROPPED.inc()
                log.warning(
                    "replication report dropped", extra={"type": event.type, "error": repr(exc)}
                )
                await self._disconnect()

    async def _connected(self) -> EventProducer:
        if self._producer is None:
            assert self._kafka is not None
            producer = EventProducer(self._kafka)
            await ensure_topics(self._kafka, [self._topic])
            await producer.start()
            self._producer = producer
        return self._producer

    async def _disconnect(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                    await producer.stop()
            except Exception as exc:  # a broker that is gone cannot be flushed to
                log.info("report producer stopped uncleanly", extra={"error": repr(exc)})
