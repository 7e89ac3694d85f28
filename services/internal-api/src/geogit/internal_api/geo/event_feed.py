"""A secondary's event feed: the primary's events, in global order, into the read model.

Kafka is the fast path and the event store is the truth (DESIGN §4). An event whose global
sequence is the next one is applied at once. Domain and repository events travel on two topics,
so they arrive interleaved: one that skips ahead waits in a small buffer for the events before
it. Only once the consumer has read everything Kafka holds and the buffer is still waiting is
the gap real — an event this site never received, or a number the primary's sequence skipped
when a transaction rolled back — and then the primary's event store answers with exactly the
events that exist after our position. The store is also polled on a timer, so events lost with
a broker's data are found even when no new event follows them.

The Kafka consumer belongs to no group: every replica of the internal API reads every partition
of both topics, from their end when it starts, and commits nothing; its position is the feed's
own (`last_global_seq`, under `lock_feed`), so two replicas applying the same events apply each
once, in order, and the second sees duplicates. A shared group would be wrong here: a member
given no partition, or only one topic's, would find itself "caught up on its partitions" while
the events it never reads wait on the other's, and renew the heartbeat over them. A consumer
that starts from the end has skipped what came before, so each new one counts as a gap until
the store has been asked after it took its position.

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
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from aiokafka import TopicPartition
from sqlalchemy import func, update

from geogit.common.background import Background
from geogit.common.events import Event, Topics
from geogit.common.kafka import ConsumerLoop, ConsumerRecordInfo, EventConsumer, KafkaConfig
from geogit.common.primary_client import PrimaryClient, PrimaryUnavailable
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.geo import epochs, site_state
from geogit.internal_api.geo.epochs import EpochHistory
from geogit.internal_api.geo.mirror import FEED_ROW, apply_and_mirror, feed_position, lock_feed
from geogit.internal_api.geo.site_state import SiteAuthority
from geogit.internal_api.metrics import Metrics
from geogit.internal_api.models import GeoEventFeed, utcnow

log = logging.getLogger(__name__)

STORE_PAGE = 500
# Kafka events held for an earlier one; past this many the store is asked at once.
MAX_WAITING = 10_000

Outcome = Literal["applied", "duplicate", "gap", "stale", "new_epoch", "held"]
NewEpoch = Callable[[Event], Awaitable[None]]
Rollback = Callable[[], Awaitable[None]]


class EventFeed:
    def __init__(
        self,
        sessions: SessionMaker,
        primary: PrimaryClient,
        kafka: KafkaConfig | None,
        topics: Topics,
        site_name: str,
        authority: SiteAuthority,
        *,
        on_new_epoch: NewEpoch,
        rollback: Rollback,
        poll_seconds: float,
        heartbeat_seconds: float,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._primary = primary
        self._authority = authority
        self._on_new_epoch = on_new_epoch
        self._rollback = rollback
        self._poll_seconds = poll_seconds
        self._heartbeat_seconds = heartbeat_seconds
        self._metrics = metrics or Metrics()
        self._lock = asyncio.Lock()
        self._gap_pending = True  # nothing is known until the store was asked once
        # Bumped whenever a gap is flagged, so a catch-up that began before cannot clear it.
        self._gap_generation = 0
        self._waiting: dict[int, Event] = {}
        self._ends: dict[TopicPartition, int] = {}
        # The Kafka consumer the heartbeat last looked at: a new one started from the end.
        self._consumer_seen: EventConsumer | None = None
        self._kafka_loop = (
            ConsumerLoop(
                kafka,
                [topics.domain, topics.repository],
                None,  # no group: every replica reads every partition (module docstring)
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

    @property
    def kafka_ready(self) -> bool:
        """A Kafka consumer is running and has taken its position (the end): an event
        published from now on reaches it."""
        return self._kafka_loop is not None and self._kafka_loop.consumer is not None

    async def stop(self) -> None:
        for loop in self._loops:
            await loop.stop()

    # Applying, in order ------------------------------------------------------------------

    async def _apply_in_order(self, events: list[Event], *, from_store: bool) -> list[Outcome]:
        """One transaction for a batch: the store's pages replay a new site's history quickly.
        The store's events are the next ones by definition; Kafka's must follow on. Nothing is
        applied while this site is primary or has a rollback to do, and only events of the
        epoch their sequence falls under are (geo/epochs.py); the first event of an epoch this
        site has not heard of is handed to `on_new_epoch`, which confirms it with the sites."""
        outcomes: list[Outcome] = []
        promotions: list[Event] = []
        async with self._lock, self._sessions() as session, session.begin():
            state = await site_state.load(session)
            if state.role != "secondary" or state.rollback_after_seq is not None:
                return ["held"] * len(events)
            feed = await lock_feed(session)
            known = await epochs.history(session)
            for event in events:
                outcome = self._judge(event, known, feed.last_global_seq, from_store=from_store)
                outcomes.append(outcome)
                if outcome == "new_epoch" and event.type == "SitePromoted":
                    promotions.append(event)
                if outcome != "applied":
                    continue
                await apply_and_mirror(session, event)
                feed.last_global_seq = event.global_seq
                if event.type == "SitePromoted":
                    known = await epochs.history(session)
            feed.updated_at = utcnow()
        applied = outcomes.count("applied")
        self._metrics.events_applied.labels("store" if from_store else "kafka").inc(applied)
        if stale := outcomes.count("stale"):
            self._metrics.events_refused.labels("stale_epoch").inc(stale)
        if applied:
            self._metrics.feed_position.set(feed.last_global_seq)
        for promotion in promotions:
            await self._on_new_epoch(promotion)
        return outcomes

    @staticmethod
    def _judge(event: Event, known: EpochHistory, position: int, *, from_store: bool) -> Outcome:
        verdict = known.judge(event.epoch, event.global_seq, event.origin_site)
        if verdict == "unknown":
            return "new_epoch"
        if verdict == "stale":
            log.warning(
                "event of a stale epoch refused",
                extra={
                    "global_seq": event.global_seq,
                    "epoch": event.epoch,
                    "expected_epoch": known.epoch_at(event.global_seq),
                    "origin_site": event.origin_site,
                },
            )
            return "stale"
        if event.global_seq <= position:
            return "duplicate"
        if not from_store and event.global_seq != position + 1:
            return "gap"
        return "applied"

    async def position(self) -> int:
        async with self._sessions() as session:
            return await feed_position(session)

    async def catch_up(self) -> None:
        """Apply every event the store has after our position; raises PrimaryUnavailable."""
        while True:
            events = await self._primary.events_after(await self.position(), STORE_PAGE)
            outcomes = await self._apply_in_order(events, from_store=True) if events else []
            if len(events) < STORE_PAGE or "applied" not in outcomes:
                return

    async def _mark_caught_up(self) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(GeoEventFeed)
                .where(GeoEventFeed.id == FEED_ROW)
                .values(caught_up_at=func.now())
            )
        self._metrics.feed_caught_up.set(time.time())

    def wake(self) -> None:
        """After this site followed a new primary: ask its event store at the next poll."""
        self._flag_gap()

    # The three loops ---------------------------------------------------------------------

    def _flag_gap(self) -> None:
        self._gap_pending = True
        self._gap_generation += 1

    async def _poll_once(self) -> None:
        authority = await self._authority.refresh()
        if authority.rollback_after_seq is not None:
            await self._rollback()
            return
        if not authority.is_secondary:
            return
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
        """Apply what follows on from our position; keep what still waits for an earlier one
        (a waiting event is safe in the event store). A primary reads its own events here and
        drops them without asking its database."""
        if self._authority.current.is_primary:
            return
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
        if consumer is None or not self._authority.current.is_secondary:
            return
        positions = await consumer.positions()
        if consumer is not self._consumer_seen:
            # It started at the end (its positions are fixed now): what came before is the
            # store's to give, so no heartbeat until a catch-up begun after this one.
            self._consumer_seen = consumer
            self._flag_gap()
            await self._poll_once()
            return
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
