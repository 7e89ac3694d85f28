"""The selective sync condition (geo/selective_sync.py) against a real database, fed as a
secondary's read model is: SiteAdded/SiteUpdated set the site's own row. Everything, a list
of namespaces (owners) and a list of shards each select exactly their projects; another
site's selection changes nothing here; a project outside is never fresh, whatever its replica."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from internal_api_support import Database
from sqlalchemy import select

from geogit.common.events import new_event
from geogit.common.proto.events.v1 import domain_pb2
from geogit.internal_api.db import SessionMaker, make_engine, make_sessionmaker
from geogit.internal_api.geo import read_model
from geogit.internal_api.geo.freshness import replica_verdict
from geogit.internal_api.geo.selective_sync import selected
from geogit.internal_api.models import GeoEventFeed, Project, ReplicaRegistry, User, utcnow

SITE, OTHER = "secondary-1", "secondary-2"
# (project id, owner id, shard)
PROJECTS = [(1, 1, "default"), (2, 1, "nfs"), (3, 2, "default"), (4, 3, "nfs")]


@pytest.fixture(scope="module")
def site_database() -> Iterator[Database]:
    db = Database()
    db.create()
    yield db
    db.drop()


@pytest.fixture
async def sessions(site_database: Database) -> AsyncIterator[SessionMaker]:
    engine = make_engine(site_database.url)
    maker = make_sessionmaker(engine)
    async with maker() as session, session.begin():
        if await session.get(User, 1) is None:
            for user_id in (1, 2, 3):
                session.add(
                    User(
                        id=user_id,
                        username=f"u{user_id}",
                        email=f"u{user_id}@x.test",
                        name="U",
                        password_hash="!",
                    )
                )
            await session.flush()
            for project_id, owner, shard in PROJECTS:
                session.add(
                    Project(
                        id=project_id,
                        namespace=f"u{owner}",
                        path=f"p{project_id}",
                        name=f"p{project_id}",
                        visibility="private",
                        default_branch="main",
                        owner_id=owner,
                        storage_shard=shard,
                        disk_path=f"@hashed/{project_id}.git",
                    )
                )
                session.add(ReplicaRegistry(project_id=project_id, state="synced"))
            session.add(GeoEventFeed(id=1, caught_up_at=utcnow()))
    yield maker
    await engine.dispose()


async def _site_event(
    sessions: SessionMaker,
    kind: type[domain_pb2.SiteAdded] | type[domain_pb2.SiteUpdated],
    site_id: int,
    name: str,
    selection_type: str = "",
    ids: tuple[int, ...] = (),
    shards: tuple[str, ...] = (),
) -> None:
    payload = kind(
        site_id=site_id,
        name=name,
        url=f"http://{name}.example.test",
        role="secondary",
        enabled=True,
        selective_sync_type=selection_type,
        selective_sync_namespace_ids=ids,
        selective_sync_shards=shards,
    )
    event = new_event(payload, aggregate_id=f"site-{site_id}", aggregate_seq=1, origin_site="p")
    async with sessions() as session, session.begin():
        await read_model.apply(session, event)


async def _selected(sessions: SessionMaker, site: str = SITE) -> list[int]:
    async with sessions() as session:
        rows = await session.scalars(select(Project.id).where(selected(site)).order_by(Project.id))
        return list(rows)


async def test_the_condition_selects_everything_namespaces_or_shards(
    sessions: SessionMaker,
) -> None:
    assert await _selected(sessions) == [1, 2, 3, 4]  # no row for the site yet: everything
    await _site_event(sessions, domain_pb2.SiteAdded, 2, SITE)
    assert await _selected(sessions) == [1, 2, 3, 4]
    await _site_event(sessions, domain_pb2.SiteUpdated, 2, SITE, "namespaces", (1, 3))
    assert await _selected(sessions) == [1, 2, 4]
    await _site_event(sessions, domain_pb2.SiteUpdated, 2, SITE, "namespaces", ())
    assert await _selected(sessions) == []
    await _site_event(sessions, domain_pb2.SiteUpdated, 2, SITE, "shards", (1, 3), ("nfs",))
    assert await _selected(sessions) == [2, 4]  # the type decides; the id list is kept aside
    # Another site's selection is its own.
    await _site_event(sessions, domain_pb2.SiteAdded, 3, OTHER, "namespaces", (2,))
    assert await _selected(sessions, OTHER) == [3]
    assert await _selected(sessions) == [2, 4]
    await _site_event(sessions, domain_pb2.SiteUpdated, 2, SITE)
    assert await _selected(sessions) == [1, 2, 3, 4]


async def test_a_project_outside_the_selection_is_never_fresh(sessions: SessionMaker) -> None:
    async def reason(project_id: int) -> str:
        async with sessions() as session:
            project = await session.get(Project, project_id)
            assert project is not None
            return (await replica_verdict(session, project, SITE, 60.0)).reason

    await _site_event(sessions, domain_pb2.SiteUpdated, 2, SITE, "namespaces", (2,))
    try:
        # Project 3's replica is synced and current: fresh. Project 1's is too, but it is
        # outside: the read goes to the primary while the replicator removes the replica.
        assert await reason(3) == ""
        assert await reason(1) == "outside this site's selective sync"
    finally:
        await _site_event(sessions, domain_pb2.SiteUpdated, 2, SITE)
    assert await reason(1) == ""
