"""The outbox relay: publishes outbox rows to Kafka in global order and marks them sent.

One relay publishes at a time across all replicas of the internal API: each batch runs in a
transaction holding a transaction-scoped advisory lock, and a replica that cannot take it
waits for the next round. Within a batch rows go out one by one, in id order, each awaited
until the broker has it (acks=all); the rows published before a failure are marked sent, the
rest stay for the next attempt. While Kafka is unreachable the relay backs off exponentially
and keeps trying, forever: events wait in the outbox, nothing is lost. A publish that timed out
may still have reached the broker, so delivery is at-least-once; consumers dedupe by global
sequence.

The relay wakes when a writer commits: its listener holds a LISTEN connection on the table's
channel (events/listener.py). The poll stays as the fallback — `poll_seconds` while the
listener is down, `listen_poll_seconds` (long) while it listens — so a lost notification or a
dead LISTEN connection delays events, never stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aiokafka.errors import KafkaError
from sqlalchemy import ScalarResult, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from geogit.common.background import Background
from geogit.common.events import Topics
from geogit.common.kafka import EventProducer, KafkaConfig, PublishError, TopicGuard
from geogit.common.kafka_health import broker_health
from geogit.internal_api.db import SessionMaker, database_unavailable
from geogit.internal_api.events.listener import OutboxListener
from geogit.internal_api.events.outbox import (
    OUTBOX_CHANNEL,
    REPORT_OUTBOX_CHANNEL,
    to_event,
    topic_of,
)
from geogit.internal_api.metrics import Metrics
from geogit.internal_api.models import OutboxEvent, ReportOutboxEvent, utcnow

log = logging.getLogger(__name__)

RELAY_LOCK_KEY = 0x6765_6F67_6974_02  # "geogit" 2
REPORT_RELAY_LOCK_KEY = 0x6765_6F67_6974_04  # "geogit" 4
Table = type[OutboxEvent] | type[ReportOutboxEvent]
INITIAL_BACKOFF_SECONDS = 0.2

_KAFKA_ERRORS = (KafkaError, PublishError, OSError, TimeoutError)


class _BrokerFailure(Exception):
    """Publishing failed (its cause says how); the rows published before it are marked sent.

    Told apart from the database's failures, which may be OSErrors and timeouts as well."""


class OutboxRelay:
    def __init__(
        self,
        sessions: SessionMaker,
        kafka: KafkaConfig,
        topics: Topics,
        table: Table = OutboxEvent,
        *,
        batch_size: int = 200,
        poll_seconds: float = 0.2,
        listen_dsn: str | None = None,
        listen_poll_seconds: float = 2.0,
        max_backoff_seconds: float = 10.0,
        publish_timeout_seconds: float = 15.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._kafka = kafka
        self._topics = topics
        # The site's events, or its replicator's reports: two tables, one relay each.
        self._table = table
        self._lock_key = RELAY_LOCK_KEY if table is OutboxEvent else REPORT_RELAY_LOCK_KEY
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._listen_poll_seconds = listen_poll_seconds
        channel = OUTBOX_CHANNEL if table is OutboxEvent else REPORT_OUTBOX_CHANNEL
        # Without a DSN (a test's relay) the relay only polls.
        self.listener = (
            None
            if listen_dsn is None
            else OutboxListener(listen_dsn, channel, max_backoff_seconds=max_backoff_seconds)
        )
        self._wake = asyncio.Event() if self.listener is None else self.listener.wake
        self._max_backoff = max_backoff_seconds
        self._publish_timeout = publish_timeout_seconds
        # A relay built on its own (a test's) counts into a registry nobody reads.
        self._metrics = metrics or Metrics()
        self._producer: EventProducer | None = None
        # One kept admin connection for the per-batch topic check, dropped with the producer.
        self._topic_guard = TopicGuard(
            kafka, [topics.domain, topics.repository, topics.replication]
        )
        self._loop = Background(f"relay-{table.__tablename__}", self.run)

    def start(self) -> None:
        if self.listener is not None:
            self.listener.start()
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        if self.listener is not None:
            await self.listener.stop()
        await self._disconnect()

    async def _idle(self) -> None:
        """Until a writer commits (the listener's wake-up) or the fallback poll is due."""
        listening = self.listener is not None and self.listener.listening
        timeout = self._listen_poll_seconds if listening else self._poll_seconds
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def run(self) -> None:
        backoff = INITIAL_BACKOFF_SECONDS
        while True:
            # Cleared before the query: a commit during the batch wakes the next round.
            self._wake.clear()
            try:
                published = await self.relay_once()
            except _BrokerFailure as exc:
                self._metrics.relay_failures.labels("kafka").inc()
                # A broker outage is logged once, by the Kafka clients' shared state.
                level = logging.DEBUG if broker_health.in_outage else logging.WARNING
                log.log(
                    level,
                    "outbox relay: Kafka unavailable, retrying",
                    extra={"error": repr(exc.__cause__)},
                )
                await self._disconnect()
            except (SQLAlchemyError, OSError) as exc:
                self._metrics.relay_failures.labels("database").inc()
                what = "unavailable" if database_unavailable(exc) else "error"
                log.warning(f"outbox relay: database {what}, retrying", extra={"error": repr(exc)})
            else:
                backoff = INITIAL_BACKOFF_SECONDS
                if published < self._batch_size:
                    await self._idle()
                continue
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    async def relay_once(self) -> int:
        """Publish one batch of unsent rows; returns how many were published."""
        published: list[int] = []
        failure: BaseException | None = None
        async with self._sessions() as session, session.begin():
            if not await session.scalar(select(func.pg_try_advisory_xact_lock(self._lock_key))):
                return 0  # another replica is relaying
            table = self._table
            rows: ScalarResult[OutboxEvent | ReportOutboxEvent] = await session.scalars(
                select(table)
                .where(table.sent_at.is_(None))
                .order_by(table.id)
                .limit(self._batch_size)
            )
            try:
                await self._publish(rows.all(), published)
            except _KAFKA_ERRORS as exc:
                failure = _BrokerFailure()
                failure.__cause__ = exc
            if published:
                await session.execute(
                    update(table).where(table.id.in_(published)).values(sent_at=utcnow())
                )
        self._metrics.outbox_published.inc(len(published))
        if failure is not None:
            raise failure
        return len(published)

    async def _publish(
        self, rows: Sequence[OutboxEvent | ReportOutboxEvent], published: list[int]
    ) -> None:
        if not rows:
            return
        # Checked before every batch, not only when connecting: a broker restarted behind a
        # live connection may have lost its topics, and Tansu then acknowledges produce
        # requests for the missing topic while keeping nothing.
        async with asyncio.timeout(self._publish_timeout):
            await self._topic_guard.ensure()
        producer = await self._connect()
        for row in rows:
            async with asyncio.timeout(self._publish_timeout):
                await producer.publish(topic_of(row.stream, self._topics), to_event(row))
            published.append(row.id)

    async def _connect(self) -> EventProducer:
        if self._producer is not None:
            return self._producer
        producer = EventProducer(self._kafka)
        try:
            async with asyncio.timeout(self._publish_timeout):
                await producer.start()
        except BaseException:
            await self._stop(producer)
            raise
        self._producer = producer
        log.info("outbox relay connected", extra={"bootstrap": self._kafka.bootstrap})
        return producer

    async def _disconnect(self) -> None:
        with contextlib.suppress(*_KAFKA_ERRORS):
            async with asyncio.timeout(self._publish_timeout):
                await self._topic_guard.close()
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._stop(producer)

    async def _stop(self, producer: EventProducer) -> None:
        # Stopping flushes what is still queued, which waits for a broker that may be gone.
        with contextlib.suppress(*_KAFKA_ERRORS):
            async with asyncio.timeout(self._publish_timeout):
                await producer.stop()
