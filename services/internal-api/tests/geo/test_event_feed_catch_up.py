"""A secondary's event feed catching up with the primary: from the event store, and from Kafka
with the store behind it for what Kafka lost.

The primary is the session's real internal API; the broker is the session's Tansu. The tests
stand in for the primary's outbox relay, publishing the store's own events to the feed's
topics in an order they choose, so they decide what Kafka delivers and what it loses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from internal_api_support import Api, Database, ServerInfo
from secondary_support import (
    Registration,
    bootstrap_secondary,
    feed_for,
    primary_client,
    register_secondary,
    store_head,
)
from sqlalchemy import func, select, text

from geogit.common.events import Event, Topics
from geogit.common.kafka import EventProducer, KafkaConfig
from geogit.common.tansu import TansuBroker
from geogit.internal_api.db import SessionMaker, make_engine, make_sessionmaker
from geogit.internal_api.geo import event_feed
from geogit.internal_api.geo.event_feed import EventFeed
from geogit.internal_api.metrics import Metrics
from geogit.internal_api.models import GeoEventFeed, User, utcnow


@dataclass
class Behind:
    """A secondary's empty database, registered with the primary, at position 0."""

    site: Registration
    sessions: SessionMaker

    def feed(self, primary: ServerInfo, *args: Any, **options: Any) -> EventFeed:
        """This site's feed (`feed_for`'s Kafka, topics and pacing)."""
        return feed_for(self.sessions, primary, self.site, *args, **options)

    async def feed_row(self) -> GeoEventFeed | None:
        async with self.sessions() as session:
            return await session.get(GeoEventFeed, 1)

    async def user(self, user_id: int) -> User | None:
        async with self.sessions() as session:
            return await session.get(User, user_id)

    async def count(self, table: str) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(text(f"SELECT count(*) FROM {table}")) or 0)


@pytest.fixture
async def behind(server: ServerInfo, admin_token: str) -> AsyncIterator[Behind]:
    site = register_secondary(server, admin_token)
    db = Database()
    await asyncio.to_thread(db.create)
    engine = make_engine(db.url)
    sessions = make_sessionmaker(engine)
    await bootstrap_secondary(sessions, server, site)
    try:
        yield Behind(site, sessions)
    finally:
        await engine.dispose()
        await asyncio.to_thread(db.drop)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def applied(metrics: Metrics, via: str) -> float:
    sample = metrics.registry.get_sample_value("geogit_geo_events_applied_total", {"via": via})
    return sample or 0.0


async def _primary_count(database: Database, table: str) -> int:
    engine = make_engine(database.url)
    try:
        async with make_sessionmaker(engine)() as session:
            return int(await session.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
    finally:
        await engine.dispose()


async def test_a_new_site_replays_the_whole_store_page_by_page(
    behind: Behind, server: ServerInfo, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site that starts empty replays everything from the beginning; pages smaller than the
    history make it turn several pages, the last one short or empty."""
    head = await store_head(database)
    monkeypatch.setattr(event_feed, "STORE_PAGE", 7)
    feed = behind.feed(server)
    await feed.catch_up()
    assert await feed.position() == head
    for table in ("users", "projects", "members", "ssh_keys", "geo_sites"):
        assert await behind.count(table) == await _primary_count(database, table), table
    # Catching up again finds nothing new and changes nothing.
    await feed.catch_up()
    assert await feed.position() == head


async def test_the_store_poll_keeps_a_site_without_kafka_current(
    behind: Behind, server: ServerInfo, database: Database, api: Api
) -> None:
    started = utcnow()
    metrics = Metrics()
    feed = behind.feed(server, poll_seconds=0.2, metrics=metrics)
    feed.start()
    try:

        async def at_head() -> bool:
            row = await behind.feed_row()
            return row is not None and row.last_global_seq == await store_head(database)

        await eventually(at_head, "the feed to replay the store")
        row = await behind.feed_row()
        assert row is not None and row.caught_up_at is not None and row.caught_up_at >= started
        heartbeat = metrics.registry.get_sample_value(
            "geogit_geo_event_feed_caught_up_timestamp_seconds"
        )
        assert heartbeat is not None and heartbeat >= started.timestamp()
        newcomer = await api.user("late")

        async def has_newcomer() -> bool:
            return await behind.user(newcomer.id) is not None

        await eventually(has_newcomer, "a user created after the catch-up")
    finally:
        await feed.stop()


def _topic(event: Event, topics: Topics) -> str:
    return topics.repository if event.type.startswith("Repository") else topics.domain


async def publish(kafka: KafkaConfig, topics: Topics, events: list[Event]) -> None:
    """What the primary's relay does, in the order given."""
    async with EventProducer(kafka) as producer:
        for event in events:
            await producer.publish(_topic(event, topics), event)


async def _new_events(server: ServerInfo, site: Registration, after: int) -> list[Event]:
    client = primary_client(server, site)
    try:
        return await client.events_after(after, 1000)
    finally:
        await client.aclose()


async def _started(behind: Behind, feed: EventFeed, database: Database) -> int:
    """Start the feed and wait for its first store poll, and for its Kafka consumer to take
    its position (the end: what is published before that is the store's to give); returns the
    position the feed reached."""
    head = await store_head(database)
    feed.start()
    await eventually(
        lambda: _position_at_least(feed, head), "the feed's first catch-up from the store"
    )
    await _kafka_ready(feed)
    return await feed.position()


async def _kafka_ready(feed: EventFeed) -> None:
    async def ready() -> bool:
        return feed.kafka_ready

    await eventually(ready, "the feed's Kafka consumer")


async def _position_at_least(feed: EventFeed, position: int) -> bool:
    return await feed.position() >= position


async def test_kafka_delivers_events_in_any_order_once_each(
    behind: Behind,
    server: ServerInfo,
    database: Database,
    api: Api,
    kafka_config: KafkaConfig,
    topics: Topics,
) -> None:
    """After the store brought the site up to date, new events come over Kafka alone (the
    store is not asked again): out of order across the two topics and repeated, they are
    applied in global order, once each."""
    metrics = Metrics()
    feed = behind.feed(server, kafka_config, topics, metrics=metrics)
    try:
        start = await _started(behind, feed, database)
        owner = await api.user("kafka")
        await api.project(owner)
        events = await _new_events(server, behind.site, start)
        assert len(events) >= 5
        before = applied(metrics, "kafka")
        await publish(kafka_config, topics, [*reversed(events), events[0], events[-1]])
        head = events[-1].global_seq
        await eventually(lambda: _position_at_least(feed, head), "Kafka's events to be applied")
        assert await feed.position() == head
        assert applied(metrics, "kafka") - before == len(events)
        user = await behind.user(owner.id)
        assert user is not None and user.username == owner.username
    finally:
        await feed.stop()


async def _skip_a_number(database: Database) -> None:
    """A transaction that rolled back on the primary leaves a hole in the global sequence."""
    engine = make_engine(database.url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            await session.execute(text("SELECT nextval(pg_get_serial_sequence('outbox', 'id'))"))
    finally:
        await engine.dispose()


async def test_what_kafka_lost_or_never_had_comes_from_the_store(
    behind: Behind,
    server: ServerInfo,
    database: Database,
    api: Api,
    kafka_config: KafkaConfig,
    topics: Topics,
) -> None:
    """Once the consumer has read everything Kafka holds and events still wait for an earlier
    one, the heartbeat asks the store: for an event the broker lost, and across a number the
    primary's sequence skipped. Then it confirms the feed is caught up again."""
    metrics = Metrics()
    feed = behind.feed(server, kafka_config, topics, heartbeat_seconds=0.3, metrics=metrics)
    try:
        start = await _started(behind, feed, database)
        await _skip_a_number(database)
        owner = await api.user("lossy")
        await api.project(owner)
        events = await _new_events(server, behind.site, start)
        assert events[0].global_seq == start + 2  # the skipped number has no event
        lost = events[len(events) // 2]
        before_store, resolved_after = applied(metrics, "store"), utcnow()
        await publish(kafka_config, topics, [e for e in events if e is not lost])
        head = events[-1].global_seq
        await eventually(lambda: _position_at_least(feed, head), "the gap to be filled")
        assert await feed.position() == head
        assert applied(metrics, "store") - before_store >= 1

        async def heartbeat_renewed() -> bool:
            row = await behind.feed_row()
            return (
                row is not None
                and row.caught_up_at is not None
                and (row.caught_up_at >= resolved_after)
            )

        await eventually(heartbeat_renewed, "the heartbeat after the gap was filled")
        async with behind.sessions() as session:
            known = await session.scalar(
                select(func.count()).select_from(User).where(User.id == owner.id)
            )
        assert known == 1
    finally:
        await feed.stop()


async def test_without_the_store_a_gap_holds_the_feed_and_no_heartbeat_is_claimed(
    behind: Behind,
    server: ServerInfo,
    api: Api,
    kafka_config: KafkaConfig,
    topics: Topics,
) -> None:
    """A site restarted while the primary's store is out of reach: what follows a lost event
    waits, and is applied once Kafka brings the missing one; but until the store has answered
    once, the feed never claims to be caught up, so reads keep going to the primary."""
    await behind.feed(server).catch_up()
    confirmed = utcnow()
    async with behind.sessions() as session, session.begin():
        await session.execute(
            text("UPDATE geo_event_feed SET caught_up_at = :at"), {"at": confirmed}
        )
    start = await behind.feed(server).position()
    owner = await api.user("gap")
    events = await _new_events(server, behind.site, start)
    assert len(events) >= 2
    feed_metrics = Metrics()
    feed = behind.feed(
        ServerInfo("http://127.0.0.1:9"),
        kafka_config,
        topics,
        heartbeat_seconds=0.2,
        metrics=feed_metrics,
    )
    feed.start()
    try:
        await _kafka_ready(feed)
        await publish(kafka_config, topics, events[1:])
        await asyncio.sleep(3)  # several heartbeats, each finding the store unreachable
        assert await feed.position() == start
        assert await behind.user(owner.id) is None

        await publish(kafka_config, topics, events[:1])
        head = events[-1].global_seq
        await eventually(lambda: _position_at_least(feed, head), "Kafka to close the gap")
        assert await behind.user(owner.id) is not None
        await asyncio.sleep(1)
        row = await behind.feed_row()
        assert row is not None and row.caught_up_at == confirmed
        assert (
            feed_metrics.registry.get_sample_value(
                "geogit_geo_event_feed_caught_up_timestamp_seconds"
            )
            == 0
        )
    finally:
        await feed.stop()


async def test_a_broker_that_lost_its_data_sends_the_feed_to_the_store(
    behind: Behind, server: ServerInfo, database: Database, api: Api, topics: Topics
) -> None:
    """A broker restarted without its data (Tansu in memory) hands back topics whose end
    offsets went backwards. Nothing waits and no gap is seen, yet events may be missing: the
    heartbeat asks the store, which has the events published to the broker that was lost."""
    with TansuBroker() as broker:
        kafka = KafkaConfig(bootstrap=broker.bootstrap, session_timeout_ms=2000)
        feed = behind.feed(server, kafka, topics, heartbeat_seconds=0.2)
        try:
            start = await _started(behind, feed, database)
            await api.user("before")
            events = await _new_events(server, behind.site, start)
            await publish(kafka, topics, events)
            head = events[-1].global_seq
            await eventually(lambda: _position_at_least(feed, head), "Kafka's first events")

            await asyncio.to_thread(broker.stop)
            lost = await api.user("during")  # published to the broker that lost it
            await asyncio.to_thread(broker.start)
            newest = await store_head(database)
            await eventually(
                lambda: _position_at_least(feed, newest), "the store after the reset", timeout=60
            )
            assert await behind.user(lost.id) is not None
        finally:
            await feed.stop()


async def test_two_replicas_on_one_database_apply_each_event_once_in_order(
    behind: Behind,
    server: ServerInfo,
    database: Database,
    api: Api,
    kafka_config: KafkaConfig,
    topics: Topics,
) -> None:
    """Two internal API replicas of one secondary each run the feed: both read every partition
    (no group), and the feed's lock and position let each event be applied once, by whichever
    replica gets there first; both renew the heartbeat only once they have read everything."""
    metrics = [Metrics(), Metrics()]
    feeds = [
        behind.feed(server, kafka_config, topics, heartbeat_seconds=0.2, metrics=m) for m in metrics
    ]
    try:
        start = await _started(behind, feeds[0], database)
        await _started(behind, feeds[1], database)
        for feed in feeds:
            assert feed._kafka_loop is not None and feed._kafka_loop.consumer is not None
            positions = await feed._kafka_loop.consumer.positions()
            assert {tp.topic for tp in positions} == {topics.domain, topics.repository}
        owner = await api.user("twice")
        await api.project(owner)
        events = await _new_events(server, behind.site, start)
        before = sum(applied(m, "kafka") + applied(m, "store") for m in metrics)
        await publish(kafka_config, topics, list(reversed(events)))
        head = events[-1].global_seq
        for feed in feeds:
            await eventually(lambda feed=feed: _position_at_least(feed, head), "both replicas")
        await asyncio.sleep(0.5)  # the slower replica reads them too, as duplicates
        after = sum(applied(m, "kafka") + applied(m, "store") for m in metrics)
        assert after - before == len(events)
        assert await feeds[0].position() == head
        user = await behind.user(owner.id)
        assert user is not None and user.username == owner.username
    finally:
        for feed in feeds:
            await feed.stop()
