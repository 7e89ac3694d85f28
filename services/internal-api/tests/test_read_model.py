"""The secondary's read model against a real database: events in, the same rows as on the
primary out, and a push floor left before a project was known applied when it arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from internal_api_support import Database

from geogit.common.events import new_event
from geogit.common.geo import generate_site_key
from geogit.common.internal_api import RepositoryState
from geogit.common.proto.events.v1 import domain_pb2, repository_pb2
from geogit.internal_api.db import SessionMaker, make_engine, make_sessionmaker
from geogit.internal_api.geo import read_model
from geogit.internal_api.geo.routing import floor_for_unknown
from geogit.internal_api.models import GeoPushFloor, GeoSite, Project, User


class PrimaryAnswering:
    """The primary's repository-state answer for one project (the neighbour of this unit)."""

    def __init__(self, state: RepositoryState) -> None:
        self.state = state
        self.asked: list[int | str] = []

    async def repository_state(self, project: int | str) -> RepositoryState:
        self.asked.append(project)
        return self.state


@pytest.fixture
async def sessions(fresh_database: Database) -> AsyncIterator[SessionMaker]:
    engine = make_engine(fresh_database.url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def _apply(sessions: SessionMaker, payload: object, aggregate: str) -> None:
    event = new_event(payload, aggregate_id=aggregate, aggregate_seq=1, origin_site="primary")  # type: ignore[arg-type]
    async with sessions() as session, session.begin():
        await read_model.apply(session, event)


async def test_events_become_rows_and_a_floor_waits_for_its_project(
    sessions: SessionMaker,
) -> None:
    await _apply(
        sessions,
        domain_pb2.UserCreated(user_id=7, username="alice", email="a@x.test", name="A"),
        "user-7",
    )
    primary = PrimaryAnswering(RepositoryState(project_id=42, seq=2, checksum="c"))
    async with sessions() as session:
        await floor_for_unknown(session, primary, "alice/fresh")  # type: ignore[arg-type]
    assert primary.asked == ["alice/fresh"]

    await _apply(
        sessions,
        domain_pb2.ProjectCreated(
            project_id=42,
            namespace="alice",
            path="fresh",
            visibility="private",
            default_branch="main",
            storage_shard="default",
            disk_path="@hashed/x/y/z.git",
            owner_id=7,
        ),
        "project-42",
    )
    await _apply(sessions, repository_pb2.RepositoryCreated(project_id=42, seq=1), "project-42")
    async with sessions() as session:
        user = await session.get(User, 7)
        project = await session.get(Project, 42)
        assert user is not None and user.username == "alice" and user.password_hash == "!"
        assert project is not None and project.full_path == "alice/fresh"
        # The replica must reach the pushed sequence, not just the one the events told of.
        assert (project.repository_seq, project.geo_min_seq) == (1, 2)
        assert await session.get(GeoPushFloor, 42) is None


async def test_site_events_carry_the_sites_public_key(sessions: SessionMaker) -> None:
    """Every site verifies every other's tokens, so the key travels with the registry."""
    first, second = generate_site_key()[1], generate_site_key()[1]
    site = {"site_id": 9, "name": "secondary-9", "url": "http://s9.example.test"}
    added = domain_pb2.SiteAdded(**site, role="secondary", enabled=True, public_key=first)
    await _apply(sessions, added, "site-9")
    async with sessions() as session:
        row = await session.get(GeoSite, 9)
        assert row is not None and (row.primary, row.public_key) == (False, first)
    rotated = domain_pb2.SiteUpdated(**site, role="secondary", enabled=False, public_key=second)
    await _apply(sessions, rotated, "site-9")
    async with sessions() as session:
        row = await session.get(GeoSite, 9)
        assert row is not None and (row.enabled, row.public_key) == (False, second)
