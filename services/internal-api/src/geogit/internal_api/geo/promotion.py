"""Promote this site to primary (DESIGN §10), planned or forced.

Planned: the primary stops taking writes and drains the pushes already past pre-receive, then
names its last global sequence; this site applies the events up to it and waits until every
replica is synced and verified at its latest sequence (bounded, saying what it waits for);
then it becomes primary at epoch+1 in one transaction — its read model is the write model,
its outbox (a mirror of the primary's store) continues the sequence with `SitePromoted` — and
tells every other site to follow. Forced: the same without the old primary, from whatever
this site has; what the others had beyond it is the data at risk, shown by `preview`.

One promotion at a time across the site's API replicas: a session-level advisory lock held
on its own connection for the whole run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import Select, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from geogit.common.events import PROJECT_AGGREGATE_PREFIX
from geogit.common.geo_coordination import (
    Follower,
    FollowIn,
    MaintenanceIn,
    ProjectBehind,
    PromotionMode,
    PromotionOut,
    PromotionPreview,
    SiteSeen,
)
from geogit.common.primary_client import PrimaryUnavailable
from geogit.common.proto.events.v1 import domain_pb2
from geogit.internal_api.clients.sites import SitesClient, SiteUnreachable
from geogit.internal_api.db import SessionMaker, session_lock
from geogit.internal_api.events.outbox import Outbox, site_aggregate
from geogit.internal_api.geo import epochs, site_state
from geogit.internal_api.geo.mirror import feed_position, lock_feed
from geogit.internal_api.geo.peers import ASK_TIMEOUT_SECONDS, other_sites
from geogit.internal_api.geo.read_model import mark_primary
from geogit.internal_api.geo.site_state import Refused
from geogit.internal_api.models import GeoSite, OutboxEvent, Project, ReplicaRegistry, utcnow

log = logging.getLogger(__name__)

PROMOTION_LOCK_KEY = 0x6765_6F67_6974_05  # "geogit" 5
# Tables whose ids the primary assigns: after a promotion this site assigns them.
_ID_TABLES = (
    "users",
    "personal_access_tokens",
    "ssh_keys",
    "projects",
    "protected_branches",
    "geo_sites",
    "outbox",
)
WAIT_STEP_SECONDS = 0.1
SHOWN_BEHIND = 20


class PromotionError(Refused):
    """A promotion that cannot be, or did not complete (the message says what it waited for)."""


@dataclass(frozen=True)
class _Candidate:
    site: GeoSite
    epoch: int
    primary_url: str


class Promotions:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: SessionMaker,
        site_name: str,
        outbox: Outbox,
        sites: SitesClient,
        catch_up: Callable[[], Awaitable[None]],
        refresh: Callable[[], Awaitable[object]],
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._site_name = site_name
        self._outbox = outbox
        self._sites = sites
        self._catch_up = catch_up
        self._refresh = refresh

    # Preview -------------------------------------------------------------------------------

    async def preview(self, site_id: int, mode: PromotionMode) -> PromotionPreview:
        async with self._sessions() as session:
            site = await self._target(session, site_id)
            state = await site_state.load(session)
            position = await feed_position(session)
            behind, behind_count = await _projects_behind(session)
            pushes_behind = await _pushes_behind(session)
            others = await other_sites(session, self._site_name)
        seen = await asyncio.gather(*(self._ask(other) for other in others))
        highest = max([position, *(s.last_global_seq for s in seen if s.reachable)])
        blockers = _blockers(site, state.role, mode, seen)
        return PromotionPreview(
            candidate=site.name,
            mode=mode,
            epoch=state.epoch,
            next_epoch=state.epoch + 1,
            candidate_seq=position,
            highest_seen_seq=highest,
            gap=highest - position,
            sites=list(seen),
            projects_behind=behind,
            projects_behind_count=behind_count,
            pushes_behind=pushes_behind,
            blockers=blockers,
        )

    async def _ask(self, site: GeoSite) -> SiteSeen:
        try:
            answer = await self._sites.site_state(site.url, timeout=ASK_TIMEOUT_SECONDS)
        except SiteUnreachable as exc:
            return SiteSeen(site=site.name, reachable=False, error=str(exc))
        return SiteSeen(
            site=site.name,
            reachable=True,
            role=answer.role,
            epoch=answer.epoch,
            last_global_seq=answer.last_global_seq,
        )

    async def _target(self, session: AsyncSession, site_id: int) -> GeoSite:
        site = await session.get(GeoSite, site_id)
        if site is None:
            raise PromotionError(404, "no such Geo Site")
        if site.name != self._site_name:
            raise PromotionError(
                409, f"site {site.name!r} is not this site ({self._site_name}): ask it directly"
            )
        if not site.enabled:
            raise PromotionError(409, f"site {site.name!r} is disabled")
        return site

    # Promote -------------------------------------------------------------------------------

    async def promote(
        self, site_id: int, mode: PromotionMode, timeout_seconds: float
    ) -> PromotionOut:
        at_risk = await self.preview(site_id, mode)
        if at_risk.blockers:
            raise PromotionError(409, "cannot promote: " + "; ".join(at_risk.blockers))
        started = time.monotonic()
        async with self._exclusive():
            async with self._sessions() as session:
                site = await self._target(session, site_id)
                state = await site_state.load(session)
                candidate = _Candidate(site, state.epoch, state.primary_url)
            if mode == "planned":
                await self._drain_primary(candidate, timeout_seconds)
                try:
                    epoch, after_seq = await self._become_primary(candidate, mode)
                except BaseException:
                    await self._abort_maintenance(candidate.primary_url)
                    raise
            else:
                epoch, after_seq = await self._become_primary(candidate, mode)
        await self._refresh()
        followers = await self._tell_followers(epoch, after_seq, candidate.site)
        log.warning(
            "promoted to primary",
            extra={"epoch": epoch, "after_seq": after_seq, "mode": mode},
        )
        return PromotionOut(
            site=candidate.site.name,
            mode=mode,
            epoch=epoch,
            after_seq=after_seq,
            waited_seconds=round(time.monotonic() - started, 3),
            followers=followers,
            at_risk=at_risk,
        )

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        async with session_lock(self._engine, PROMOTION_LOCK_KEY) as locked:
            if not locked:
                raise PromotionError(409, "another promotion of this site is running")
            yield

    async def _drain_primary(self, candidate: _Candidate, timeout_seconds: float) -> None:
        """The primary goes read-only; this site applies everything it wrote and waits for its
        replicas. On any failure the primary is told to take writes again."""
        request = MaintenanceIn(
            target=candidate.site.name, drain_timeout_seconds=min(timeout_seconds, 60)
        )
        try:
            drained = await self._sites.enter_maintenance(candidate.primary_url, request)
        except SiteUnreachable as exc:
            raise PromotionError(
                503, f"the primary could not enter maintenance ({exc}); if it is lost, use --force"
            ) from exc
        try:
            if drained.epoch != candidate.epoch:
                raise PromotionError(
                    409, f"the primary is at epoch {drained.epoch}, this site at {candidate.epoch}"
                )
            await self._wait_until_current(drained.last_global_seq, timeout_seconds)
        except BaseException:
            await self._abort_maintenance(candidate.primary_url)
            raise

    async def _abort_maintenance(self, primary_url: str) -> None:
        try:
            await self._sites.leave_maintenance(primary_url)
        except SiteUnreachable as exc:
            log.error("the primary stays in maintenance", extra={"error": str(exc)})

    async def _wait_until_current(self, last_global_seq: int, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                await self._catch_up()
            except PrimaryUnavailable as exc:
                if time.monotonic() > deadline:
                    raise PromotionError(503, f"the primary's event store: {exc}") from exc
            async with self._sessions() as session:
                position = await feed_position(session)
                behind, count = await _projects_behind(session)
            if position >= last_global_seq and count == 0:
                return
            if time.monotonic() > deadline:
                raise PromotionError(504, _waiting_for(position, last_global_seq, behind, count))
            await asyncio.sleep(WAIT_STEP_SECONDS)

    async def _become_primary(self, candidate: _Candidate, mode: PromotionMode) -> tuple[int, int]:
        async with self._sessions() as session, session.begin():
            state = await site_state.lock_for_update(session)
            if state.role != "secondary":
                raise PromotionError(409, f"this site is already {state.role}")
            if state.epoch != candidate.epoch or state.primary_url != candidate.primary_url:
                raise PromotionError(
                    409,
                    f"this site followed {state.primary_site} at epoch {state.epoch} meanwhile;"
                    " look again before promoting",
                )
            if state.rollback_after_seq is not None:
                raise PromotionError(409, "this site is rolling back its read model; retry soon")
            feed = await lock_feed(session)
            after_seq = feed.last_global_seq
            epoch = max(state.epoch, (await epochs.history(session)).latest) + 1
            state.role, state.epoch = "primary", epoch
            state.primary_site, state.primary_url = candidate.site.name, candidate.site.url
            state.maintenance_target, state.maintenance_since = "", None
            state.fenced_at, state.updated_at = None, utcnow()
            await epochs.record(session, epoch, candidate.site.name, after_seq)
            await mark_primary(session, candidate.site.name)
            await _take_over_ids(session, after_seq)
            await session.execute(delete(ReplicaRegistry))
            await self._outbox.append(
                session,
                domain_pb2.SitePromoted(
                    epoch=epoch,
                    after_seq=after_seq,
                    site=candidate.site.name,
                    url=candidate.site.url,
                    mode=mode,
                ),
                aggregate_id=site_aggregate(candidate.site.id),
            )
        return epoch, after_seq

    async def _tell_followers(self, epoch: int, after_seq: int, me: GeoSite) -> list[Follower]:
        async with self._sessions() as session:
            others = await other_sites(session, self._site_name)
        body = FollowIn(epoch=epoch, after_seq=after_seq, primary_site=me.name, primary_url=me.url)

        async def tell(site: GeoSite) -> Follower:
            try:
                answer = await self._sites.follow(site.url, body)
            except SiteUnreachable as exc:
                return Follower(site=site.name, followed=False, error=str(exc))
            return Follower(site=site.name, followed=True, rollback=answer.rollback)

        return list(await asyncio.gather(*(tell(site) for site in others)))


def _lagging() -> Select[Project, ReplicaRegistry]:
    """Projects whose replica here is not synced and verified at the latest sequence known."""
    return (
        select(Project, ReplicaRegistry)
        .outerjoin(ReplicaRegistry, ReplicaRegistry.project_id == Project.id)
        .where(
            (ReplicaRegistry.project_id.is_(None))
            | (ReplicaRegistry.state != "synced")
            | (ReplicaRegistry.synced_seq < Project.repository_seq)
            | (ReplicaRegistry.verification_state != "verified")
        )
    )


async def _projects_behind(session: AsyncSession) -> tuple[list[ProjectBehind], int]:
    lagging = _lagging()
    count = int(await session.scalar(select(func.count()).select_from(lagging.subquery())) or 0)
    rows = (await session.execute(lagging.order_by(Project.id).limit(SHOWN_BEHIND))).all()
    behind = [
        ProjectBehind(
            project_id=project.id,
            full_path=project.full_path,
            replica_seq=registry.synced_seq if registry is not None else None,
            latest_seq=project.repository_seq,
        )
        for project, registry in rows
    ]
    return behind, count


async def _pushes_behind(session: AsyncSession) -> int:
    """Repository events of the lagging projects after the sequence their replica is at."""
    lagging = (
        _lagging()
        .with_only_columns(
            func.concat(PROJECT_AGGREGATE_PREFIX, Project.id).label("aggregate_id"),
            func.coalesce(ReplicaRegistry.synced_seq, 0).label("replica_seq"),
        )
        .subquery()
    )
    statement = (
        select(func.count())
        .select_from(OutboxEvent)
        .join(
            lagging,
            (OutboxEvent.stream == "repository")
            & (OutboxEvent.aggregate_id == lagging.c.aggregate_id)
            & (OutboxEvent.id > lagging.c.replica_seq),
        )
    )
    return int(await session.scalar(statement) or 0)


def _blockers(site: GeoSite, role: str, mode: PromotionMode, seen: list[SiteSeen]) -> list[str]:
    blockers = []
    if role != "secondary":
        blockers.append(f"{site.name} is the {role} already")
    primaries = [s.site for s in seen if s.reachable and s.role == "primary"]
    if mode == "planned" and not primaries:
        blockers.append("no reachable primary to fail over from: use --force")
    if mode == "force" and primaries:
        blockers.append(
            f"the primary {primaries[0]} is reachable: use --planned, which loses nothing"
        )
    return blockers


def _waiting_for(position: int, last: int, behind: list[ProjectBehind], count: int) -> str:
    waits = []
    if position < last:
        waits.append(f"the event feed is at {position}, the primary's last event is {last}")
    if count:
        shown = ", ".join(f"{p.full_path} ({p.replica_seq}/{p.latest_seq})" for p in behind[:5])
        waits.append(f"{count} replicas not synced and verified yet: {shown}")
    return "timed out waiting for the candidate to be current: " + "; ".join(waits)


async def _take_over_ids(session: AsyncSession, after_seq: int) -> None:
    """Rows arrived with the old primary's ids; new ones continue after them (and the outbox
    after the last event this site applied, whatever its mirror holds)."""
    for table in _ID_TABLES:
        floor = after_seq if table == "outbox" else 0
        await session.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" GREATEST(COALESCE((SELECT max(id) FROM {table}), 0), :floor) + 1, false)"
            ),
            {"floor": floor},
        )
