"""The read model as the event feed builds it: ordering, repeats, gaps and replays.

The events are the primary's own: a history made through its API (every kind of domain event
and a push), read back from its event store. They are delivered to a secondary's feed the way
its Kafka consumer delivers them — in any order across the two topics, some more than once,
some never — and the secondary's tables must always be what applying the events in global
order would have made them. Events Kafka never delivered come from the primary's store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from internal_api_support import Database, ServerInfo
from secondary_support import (
    History,
    Registration,
    bootstrap_secondary,
    feed_for,
    make_history,
    primary_client,
    register_secondary,
)
from sqlalchemy import text

from geogit.common.events import Event
from geogit.common.kafka import ConsumerRecordInfo
from geogit.internal_api.db import SessionMaker, make_engine, make_sessionmaker
from geogit.internal_api.geo.event_feed import EventFeed
from geogit.storage.testing import StorageProcess

# What a secondary's read model holds, without the columns it fills in itself (creation
# times, the identity of a protected-branch row).
READ_MODEL = {
    "users": "id, username, email, name, is_admin, state, password_hash",
    "personal_access_tokens": "id, user_id, name, token_digest, scopes, expires_at, revoked",
    "ssh_keys": "id, user_id, title, key, key_type, fingerprint_sha256, expires_at",
    "projects": "id, namespace, path, name, visibility, default_branch, owner_id, storage_shard,"
    " disk_path, repository_seq, repository_checksum, repository_pushed_at, geo_min_seq",
    "members": "project_id, user_id, access_level",
    "protected_branches": "project_id, name, push_access_level, allow_force_push",
    "geo_sites": 'id, name, url, "primary", enabled, public_key',
    "geo_push_floors": "project_id, min_seq",
    "geo_event_feed": "last_global_seq",
}
Snapshot = dict[str, list[tuple[Any, ...]]]


async def snapshot(sessions: SessionMaker) -> Snapshot:
    async with sessions() as session:
        return {
            table: [
                tuple(row)
                for row in await session.execute(
                    text(f"SELECT {columns} FROM {table} ORDER BY {columns}")
                )
            ]
            for table, columns in READ_MODEL.items()
        }


async def reset(sessions: SessionMaker, position: int) -> None:
    """An empty read model whose feed stands just before the history."""
    async with sessions() as session, session.begin():
        await session.execute(text(f"TRUNCATE {', '.join(READ_MODEL)} CASCADE"))
        await session.execute(
            text("INSERT INTO geo_event_feed (id, last_global_seq) VALUES (1, :p)"), {"p": position}
        )


def _info(event: Event, offset: int) -> ConsumerRecordInfo:
    topic = "repository" if event.type.startswith("Repository") else "domain"
    return ConsumerRecordInfo(topic, 0, offset, event.aggregate_id)


async def deliver(feed: EventFeed, events: list[Event]) -> None:
    """As the feed's Kafka consumer loop hands records to it, one at a time."""
    for offset, event in enumerate(events):
        await feed._on_kafka_event(event, _info(event, offset))


class Site:
    """The secondary's database and its feed, rebuilt for each example as after a restart."""

    def __init__(self, database: Database, primary: ServerInfo, site: Registration) -> None:
        self.database, self.primary, self.site = database, primary, site

    def run(self, scenario: Any) -> Any:
        async def main() -> Any:
            engine = make_engine(self.database.url)
            try:
                sessions = make_sessionmaker(engine)
                await bootstrap_secondary(sessions, self.primary, self.site)
                return await scenario(sessions, feed_for(sessions, self.primary, self.site))
            finally:
                await engine.dispose()

        return asyncio.run(main())


@pytest.fixture(scope="module")
def history(
    server: ServerInfo,
    database: Database,
    admin_token: str,
    storage: StorageProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Registration, History, list[Event]]]:
    site = register_secondary(server, admin_token)
    made = asyncio.run(
        make_history(server, database, admin_token, storage, tmp_path_factory.mktemp("history"))
    )

    async def read() -> list[Event]:
        client = primary_client(server, site)
        try:
            return await client.events_after(made.before, 1000)
        finally:
            await client.aclose()

    yield site, made, asyncio.run(read())


@pytest.fixture(scope="module")
def site(server: ServerInfo, history: tuple[Registration, History, list[Event]]) -> Iterator[Site]:
    db = Database()
    db.create()
    yield Site(db, server, history[0])
    db.drop()


@pytest.fixture(scope="module")
def prefixes(site: Site, history: tuple[Registration, History, list[Event]]) -> list[Snapshot]:
    """The read model after the first k events applied in order, for every k."""
    _, made, events = history

    async def build(sessions: SessionMaker, feed: EventFeed) -> list[Snapshot]:
        await reset(sessions, made.before)
        states = [await snapshot(sessions)]
        for event in events:
            await deliver(feed, [event])
            states.append(await snapshot(sessions))
        return states

    states: list[Snapshot] = site.run(build)
    return states


def test_the_history_has_every_kind_of_event(
    history: tuple[Registration, History, list[Event]],
) -> None:
    _, made, events = history
    assert [e.global_seq for e in events] == list(
        range(made.before + 1, made.before + 1 + len(events))
    )
    kinds = {e.type for e in events}
    assert kinds >= {
        "UserCreated", "UserBlocked", "UserDeleted", "KeyAdded", "TokenCreated", "TokenRevoked",
        "ProjectCreated", "ProjectRenamed", "ProjectUpdated", "ProjectDeleted", "MemberSet",
        "MemberRemoved", "ProtectedBranchSet", "ProtectedBranchRemoved", "SiteAdded",
        "SiteUpdated", "SiteRemoved", "RepositoryCreated", "RepositoryUpdated",
    }  # fmt: skip


def test_the_stores_replay_builds_what_in_order_delivery_builds(
    site: Site, history: tuple[Registration, History, list[Event]], prefixes: list[Snapshot]
) -> None:
    _, made, events = history

    async def replay(sessions: SessionMaker, feed: EventFeed) -> Snapshot:
        await reset(sessions, made.before)
        await feed.catch_up()
        return await snapshot(sessions)

    assert site.run(replay) == prefixes[-1]
    final = prefixes[-1]
    assert final["geo_event_feed"] == [(events[-1].global_seq,)]
    # What the history removed is gone: a deleted user, a deleted project.
    assert {row[0] for row in final["users"]} == set(made.user_ids[:2])
    assert {row[0] for row in final["projects"]} == {made.project_ids[0]}


def test_the_read_model_mirrors_the_primarys_rows(
    database: Database, history: tuple[Registration, History, list[Event]], prefixes: list[Snapshot]
) -> None:
    """The same rows as on the primary, with the primary's ids (no password hash leaves it)."""
    _, made, _ = history
    users, projects = made.user_ids, made.project_ids

    async def primary_rows() -> Snapshot:
        engine = make_engine(database.url)
        try:
            sessions = make_sessionmaker(engine)
            rows = await snapshot(sessions)
        finally:
            await engine.dispose()
        keep = {
            "users": lambda r: r[0] in users,
            "personal_access_tokens": lambda r: r[1] in users,
            "ssh_keys": lambda r: r[1] in users,
            "projects": lambda r: r[0] in projects,
            "members": lambda r: r[0] in projects,
            "protected_branches": lambda r: r[0] in projects,
            "geo_sites": lambda r: r[0] in made.site_ids,
        }
        return {table: [r for r in rows[table] if test(r)] for table, test in keep.items()}

    on_primary = asyncio.run(primary_rows())
    here = prefixes[-1]
    assert [r[:-1] for r in here["users"]] == [r[:-1] for r in on_primary["users"]]
    assert {r[-1] for r in here["users"]} == {"!"}
    for table in ("personal_access_tokens", "ssh_keys", "members", "protected_branches"):
        assert here[table] == on_primary[table], table
    # A project's name is its path here, and the floor is this site's own.
    assert [r[:3] + r[4:-1] for r in here["projects"]] == [
        r[:3] + r[4:-1] for r in on_primary["projects"]
    ]
    assert here["geo_sites"] == on_primary["geo_sites"]


def _delivery(draw: st.DrawFn, indices: list[int]) -> list[int]:
    """Some order of `indices`, with repeats of a few inserted anywhere."""
    order = draw(st.permutations(indices))
    repeats = (
        draw(st.lists(st.sampled_from(indices), max_size=len(indices) // 2)) if indices else []
    )
    for index in repeats:
        order.insert(draw(st.integers(0, len(order))), index)
    return order


@st.composite
def deliveries(draw: st.DrawFn, size: int) -> list[int]:
    return _delivery(draw, list(range(size)))


@st.composite
def lossy_deliveries(draw: st.DrawFn, size: int) -> tuple[set[int], list[int]]:
    lost = draw(st.sets(st.integers(0, size - 1), min_size=1, max_size=max(1, size // 3)))
    return lost, _delivery(draw, [i for i in range(size) if i not in lost])


SLOW = settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SLOW
@given(data=st.data())
def test_any_delivery_order_with_repeats_converges_and_a_replay_changes_nothing(
    site: Site,
    history: tuple[Registration, History, list[Event]],
    prefixes: list[Snapshot],
    data: st.DataObject,
) -> None:
    _, made, events = history
    order = data.draw(deliveries(len(events)))
    replayed = data.draw(deliveries(len(events)))

    async def scenario(sessions: SessionMaker, feed: EventFeed) -> None:
        await reset(sessions, made.before)
        delivered: set[int] = set()
        for step, index in enumerate(order):
            await deliver(feed, [events[index]])
            delivered.add(index)
            # Applied: exactly the run of events from the first that has no hole yet.
            applied = next(i for i in range(len(events) + 1) if i not in delivered)
            assert await feed.position() == made.before + applied
            if step == len(order) // 2:
                assert await snapshot(sessions) == prefixes[applied]
        assert await snapshot(sessions) == prefixes[-1]
        await deliver(feed, [events[i] for i in replayed])
        await feed.catch_up()
        assert await snapshot(sessions) == prefixes[-1]

    site.run(scenario)


@SLOW
@given(data=st.data())
def test_events_after_a_lost_one_wait_until_the_store_fills_the_gap(
    site: Site,
    history: tuple[Registration, History, list[Event]],
    prefixes: list[Snapshot],
    data: st.DataObject,
) -> None:
    _, made, events = history
    lost, order = data.draw(lossy_deliveries(len(events)))

    async def scenario(sessions: SessionMaker, feed: EventFeed) -> None:
        await reset(sessions, made.before)
        await deliver(feed, [events[i] for i in order])
        first_lost = min(lost)
        assert await feed.position() == made.before + first_lost
        assert await snapshot(sessions) == prefixes[first_lost]
        # The poll that asks the store (the feed's timer, or its heartbeat once Kafka is
        # read to the end) applies the lost events and the ones held behind them.
        await feed._poll_once()
        assert await snapshot(sessions) == prefixes[-1]
        async with sessions() as session:
            caught_up = await session.scalar(text("SELECT caught_up_at FROM geo_event_feed"))
        assert caught_up is not None

    site.run(scenario)
