"""The freshness rule (DESIGN §5) at package level, against a real database.

A read is served from the replica only if the replica exists, is `synced`, has reached the
latest sequence the site knows of for the project (and the read-your-writes floor a relayed
push set), is on the project's shard (a storage move's replica not yet followed is not), and
the event feed confirmed it was caught up within the bound. The table below
goes through every combination of those inputs; the property test through wide numbers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from internal_api_support import Database
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert

from geogit.internal_api.db import SessionMaker, make_engine, make_sessionmaker
from geogit.internal_api.geo.freshness import UNKNOWN_SEQ, replica_verdict
from geogit.internal_api.models import GeoEventFeed, Project, ReplicaRegistry, User, utcnow

MAX_LAG = 60.0
# No row in geo_sites: the site holds everything (its selective sync has tests of its own).
SITE = "secondary"
STATES = (None, "pending", "syncing", "synced", "failed")
# (the project's latest known sequence, its read-your-writes floor, the replica's synced_seq)
SEQUENCES = [
    (0, 0, 0),  # a project created a moment ago, replica as empty as it
    (5, 0, 4),  # one push behind
    (5, 0, 5),  # level
    (5, 0, 6),  # ahead of the events (the replicator fetched a push not yet announced)
    (5, 3, 5),  # a floor below the latest sequence changes nothing
    (5, 7, 6),  # level with the events, behind a relayed push
    (5, 7, 7),  # has the relayed push
    (5, UNKNOWN_SEQ, 9),  # the relayed push's sequence is unknown: nothing satisfies it
]
# The feed row: missing, never caught up, or caught up this many seconds ago.
NO_ROW, NEVER = "no row", "never"
HEARTBEATS: tuple[str | float, ...] = (NO_ROW, NEVER, 0.0, MAX_LAG / 2, MAX_LAG * 2, 86_400.0)
# The registry's shard for a project on "default": a row from before moves, the project's own,
# and the shard a storage move left it on.
PROJECT_SHARD = "default"
REPLICA_SHARDS = ("", PROJECT_SHARD, "second")


def expected(
    state: str | None, seqs: tuple[int, int, int], heartbeat: str | float, shard: str = ""
) -> str:
    """The rule as DESIGN §5 states it; "" is fresh, otherwise the first condition that fails."""
    latest, floor, synced = seqs
    if state != "synced":
        return "replica missing or not synced"
    if shard not in ("", PROJECT_SHARD):
        return f"replica on shard {shard}, project on {PROJECT_SHARD}"
    if synced < max(latest, floor):
        return f"replica at {synced}, project at {max(latest, floor)}"
    if heartbeat in (NO_ROW, NEVER) or float(heartbeat) > MAX_LAG:
        return "event feed not caught up"
    return ""


@pytest.fixture(scope="module")
def site_database() -> Iterator[Database]:
    db = Database()
    db.create()
    yield db
    db.drop()


@dataclass
class Rows:
    """Projects and replicas written straight into a site's tables, as its feed and
    replicator leave them."""

    sessions: SessionMaker
    next_id: int = 1

    async def owner(self) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                insert(User)
                .values(id=1, username="owner", email="o@x.test", name="O", password_hash="!")
                .on_conflict_do_nothing()
            )

    async def project(self, state: str | None, seqs: tuple[int, int, int], shard: str = "") -> int:
        latest, floor, synced = seqs
        project_id, self.next_id = self.next_id, self.next_id + 1
        async with self.sessions() as session, session.begin():
            session.add(
                Project(
                    id=project_id,
                    namespace="owner",
                    path=f"p{project_id}",
                    name=f"p{project_id}",
                    visibility="private",
                    default_branch="main",
                    owner_id=1,
                    storage_shard=PROJECT_SHARD,
                    disk_path=f"@hashed/{project_id}.git",
                    repository_seq=latest,
                    geo_min_seq=floor,
                )
            )
            if state is not None:
                await session.flush()
                session.add(
                    ReplicaRegistry(
                        project_id=project_id, state=state, synced_seq=synced, storage_shard=shard
                    )
                )
        return project_id

    async def heartbeat(self, heartbeat: str | float) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(delete(GeoEventFeed))
            if heartbeat == NO_ROW:
                return
            at = None if heartbeat == NEVER else utcnow() - timedelta(seconds=float(heartbeat))
            session.add(GeoEventFeed(id=1, caught_up_at=at))

    async def verdict(self, project_id: int) -> str:
        async with self.sessions() as session:
            project = await session.get(Project, project_id)
            assert project is not None
            answer = await replica_verdict(session, project, SITE, MAX_LAG)
        assert answer.fresh == (answer.reason == "")
        return answer.reason


async def _table(database: Database) -> list[str]:
    engine = make_engine(database.url)
    rows = Rows(make_sessionmaker(engine))
    try:
        await rows.owner()
        cases = {
            (state, seqs, shard): await rows.project(state, seqs, shard)
            for state, seqs, shard in itertools.product(STATES, SEQUENCES, REPLICA_SHARDS)
        }
        wrong = []
        for heartbeat in HEARTBEATS:
            await rows.heartbeat(heartbeat)
            for (state, seqs, shard), project_id in cases.items():
                got = await rows.verdict(project_id)
                want = expected(state, seqs, heartbeat, shard)
                if got != want:
                    wrong.append(
                        f"{state} {seqs} {shard!r} heartbeat={heartbeat}: {got!r}, not {want!r}"
                    )
        return wrong
    finally:
        await engine.dispose()


def test_every_combination_of_the_rules_inputs(site_database: Database) -> None:
    assert asyncio.run(_table(site_database)) == []


# Project ids for the property test's examples, after the table's.
EXAMPLE_IDS = itertools.count(1_000)


async def _one(
    database: Database, state: str | None, seqs: tuple[int, int, int], heartbeat: str | float
) -> tuple[str, str]:
    engine = make_engine(database.url)
    rows = Rows(make_sessionmaker(engine), next_id=next(EXAMPLE_IDS))
    try:
        await rows.owner()
        project_id = await rows.project(state, seqs)
        await rows.heartbeat(heartbeat)
        return await rows.verdict(project_id), expected(state, seqs, heartbeat)
    finally:
        await engine.dispose()


SEQ = st.integers(0, 2**40)
# Heartbeat ages well away from the bound, so the clock moving during the check cannot matter.
AGES = st.one_of(
    st.sampled_from([NO_ROW, NEVER]),
    st.floats(0, MAX_LAG * 0.8),
    st.floats(MAX_LAG * 1.2, 10**7),
)


@settings(max_examples=25, deadline=None)
@given(
    state=st.sampled_from(STATES),
    latest=SEQ,
    floor=SEQ | st.just(0) | st.just(UNKNOWN_SEQ),
    synced=SEQ,
    offset=st.none() | st.integers(-2, 2),
    heartbeat=AGES,
)
def test_the_rule_over_wide_sequences(
    site_database: Database,
    state: str | None,
    latest: int,
    floor: int,
    synced: int,
    offset: int | None,
    heartbeat: str | float,
) -> None:
    if offset is not None:
        # The replica within two of what it must reach: the rule's edge.
        synced = max(0, max(latest, floor) + offset)
    got, want = asyncio.run(_one(site_database, state, (latest, floor, synced), heartbeat))
    assert got == want
