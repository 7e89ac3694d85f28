"""Replication reports on `geogit.replication` (DESIGN §4): ReplicaSynced / ReplicaFailed /
ReplicaVerified, keyed by site and project, for the primary's status page and anyone observing.

Reports are telemetry: the registry in the site's database is the state. A report that cannot
be sent (Kafka down) is logged and dropped rather than holding up replication.
"""

from __future__ import annotations

import asyncio
import logging

from google.protobuf.message import Message

from geogit.common.events import Topics, new_event
from geogit.common.kafka import EventProducer, KafkaConfig, PublishError, ensure_topics

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 5.0


class Reports:
    def __init__(self, kafka: KafkaConfig | None, topics: Topics, site: str) -> None:
        self._kafka = kafka
        self._topic = topics.replication
        self.site = site
        self._producer: EventProducer | None = None

    async def _connected(self) -> EventProducer | None:
        if self._kafka is None:
            return None
        if self._producer is None:
            producer = EventProducer(self._kafka)
            await ensure_topics(self._kafka, [self._topic])
            await producer.start()
            self._producer = producer
        return self._producer

    async def publish(self, project_id: int, seq: int, payload: Message) -> None:
        event = new_event(
            payload,
            aggregate_id=f"{self.site}:{project_id}",
            aggregate_seq=seq,
            origin_site=self.site,
        )
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                producer = await self._connected()
                if producer is not None:
                    await producer.publish(self._topic, event)
        except (PublishError, OSError, TimeoutError, Exception) as exc:
            log.warning(
                "replication report dropped", extra={"type": event.type, "error": repr(exc)}
            )
            await self.close()

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                    await producer.stop()
            except Exception as exc:  # a broker that is gone cannot be flushed to
                log.info("report producer stopped uncleanly", extra={"error": repr(exc)})
