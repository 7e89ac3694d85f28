"""A primary's read-only maintenance for a planned failover (DESIGN §10).

Entering it updates the site's authority row, which waits for every writer already past the
outbox's check (they hold the row shared) and turns away every later one. Pushes are counted
from pre-receive to post-receive (GitLab's reference counter): a push past pre-receive still
lands and records its event, and the drain waits for the count to reach zero, so the last
global sequence it reports is final. A counter a push left behind (its client vanished after
pre-receive) stops counting after `STALE_AFTER`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.geo_coordination import DrainedOut
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.geo import site_state
from geogit.internal_api.geo.mirror import last_event_id
from geogit.internal_api.geo.site_state import Refused
from geogit.internal_api.models import GeoSite, PushReferenceCounter, utcnow

STALE_AFTER = timedelta(seconds=20)
DRAIN_STEP_SECONDS = 0.05


class MaintenanceRefused(Refused):
    """A maintenance this primary cannot enter, or a drain that did not end in time."""


async def push_started(session: AsyncSession, project_id: int) -> None:
    """pre-receive: refused while failing over or not primary; counted otherwise."""
    await site_state.lock_for_write(session)
    statement = insert(PushReferenceCounter).values(project_id=project_id, count=1)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["project_id"],
            set_={"count": PushReferenceCounter.count + 1, "updated_at": func.now()},
        )
    )


async def push_finished(session: AsyncSession, project_id: int) -> None:
    """post-receive, in the transaction that records the push."""
    await session.execute(
        update(PushReferenceCounter)
        .where(PushReferenceCounter.project_id == project_id)
        .values(count=func.greatest(PushReferenceCounter.count - 1, 0), updated_at=func.now())
    )


async def begin(sessions: SessionMaker, target: str) -> None:
    """From its commit on, no write but a push's completion gets past the outbox."""
    async with sessions() as session, session.begin():
        state = await site_state.lock_for_update(session)
        if state.primary_site == target:
            raise MaintenanceRefused(409, f"{target} is this site: nothing to fail over to")
        site = await session.scalar(select(GeoSite).where(GeoSite.name == target))
        if site is None:
            raise MaintenanceRefused(404, f"Geo Site {target!r} is not registered")
        if not site.enabled:
            raise MaintenanceRefused(409, f"site {target!r} is disabled")
        if state.role != "primary":
            raise MaintenanceRefused(409, f"this site is not the primary (it is {state.role})")
        if state.maintenance_target and state.maintenance_target != target:
            raise MaintenanceRefused(
                409, f"this site is already failing over to {state.maintenance_target}"
            )
        state.maintenance_target = target
        state.maintenance_since = state.maintenance_since or utcnow()


async def leave(sessions: SessionMaker) -> None:
    async with sessions() as session, session.begin():
        state = await site_state.lock_for_update(session)
        state.maintenance_target, state.maintenance_since = "", None


async def drain(sessions: SessionMaker, timeout_seconds: float) -> DrainedOut:
    """Once every push past pre-receive has landed: the epoch and the final sequence."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        async with sessions() as session:
            in_flight = await _pushes_in_flight(session)
            if in_flight == 0:
                state = await site_state.load(session)
                last = await last_event_id(session)
                return DrainedOut(epoch=state.epoch, last_global_seq=last, pushes_in_flight=0)
        if time.monotonic() > deadline:
            raise MaintenanceRefused(
                504, f"{in_flight} pushes are still between pre-receive and post-receive"
            )
        await asyncio.sleep(DRAIN_STEP_SECONDS)


async def _pushes_in_flight(session: AsyncSession) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(PushReferenceCounter.count), 0)).where(
            PushReferenceCounter.count > 0,
            PushReferenceCounter.updated_at > func.now() - STALE_AFTER,
        )
    )
    return int(total or 0)
