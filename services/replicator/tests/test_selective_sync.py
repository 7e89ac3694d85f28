"""Selective sync on a real secondary (its storage, its internal API on PostgreSQL): a project
outside the site's selection is never fetched or stored; one that leaves it loses its replica
and registry row, at the backfill its own SiteUpdated asks for — once the read model has the
change — or at the re-check a transfer (ProjectRenamed) asks for; one that enters it syncs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from replicator_site import (
    OWNER_ID,
    SITE,
    PrimaryRepository,
    Replication,
    SecondarySite,
    replication,
)
from sqlalchemy.dialects.postgresql import insert
from test_worker import announced, replica_checksum

from geogit.common.events import new_event
from geogit.common.proto.events.v1 import domain_pb2
from geogit.internal_api.db import make_engine, make_sessionmaker
from geogit.internal_api.models import GeoEventFeed
from geogit.replicator.backfill import Backfill
from geogit.replicator.scheduler import Action

SITE_ID = 2
OTHER_OWNER = 2


def _site_updated(selection_type: str = "", ids: tuple[int, ...] = ()) -> domain_pb2.SiteUpdated:
    return domain_pb2.SiteUpdated(
        site_id=SITE_ID,
        name=SITE,
        url="http://secondary.example.test",
        role="secondary",
        enabled=True,
        selective_sync_type=selection_type,
        selective_sync_namespace_ids=ids,
    )


@pytest.fixture
async def parts(site: SecondarySite) -> AsyncIterator[Replication]:
    """The replicator's parts, and the site's selection back to everything afterwards (the
    site is the session's)."""
    other = domain_pb2.UserCreated(
        user_id=OTHER_OWNER, username="other", email="other@x.test", name="Other"
    )
    await site.apply(other)
    try:
        async with replication(site) as wired:
            yield wired
    finally:
        await site.apply(_site_updated())


async def _select(site: SecondarySite, *owners: int) -> None:
    """The read model learns this site's selection: only these owners' projects."""
    await site.apply(_site_updated("namespaces", owners))


async def _scan(parts: Replication) -> None:
    await Backfill(parts.api, parts.scheduler, 3600, 3600).scan()
    await parts.idle()


async def _eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(30):
        while not await condition():  # noqa: ASYNC110 (the condition asks the internal API)
            await asyncio.sleep(0.02)


async def _removed(parts: Replication, site: SecondarySite, repo: PrimaryRepository) -> bool:
    replicable = await parts.api.replicable(repo.project_id)
    assert replicable is not None
    return not site.replica_path(repo).exists() and replicable.registry is None


async def _set_feed_position(site: SecondarySite, global_seq: int) -> None:
    engine = make_engine(site.database.url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            statement = insert(GeoEventFeed).values(id=1, last_global_seq=global_seq)
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["id"], set_={"last_global_seq": global_seq}
                )
            )
    finally:
        await engine.dispose()


async def test_a_project_outside_the_selection_is_never_stored(
    site: SecondarySite, parts: Replication
) -> None:
    await _select(site, OTHER_OWNER)
    repo, _ = await announced(site)
    fetches = site.primary.fetches
    assert await parts.worker(repo.project_id, Action.SYNC) is None
    assert await parts.worker(repo.project_id, Action.RESYNC) is None
    replicable = await parts.api.replicable(repo.project_id)
    assert replicable is not None and not replicable.selected and replicable.registry is None
    async for page in parts.api.pages():
        assert repo.project_id not in {r.project_id for r in page.replicables}
    await _scan(parts)
    assert site.primary.fetches == fetches
    assert not site.replica_path(repo).exists()


async def test_leaving_the_selection_removes_the_replica_entering_it_syncs(
    site: SecondarySite, parts: Replication
) -> None:
    repo, checksum = await announced(site)
    await _scan(parts)
    assert replica_checksum(site, repo) == checksum

    # This site's SiteUpdated, heard before the read model has it: the backfill it asks for
    # waits until the site's feed position reaches the event's.
    await _set_feed_position(site, 0)
    event = new_event(
        _site_updated("namespaces", (OTHER_OWNER,)),
        aggregate_id=f"site-{SITE_ID}",
        aggregate_seq=1,
        origin_site="primary",
        global_seq=10**9,
    )
    await parts.feed.handle(event, None)  # type: ignore[arg-type]
    await asyncio.sleep(0.3)
    assert parts.backfills == []
    await _select(site, OTHER_OWNER)
    await _set_feed_position(site, 10**9)
    async with asyncio.timeout(30):
        while not parts.backfills:  # noqa: ASYNC110 (the feed's callback appends to a list)
            await asyncio.sleep(0.02)
    # Another site's SiteUpdated asks for nothing here.
    other = domain_pb2.SiteUpdated(site_id=9, name="secondary-9")
    await parts.feed.handle(
        new_event(other, aggregate_id="site-9", aggregate_seq=1, origin_site="primary"),
        None,  # type: ignore[arg-type]
    )
    await asyncio.sleep(0.2)
    assert parts.backfills == [None]

    await _scan(parts)  # what the backfill does
    assert await _removed(parts, site, repo)
    # Served nowhere locally now; back in the selection, it syncs again.
    await _select(site, OTHER_OWNER, OWNER_ID)
    await _scan(parts)
    assert replica_checksum(site, repo) == checksum
    replicable = await parts.api.replicable(repo.project_id)
    assert replicable is not None and replicable.registry is not None
    assert (replicable.registry.state, replicable.selected) == ("synced", True)


async def test_a_transfer_out_of_the_selection_removes_the_replica(
    site: SecondarySite, parts: Replication
) -> None:
    await _select(site, OWNER_ID)
    repo, checksum = await announced(site)
    assert await parts.worker(repo.project_id, Action.SYNC) is None
    assert replica_checksum(site, repo) == checksum
    await _set_feed_position(site, 0)
    namespace, path = repo.full_path.split("/")
    moved = domain_pb2.ProjectRenamed(
        project_id=repo.project_id,
        namespace="other",
        path=path,
        old_namespace=namespace,
        old_path=path,
        owner_id=OTHER_OWNER,
    )
    await site.apply(moved)
    await parts.feed.handle(
        new_event(
            moved, aggregate_id=f"project-{repo.project_id}", aggregate_seq=2, origin_site="primary"
        ),
        None,  # type: ignore[arg-type]
    )
    await _eventually(lambda: _removed(parts, site, repo))
    replicable = await parts.api.replicable(repo.project_id)
    assert replicable is not None and not replicable.selected


async def test_a_replica_holding_diverged_commits_stays_when_it_leaves_the_selection(
    site: SecondarySite, parts: Replication
) -> None:
    """As for a deleted project (DESIGN §10): commits a new primary lacks are not thrown away."""
    repo, checksum = await announced(site)
    assert await parts.worker(repo.project_id, Action.SYNC) is None
    replicable = await parts.api.replicable(repo.project_id)
    assert replicable is not None and replicable.registry is not None
    await parts.api.save(
        repo.project_id, replicable.registry.model_copy(update={"diverged_epoch": 2})
    )
    await _select(site, OTHER_OWNER)
    assert await parts.worker(repo.project_id, Action.SYNC) is None
    assert replica_checksum(site, repo) == checksum
    replicable = await parts.api.replicable(repo.project_id)
    assert replicable is not None and not replicable.selected
    assert replicable.registry is not None and replicable.registry.diverged_epoch == 2
