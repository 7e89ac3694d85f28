"""A demoted primary's repositories become replicas (DESIGN §10) that must prove themselves:
storage may hold a push this site never recorded (its post-receive refused by the fence), and
the replicator's verification is what finds it and keeps it under refs/geogit/diverged/."""

from __future__ import annotations

from internal_api_support import Database

from geogit.internal_api.config import InternalApiSettings
from geogit.internal_api.db import make_engine, make_sessionmaker
from geogit.internal_api.geo import site_state
from geogit.internal_api.geo.follow import NewPrimary, follow
from geogit.internal_api.models import Project, ReplicaRegistry, User


async def test_a_demoted_primary_verifies_its_repositories_before_trusting_them(
    fresh_database: Database,
) -> None:
    engine = make_engine(fresh_database.url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as session, session.begin():
            await site_state.bootstrap(session, "primary", "old-primary")
            owner = User(username="o", email="o@example.com", name="o", password_hash="x")
            session.add(owner)
            await session.flush()
            project = Project(
                namespace="o",
                path="p",
                name="p",
                visibility="private",
                default_branch="main",
                owner_id=owner.id,
                storage_shard="default",
                disk_path="@hashed/p",
                repository_seq=7,
                repository_checksum="abc",
            )
            session.add(project)
        new = NewPrimary(epoch=2, after_seq=7, site="eu", url="http://eu.invalid")
        assert await follow(sessions, new)
        async with sessions() as session:
            state = await site_state.load(session)
            registry = await session.get(ReplicaRegistry, project.id)
        assert (state.role, state.epoch, state.primary_site) == ("secondary", 2, "eu")
        assert registry is not None
        # Served as synced at its sequence (nothing re-synced), but not yet verified, and any
        # re-sync keeps what the new primary lacks under the new epoch's prefix.
        assert (registry.state, registry.synced_seq, registry.checksum) == ("synced", 7, "abc")
        assert (registry.verification_state, registry.verified_at) == ("pending", None)
        assert registry.diverged_epoch == 2
    finally:
        await engine.dispose()


async def test_git_decisions_read_the_row_not_the_other_replicas_snapshot(
    fresh_database: Database,
) -> None:
    """Another replica of the internal API followed a new primary a moment ago: this one's
    snapshot still says primary, but the Git access decision reads the row."""
    engine = make_engine(fresh_database.url)
    sessions = make_sessionmaker(engine)
    try:
        settings = InternalApiSettings(site_name="old-primary", site_role="primary")
        snapshot = site_state.SiteAuthority(sessions, settings)
        async with sessions() as session:
            assert (await site_state.read(session, snapshot)).is_primary  # not bootstrapped
        await snapshot.refresh()
        new = NewPrimary(epoch=2, after_seq=0, site="eu", url="http://eu.invalid")
        assert await follow(sessions, new)  # as the other replica did
        assert snapshot.current.is_primary  # this replica has not refreshed yet
        async with sessions() as session:
            now = await site_state.read(session, snapshot)
        assert (now.role, now.epoch, now.primary_url) == ("secondary", 2, "http://eu.invalid")
    finally:
        await engine.dispose()
