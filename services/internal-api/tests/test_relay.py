"""The outbox relay against a real Kafka-protocol broker (Tansu): rows go out in global order,
keyed by aggregate, each marked sent; with the broker down they wait, and they are delivered
once it is back — even though the restarted broker lost its topics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from internal_api_support import Database, make_settings
from sqlalchemy import func, select

from geogit.common.events import Event, Topics, decode_event
from geogit.common.kafka import KafkaConfig
from geogit.common.proto.events.v1 import repository_pb2
from geogit.common.tansu import TansuBroker
from geogit.internal_api.app import create_app
from geogit.internal_api.bootstrap import bootstrap_admin
from geogit.internal_api.db import SessionMaker, make_engine, make_sessionmaker
from geogit.internal_api.events.listener import listen_dsn
from geogit.internal_api.events.outbox import Outbox
from geogit.internal_api.events.relay import OutboxRelay
from geogit.internal_api.geo import site_state
from geogit.internal_api.models import OutboxEvent
from geogit.storage.testing import StorageProcess

WAIT = 30.0


@asynccontextmanager
async def _running_app(
    database: Database, storage: StorageProcess, bootstrap: str, topics: Topics
) -> AsyncIterator[tuple[httpx.AsyncClient, SessionMaker]]:
    """The app in-process with its lifespan (and so its relay) running."""
    settings = make_settings(
        database,
        storage,
        kafka_bootstrap=bootstrap,
        topic_prefix=topics.prefix,
        relay_poll_seconds=0.05,
        relay_max_backoff_seconds=0.5,
        relay_publish_timeout_seconds=3.0,
    )
    app = create_app(settings)
    engine = make_engine(database.url)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://internal-api"
            ) as client,
        ):
            yield client, make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def _create_users(client: httpx.AsyncClient, token: str, names: list[str]) -> None:
    for name in names:
        response = await client.post(
            "/api/v4/users",
            headers={"PRIVATE-TOKEN": token},
            json={"username": name, "email": f"{name}@x.test", "name": name, "password": "p" * 8},
        )
        assert response.status_code == 201, response.text


async def _until(condition: Callable[[], Any], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def _unsent(db: SessionMaker) -> int:
    async with db() as session:
        count = await session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.sent_at.is_(None))
        )
        return int(count or 0)


async def _all_rows(db: SessionMaker) -> list[OutboxEvent]:
    async with db() as session:
        return list((await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all())


async def _consume(bootstrap: str, topics: Topics, count: int) -> list[tuple[str, str, Event]]:
    """(topic, key, event) of the first `count` records on both topics, from the beginning."""
    consumer = AIOKafkaConsumer(
        topics.domain, topics.repository, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[tuple[str, str, Event]] = []
    try:
        async with asyncio.timeout(WAIT):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records += [(r.topic, r.key.decode(), decode_event(r.value)) for r in batch]
    finally:
        await consumer.stop()
    return records


async def _end_offset(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([partition]))[partition])
    finally:
        await consumer.stop()


async def test_relay_publishes_every_row_in_order(
    fresh_database: Database, storage: StorageProcess, tansu: TansuBroker, topics: Topics
) -> None:
    admin = await bootstrap_admin(fresh_database.url, "primary", "root", "r@x.test", "p" * 12)
    async with _running_app(fresh_database, storage, tansu.bootstrap, topics) as (client, db):
        await _create_users(client, admin.token, ["ann", "ben", "cid"])
        async with db() as session:
            event = repository_pb2.RepositoryUpdated(project_id=7, seq=2, checksum="c" * 40)
            await Outbox("primary").append(
                session, event, aggregate_id="project-7", aggregate_seq=2
            )
            await session.commit()
        await _until(lambda: _is_zero(_unsent(db)))
        rows = await _all_rows(db)
    assert len(rows) == 2 + 3 + 1 and all(row.sent_at is not None for row in rows)

    records = await _consume(tansu.bootstrap, topics, len(rows))
    assert sorted(e.global_seq for _, _, e in records) == [row.id for row in rows]
    # Kafka keeps order within a partition, so per aggregate (the key), not per topic.
    for aggregate in {key for _, key, _ in records}:
        seqs = [e.global_seq for _, key, e in records if key == aggregate]
        assert seqs == sorted(seqs)
    by_seq = {e.global_seq: (topic, key, e) for topic, key, e in records}
    for row in rows:
        topic, key, published = by_seq[row.id]
        assert key == row.aggregate_id == published.aggregate_id
        assert published.event_id == row.event_id and published.type == row.type
        assert topic == (topics.repository if row.stream == "repository" else topics.domain)
    assert by_seq[rows[-1].id][2].payload == event


async def _is_zero(count: Any) -> bool:
    return int(await count) == 0


async def test_events_wait_out_a_broker_outage(
    fresh_database: Database, storage: StorageProcess, topics: Topics
) -> None:
    admin = await bootstrap_admin(fresh_database.url, "primary", "root", "r@x.test", "p" * 12)
    broker = TansuBroker()
    await asyncio.to_thread(broker.start)
    try:
        async with _running_app(fresh_database, storage, broker.bootstrap, topics) as (
            client,
            db,
        ):
            await _until(lambda: _is_zero(_unsent(db)))
            await asyncio.to_thread(broker.stop)

            # Writes keep working while Kafka is away; their events wait in the outbox.
            await _create_users(client, admin.token, ["dora", "eli"])
            await asyncio.sleep(1.5)
            waiting = [row for row in await _all_rows(db) if row.sent_at is None]
            assert [row.type for row in waiting] == ["UserCreated", "UserCreated"]

            await asyncio.to_thread(broker.start)  # same port, but every topic is gone
            await _until(lambda: _is_zero(_unsent(db)))
        records = await _consume(broker.bootstrap, topics, len(waiting))
    finally:
        await asyncio.to_thread(broker.stop)
    delivered = sorted({event.global_seq for _, _, event in records})
    assert delivered[: len(waiting)] == [row.id for row in waiting]


async def test_two_relays_never_publish_the_same_row(
    fresh_database: Database, tansu: TansuBroker, topics: Topics
) -> None:
    """Replicas of the internal API each run a relay; the advisory lock lets one publish."""
    engine = make_engine(fresh_database.url)
    db = make_sessionmaker(engine)
    kafka = KafkaConfig(bootstrap=tansu.bootstrap)
    relays = [OutboxRelay(db, kafka, topics, batch_size=5) for _ in range(2)]
    try:
        async with db() as session:
            await site_state.bootstrap(session, "primary", "primary")
            for seq in range(1, 21):
                payload = repository_pb2.RepositoryUpdated(project_id=1, seq=seq)
                await Outbox("primary").append(
                    session, payload, aggregate_id="project-1", aggregate_seq=seq
                )
            await session.commit()
        published = 0
        while await _unsent(db):
            counts = await asyncio.gather(*(relay.relay_once() for relay in relays))
            published += sum(counts)
    finally:
        for relay in relays:
            await relay.stop()
        await engine.dispose()
    assert published == 20
    records = await _consume(tansu.bootstrap, topics, 20)
    assert [event.aggregate_seq for _, _, event in records] == list(range(1, 21))
    assert await _end_offset(tansu.bootstrap, topics.repository) == 20  # no duplicates


# Woken by NOTIFY: the fallback poll is set far beyond the test's wait -------------------------

NEVER = 3600.0  # a poll interval no test waits for: only a notification can wake the relay


@asynccontextmanager
async def _listening_relay(
    database: Database, bootstrap: str, topics: Topics
) -> AsyncIterator[tuple[OutboxRelay, SessionMaker]]:
    engine = make_engine(database.url)
    db = make_sessionmaker(engine)
    relay = OutboxRelay(
        db,
        KafkaConfig(bootstrap=bootstrap),
        topics,
        poll_seconds=NEVER,
        listen_dsn=listen_dsn(database.url),
        listen_poll_seconds=NEVER,
        max_backoff_seconds=0.5,
    )
    try:
        async with db() as session:
            await site_state.bootstrap(session, "primary", "primary")
            await session.commit()
        relay.start()
        yield relay, db
    finally:
        await relay.stop()
        await engine.dispose()


async def _append_and_commit(db: SessionMaker, seq: int) -> None:
    async with db() as session:
        payload = repository_pb2.RepositoryUpdated(project_id=3, seq=seq)
        await Outbox("primary").append(
            session, payload, aggregate_id="project-3", aggregate_seq=seq
        )
        await session.commit()


async def _listening(relay: OutboxRelay, not_pid: int | None = None) -> bool:
    listener = relay.listener
    assert listener is not None
    return listener.listening and listener.backend_pid not in (None, not_pid)


async def test_a_commit_wakes_the_relay_before_its_poll(
    fresh_database: Database, tansu: TansuBroker, topics: Topics
) -> None:
    async with _listening_relay(fresh_database, tansu.bootstrap, topics) as (relay, db):
        await _until(lambda: _listening(relay))
        # The first row may go out on the wake-up the listener gives when it connects; after
        # it is sent the relay is idle until a notification (its polls are an hour apart).
        await _append_and_commit(db, 1)
        await _until(lambda: _is_zero(_unsent(db)))
        await _append_and_commit(db, 2)
        await _until(lambda: _is_zero(_unsent(db)))
    records = await _consume(tansu.bootstrap, topics, 2)
    assert [event.aggregate_seq for _, _, event in records] == [1, 2]


async def test_the_relay_survives_its_listen_connection_being_killed(
    fresh_database: Database, tansu: TansuBroker, topics: Topics
) -> None:
    async with _listening_relay(fresh_database, tansu.bootstrap, topics) as (relay, db):
        await _until(lambda: _listening(relay))
        assert relay.listener is not None
        killed = relay.listener.backend_pid
        async with db() as session:
            assert await session.scalar(select(func.pg_terminate_backend(killed)))
        # Committed while nobody listens: published once the listener is back (its reconnect
        # wakes the relay), not lost.
        await _append_and_commit(db, 1)
        await _until(lambda: _listening(relay, not_pid=killed))
        await _until(lambda: _is_zero(_unsent(db)))
        # And the new connection listens: the next commit wakes the relay.
        await _append_and_commit(db, 2)
        await _until(lambda: _is_zero(_unsent(db)))
    records = await _consume(tansu.bootstrap, topics, 2)
    assert [event.aggregate_seq for _, _, event in records] == [1, 2]
