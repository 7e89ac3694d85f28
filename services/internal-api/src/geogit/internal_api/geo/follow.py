"""A site follows a new primary (DESIGN §10): a secondary re-points, an old primary is demoted
(fenced), and a site that had applied events the new primary never had rolls back to it.

`follow` changes the site's authority in one transaction: from then on nothing is written
here (the outbox checks the row) and the edge and gateways proxy to the new primary. An old
primary keeps its repositories as replicas already synced at their sequences, so nothing is
re-synced. When this site's history reaches past the new epoch's start, the rollback is
recorded in the same transaction and done by `roll_back`, which the event feed runs before it
applies anything else: the forked events are dropped from the mirror, the read model is
replayed from the new primary's event store, and every repository that changed in the fork is
re-synced with its extra commits kept under refs/geogit/diverged/epoch-<n>/.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.events import PROJECT_AGGREGATE_PREFIX
from geogit.common.primary_client import PrimaryClient
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.geo import epochs, site_state
from geogit.internal_api.geo.epochs import EpochStart
from geogit.internal_api.geo.mirror import apply_and_mirror, last_event_id, lock_feed
from geogit.internal_api.geo.read_model import mark_primary
from geogit.internal_api.models import (
    GeoPushFloor,
    GeoSite,
    Member,
    OutboxEvent,
    PersonalAccessToken,
    Project,
    ProtectedBranch,
    ReplicaRegistry,
    SshKey,
    User,
    utcnow,
)

log = logging.getLogger(__name__)

REPLAY_PAGE = 500
# Deleted children first; the replay writes them back in event order.
_READ_MODEL = (Member, ProtectedBranch, SshKey, PersonalAccessToken, Project, User, GeoSite)


@dataclass(frozen=True)
class NewPrimary:
    epoch: int
    after_seq: int
    site: str
    url: str
    # The new primary's epoch history: a site that was away across several promotions
    # records every epoch it missed.
    history: tuple[EpochStart, ...] = ()


class EpochConflict(Exception):
    """A primary from an epoch this site has already passed, or a second one for its own."""


async def follow(sessions: SessionMaker, new: NewPrimary) -> bool:
    """Make this site a secondary of `new`; False when it already follows it."""
    async with sessions() as session, session.begin():
        state = await site_state.lock_for_update(session)
        if new.epoch < state.epoch or (new.epoch == state.epoch and new.site != state.primary_site):
            raise EpochConflict(
                f"{new.site} claims epoch {new.epoch}, but this site is at epoch {state.epoch}"
                f" under {state.primary_site or 'its bootstrap primary'}"
            )
        if new.epoch == state.epoch:
            return False
        feed = await lock_feed(session)
        was_primary = state.role == "primary"
        if was_primary:
            feed.last_global_seq = await last_event_id(session)
            await _adopt_repositories(session, new.epoch)
        if feed.last_global_seq > new.after_seq:
            pending = state.rollback_after_seq
            state.rollback_after_seq = min(
                new.after_seq, pending if pending is not None else new.after_seq
            )
            feed.caught_up_at = None  # nothing is served from the fork meanwhile
        state.role, state.epoch = "secondary", new.epoch
        state.primary_site, state.primary_url = new.site, new.url
        state.maintenance_target, state.maintenance_since = "", None
        if was_primary:
            state.fenced_at = utcnow()
        state.updated_at = utcnow()
        for start in new.history:
            await epochs.record(session, start.epoch, start.primary_site, start.after_seq)
        await epochs.record(session, new.epoch, new.site, new.after_seq)
        await mark_primary(session, new.site)
        log.warning(
            "following a new primary",
            extra={
                "primary": new.site,
                "epoch": new.epoch,
                "after_seq": new.after_seq,
                "position": feed.last_global_seq,
                "was_primary": was_primary,
            },
        )
    return True


async def _adopt_repositories(session: AsyncSession, epoch: int) -> None:
    """A demoted primary's repositories are replicas at their current sequences, to be
    verified before they count as verified: a push that storage took but this site never
    recorded (its post-receive refused by the fence) shows as a checksum mismatch, and the
    re-sync that follows keeps those commits under refs/geogit/diverged/epoch-<epoch>/."""
    now = utcnow()
    rows = (
        await session.execute(
            select(Project.id, Project.repository_seq, Project.repository_checksum)
        )
    ).all()
    for project_id, seq, checksum in rows:
        values = {
            "state": "synced",
            "synced_seq": seq,
            "checksum": checksum,
            "last_synced_at": now,
            "verified_at": None,
            "verification_state": "pending",
            "diverged_epoch": epoch,
            "retry_count": 0,
            "last_error": "",
            "updated_at": now,
        }
        statement = insert(ReplicaRegistry).values(project_id=project_id, **values)
        await session.execute(
            statement.on_conflict_do_update(index_elements=["project_id"], set_=values)
        )


async def roll_back(sessions: SessionMaker, primary: PrimaryClient) -> int | None:
    """Do a recorded rollback; the number of repositories to re-sync, None if none was due.

    One transaction: readers see the old read model until the new one is complete, and a
    failure (the new primary unreachable) leaves the rollback recorded for the next try."""
    async with sessions() as session, session.begin():
        state = await site_state.lock_for_update(session)
        after = state.rollback_after_seq
        if after is None:
            return None
        feed = await lock_feed(session)
        forked = await _projects_changed_after(session, after)
        await session.execute(delete(OutboxEvent).where(OutboxEvent.id > after))
        for model in _READ_MODEL:
            await session.execute(delete(model))
        await session.execute(delete(GeoPushFloor))
        feed.last_global_seq = await _replay(session, primary)
        feed.caught_up_at = None
        await _resync_forked(session, forked, state.epoch)
        state.rollback_after_seq = None
        log.warning(
            "read model rolled back to the new primary's history",
            extra={"after_seq": after, "position": feed.last_global_seq, "forked": len(forked)},
        )
    return len(forked)


async def _projects_changed_after(session: AsyncSession, after: int) -> list[int]:
    rows = await session.scalars(
        select(OutboxEvent.aggregate_id)
        .where(OutboxEvent.id > after, OutboxEvent.stream == "repository")
        .distinct()
    )
    return sorted(int(aggregate.removeprefix(PROJECT_AGGREGATE_PREFIX)) for aggregate in rows)


async def _replay(session: AsyncSession, primary: PrimaryClient) -> int:
    """The new primary's whole history, applied in order; returns the last sequence."""
    known = await epochs.history(session)
    position = 0
    applied = 0
    while True:
        events = await primary.events_after(position, REPLAY_PAGE)
        for event in events:
            if known.judge(event.epoch, event.global_seq, event.origin_site) != "current":
                continue
            await apply_and_mirror(session, event)
            applied = event.global_seq
            if event.type == "SitePromoted":
                known = await epochs.history(session)
        if len(events) < REPLAY_PAGE:
            return applied
        position = events[-1].global_seq


async def _resync_forked(session: AsyncSession, forked: list[int], epoch: int) -> None:
    """Replicas of the forked projects sync again, keeping what the new primary lacks. A
    project the new primary never had keeps its registry row and repository untouched: the
    replicator leaves a diverged registry row alone (its repository is the only copy)."""
    now = utcnow()
    for project_id in forked:
        values = {
            "state": "pending",
            "synced_seq": 0,
            "diverged_epoch": epoch,
            "retry_count": 0,
            "next_retry_at": None,
            "last_error": "",
            "verification_state": "pending",
            "updated_at": now,
        }
        statement = insert(ReplicaRegistry).values(project_id=project_id, **values)
        await session.execute(
            statement.on_conflict_do_update(index_elements=["project_id"], set_=values)
        )
