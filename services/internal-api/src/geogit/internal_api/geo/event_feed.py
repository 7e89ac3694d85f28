"""A secondary's event feed: the primary's events, in global order, into the read model.

Kafka is the fast path and the event store is the truth (DESIGN §4). An event whose global
sequence is the next one is applied at once. Domain and repository events travel on two topics,
so they arrive interleaved: one that skips ahead waits in a small buffer for the events before
it. Only once the consumer has read everything Kafka holds and the buffer is still waiting is
the gap real — an event this site never received, or a number the primary's sequence skipped
when a transaction rolled back — and then the primary's event store answers with exactly the
events that exist after our position. The store is also polled on a timer, so events lost with
a broker's data are found even when no new event follows them.

The heartbeat is the freshness rule's "the site's event consumers are caught up": it is
renewed when the store confirms there is nothing newer, or when the Kafka consumer has read
and applied everything on its partitions with nothing waiting and no gap pending. A partition
whose end offset went backwards (a topic recreated by a broker that lost its data) counts as a
gap until the store has been asked. A primary that is down does not stop the heartbeat while
Kafka is up: the secondary keeps serving the replicas it knows are current.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from aiokafka import TopicPartition
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from geogit.common.background import Background
from geogit.common.events import Event, Topics
from geogit.common.kafka import ConsumerLoop, ConsumerRecordInfo, KafkaConfig
from geogit.common.primary_client import PrimaryClient, PrimaryUnavailable
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.geo import read_model
from geogit.internal_api.metrics import Metrics
from geogit.internal_api.models import GeoEventFeed, utcnow

log = logging.getLogger(__name__)

FEED_ROW = 1
STORE_PAGE = 500
# Kafka events held for an earlier one; past this many the store is asked at once.
MAX_WAITING = 10_000

Outcome = Literal["applied", "duplicate", "gap"]


class EventFeed:
    def __init__(
        self,
        sessions: SessionMaker,
        primary: PrimaryClient,
        kafka: KafkaConfig | None,
        topics: Topics,
        site_name: str,
        *,
        poll_seconds: float,
        heartbeat_seconds: float,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._primary = primary
        self._poll_seconds = poll_seconds
        self._heartbeat_seconds = heartbeat_seconds
        self._metrics = metrics or Metrics()
        self._lock = asyncio.Lock()
        self._gap_pending = True  # nothing is known until the store was asked once
        # Bumped whenever a gap is flagged, so a catch-up that began before cannot clear it.
        self._gap_generation = 0
        self._waiting: dict[int, Event] = {}
        self._ends: dict[TopicPartition, int] = {}
        self._kafka_loop = (
            ConsumerLoop(
                kafka,
                [topics.domain, topics.repository],
                f"geogit-read-model-{site_name}",
                self._on_kafka_event,
            )
            if kafka is not None
            else None
        )
        poll = Background("feed-poll", lambda: _every(self._poll_seconds, self._poll_once))
        self._loops: list[Background | ConsumerLoop] = [poll]
        if self._kafka_loop is not None:
            heartbeat = Background(
                "feed-heartbeat", lambda: _every(self._heartbeat_seconds, self._heartbeat_once)
            )
            self._loops += [heartbeat, self._kafka_loop]

    def start(self) -> None:
        for loop in self._loops:
            loop.start()

    async def stop(self) -> None:
        for loop in self._loops:
            await loop.stop()

    # Applying, in order ------------------------------------------------------------------

    async def _apply_in_order(self, events: list[Event], *, from_store: bool) -> list[Outcome]:
        """One transaction for a batch: the store's pages replay a new site's history quickly.
        The store's events are the next ones by definition; Kafka's must follow on."""
        outcomes: list[Outcome] = []
        async with self._lock, self._sessions() as session, session.begin():
            await session.execute(insert(GeoEventFeed).values(id=FEED_ROW).on_conflict_do_nothing())
            feed = await session.scalar(
                select(GeoEventFeed).where(GeoEventFeed.id == FEED_ROW).with_for_update()
            )
            assert feed is not None
            for event in events:
                if event.global_seq <= feed.last_global_seq:
                    outcomes.append("duplicate")
                    continue
                if not from_store and event.global_seq != feed.last_global_seq + 1:
                    outcomes.append("gap")
                    continue
                await read_model.apply(session, event)
                feed.last_global_seq = event.global_seq
                outcomes.append("applied")
            feed.updated_at = utcnow()
        applied = outcomes.count("applied")
        self._metrics.events_applied.labels("store" if from_store else "kafka").inc(applied)
        if applied:
            self._metrics.feed_position.set(feed.last_global_seq)
        return outcomes

    async def position(self) -> int:
        async with self._sessions() as session:
            last = await session.scalar(
                select(GeoEventFeed.last_global_seq).where(GeoEventFeed.id == FEED_ROW)
            )
        return last or 0

    async def catch_up(self) -> None:
        """Apply every event the store has after our position; raises PrimaryUnavailable."""
        while True:
            events = await self._primary.events_after(await self.position(), STORE_PAGE)
            if events:
                await self._apply_in_order(events, from_store=True)
            if len(events) < STORE_PAGE:
                return

    async def _mark_caught_up(self) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(GeoEventFeed)
                .where(GeoEventFeed.id == FEED_ROW)
                .values(caught_up_at=func.now())
            )

    # The three loops ---------------------------------------------------------------------

    def _flag_gap(self) -> None:
        self._gap_pending = True
        self._gap_generation += 1

    async def _poll_once(self) -> None:
        generation = self._gap_generation
        try:
            await self.catch_up()
        except PrimaryUnavailable as exc:
            self._metrics.catch_ups.labels("unavailable").inc()
            log.info("event store unreachable", extra={"error": str(exc)})
            return
        self._metrics.catch_ups.labels("ok").inc()
        position = await self.position()
        self._waiting = {seq: e for seq, e in self._waiting.items() if seq > position}
        if self._gap_generation == generation and not self._waiting:
            self._gap_pending = False
            await self._mark_caught_up()

    async def _on_kafka_event(self, event: Event, info: ConsumerRecordInfo) -> None:
        """Apply what follows on from our position; keep what still waits for an earlier one.
        The offset is committed either way: a waiting event is safe in the event store."""
        self._waiting[event.global_seq] = event
        ordered = [self._waiting[seq] for seq in sorted(self._waiting)]
        outcomes = await self._apply_in_order(ordered, from_store=False)
        self._waiting = {
            e.global_seq: e
            for e, outcome in zip(ordered, outcomes, strict=True)
            if outcome == "gap"
        }
        if len(self._waiting) > MAX_WAITING:
            await self._resolve_gap()

    async def _resolve_gap(self) -> None:
        """Events Kafka does not have (or never will): ask the store for them."""
        self._flag_gap()
        self._metrics.catch_ups.labels("gap").inc()
        await self._poll_once()

    async def _heartbeat_once(self) -> None:
        consumer = self._kafka_loop.consumer if self._kafka_loop is not None else None
        if consumer is None:
            return
        positions = await consumer.positions()
        reset = [tp for tp, (_, end) in positions.items() if end < self._ends.get(tp, 0)]
        self._ends.update({tp: end for tp, (_, end) in positions.items()})
        if reset:
            log.warning(
                "kafka partitions were reset; asking the event store", extra={"n": len(reset)}
            )
            await self._resolve_gap()
            return
        caught_up = bool(positions) and all(pos >= end for pos, end in positions.values())
        if not (caught_up and consumer.idle):
            return
        if self._waiting:
            await self._resolve_gap()  # everything Kafka holds is read; the rest is missing
        elif not self._gap_pending:
            await self._mark_caught_up()


async def _every(seconds: float, step: Callable[[], Awaitable[None]]) -> None:
    """Run `step` forever, `seconds` apart; a failing step is logged, never fatal.

    A run of failures (the database or the primary down for a while) is logged when it starts
    and when it ends, not once per step.
    """
    failures = 0
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            if failures == 1:
                log.warning(
                    "event feed step failed", extra={"step": step.__name__, "error": repr(exc)}
                )
        else:
            if failures:
                log.info(
                    "event feed step works again",
                    extra={"step": step.__name__, "failures": failures},
                )
            failures = 0
        await asyncio.sleep(seconds)
