"""What the Geo status page shows, read from this site's own database and asked of the sites.

Every site keeps every secondary's replication reports (geo/replication_status.py), so the
page looks the same from any site; what differs is "this site": a secondary adds its own
registry and event feed, which only it has, and links to the primary's page.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.internal_api.clients.sites import SiteUnreachable
from geogit.internal_api.deps import Services
from geogit.internal_api.geo.selective_sync import NAMESPACES, SHARDS, selected
from geogit.internal_api.geo.site_health import SiteHealthOut, site_health
from geogit.internal_api.geo.status import SiteStatusOut, site_status, with_authority
from geogit.internal_api.models import (
    GeoEventFeed,
    GeoSite,
    Project,
    ReplicaRegistry,
    ReplicationLagSample,
    ReplicationStatus,
    User,
    utcnow,
)

PROBLEMS_PER_PAGE = 20
CHART_WINDOW = timedelta(hours=1)
# A replica behind the primary for longer than this is listed as stale: a sync in flight is
# not a problem yet.
STALE_AFTER = timedelta(minutes=2)
SITE_TIMEOUT_SECONDS = 3.0


@dataclass
class SiteView:
    site: GeoSite
    status: SiteStatusOut
    health: SiteHealthOut | None
    health_error: str
    this_site: bool
    # What the site replicates (selective sync), as its card says it.
    selection: str = "everything"

    @property
    def pending_count(self) -> int:
        status = self.status
        done = status.repositories_synced_count + status.repositories_failed_count
        return max(status.repositories_count - done, 0)


@dataclass
class LagPoint:
    minute: datetime
    p50_ms: float
    p99_ms: float


@dataclass
class Problem:
    site: str
    project_id: int
    full_path: str
    state: str
    seq: int
    primary_seq: int
    error: str
    attempts: int
    next_retry_at: datetime | None
    updated_at: datetime


@dataclass
class ProblemPage:
    rows: list[Problem]
    total: int
    page: int
    query: str

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / PROBLEMS_PER_PAGE))


@dataclass
class ThisSite:
    """What only this site knows: its authority and, on a secondary, its own registry."""

    name: str
    role: str
    epoch: int
    primary_site: str
    primary_url: str
    feed: GeoEventFeed | None
    registry_counts: dict[str, int] = field(default_factory=dict)


async def _health(services: Services, site: GeoSite) -> tuple[SiteHealthOut | None, str]:
    settings = services.settings
    if site.name == settings.site_name:
        secondary = services.authority.current.is_secondary
        urls = settings.service_health_urls
        return await site_health(site.name, secondary, services.sessions, urls), ""
    try:
        return await services.geo.sites.site_health(site.url, timeout=SITE_TIMEOUT_SECONDS), ""
    except SiteUnreachable as exc:
        return None, str(exc)


async def _site_view(
    services: Services, site: GeoSite, counts: SiteStatusOut, selection: str
) -> SiteView:
    status, (health, error) = await asyncio.gather(
        with_authority(counts, site, services), _health(services, site)
    )
    this = site.name == services.settings.site_name
    return SiteView(site, status, health, error, this, selection)


async def _selection(session: AsyncSession, site: GeoSite) -> str:
    if site.selective_sync_type == NAMESPACES:
        names = await session.scalars(
            select(User.username)
            .where(User.id.in_(site.selective_sync_namespace_ids))
            .order_by(User.username)
        )
        return "namespaces: " + (", ".join(names.all()) or "none")
    if site.selective_sync_type == SHARDS:
        return "shards: " + (", ".join(site.selective_sync_shards) or "none")
    return "everything"


async def site_views(session: AsyncSession, services: Services) -> list[SiteView]:
    """The database first, in this request's session; then every site asked at once, so an
    unreachable one costs its timeout once, not once per site."""
    sites = (await session.scalars(select(GeoSite).order_by(GeoSite.id))).all()
    facts = [
        (site, await site_status(session, site), await _selection(session, site)) for site in sites
    ]
    return list(await asyncio.gather(*(_site_view(services, *fact) for fact in facts)))


async def secondary_ids(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(GeoSite.name, GeoSite.id).where(GeoSite.primary.is_(False)))
    return {name: site_id for name, site_id in rows.all()}


async def this_site(session: AsyncSession, services: Services) -> ThisSite:
    authority = services.authority.current
    view = ThisSite(
        name=services.settings.site_name,
        role=authority.role,
        epoch=authority.epoch,
        primary_site=authority.primary_site,
        primary_url=authority.primary_url,
        feed=None,
    )
    if authority.is_secondary:
        view.feed = await session.get(GeoEventFeed, 1)
        rows = await session.execute(
            select(ReplicaRegistry.state, func.count()).group_by(ReplicaRegistry.state)
        )
        view.registry_counts = {state: int(count) for state, count in rows.all()}
        verified = select(func.count()).where(ReplicaRegistry.verification_state == "verified")
        view.registry_counts["verified"] = int(await session.scalar(verified) or 0)
    return view


async def lag_series(session: AsyncSession) -> dict[str, list[LagPoint]]:
    """Per site and minute of the last hour: the median and p99 of the reported lag."""
    minute = func.date_trunc("minute", ReplicationLagSample.recorded_at).label("minute")
    rows = await session.execute(
        select(
            ReplicationLagSample.site,
            minute,
            func.percentile_cont(0.5).within_group(ReplicationLagSample.lag_ms),
            func.percentile_cont(0.99).within_group(ReplicationLagSample.lag_ms),
        )
        .where(ReplicationLagSample.recorded_at >= utcnow() - CHART_WINDOW)
        .group_by(ReplicationLagSample.site, minute)
        .order_by(ReplicationLagSample.site, minute)
    )
    series: dict[str, list[LagPoint]] = {}
    for site, at, p50, p99 in rows.all():
        series.setdefault(site, []).append(LagPoint(at, float(p50), float(p99)))
    return series


def _problem_condition() -> ColumnElement[bool]:
    behind = and_(
        ReplicationStatus.seq < Project.repository_seq,
        ReplicationStatus.updated_at < utcnow() - STALE_AFTER,
    )
    return or_(ReplicationStatus.state == "failed", behind)


async def problems(session: AsyncSession, query: str, page: int) -> ProblemPage:
    """Failed replicas, and replicas left behind the primary, newest first; `query` matches
    the project's path or the error."""
    # A project outside a site's selective sync is no problem of that site's, whatever its
    # last report said before it left the selection.
    conditions = [_problem_condition(), selected(ReplicationStatus.site)]
    if query:
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        full_path = Project.namespace + "/" + Project.path
        conditions.append(or_(full_path.ilike(pattern), ReplicationStatus.error.ilike(pattern)))
    base = (
        select(ReplicationStatus, Project)
        .join(Project, Project.id == ReplicationStatus.project_id)
        .where(*conditions)
    )
    total = int(await session.scalar(select(func.count()).select_from(base.subquery())) or 0)
    rows = await session.execute(
        base.order_by(ReplicationStatus.updated_at.desc(), ReplicationStatus.project_id)
        .offset((page - 1) * PROBLEMS_PER_PAGE)
        .limit(PROBLEMS_PER_PAGE)
    )
    return ProblemPage(
        rows=[
            Problem(
                site=status.site,
                project_id=project.id,
                full_path=project.full_path,
                state=status.state,
                seq=status.seq,
                primary_seq=project.repository_seq,
                error=status.error,
                attempts=status.attempts,
                next_retry_at=status.next_retry_at,
                updated_at=status.updated_at,
            )
            for status, project in rows.all()
        ],
        total=total,
        page=page,
        query=query,
    )


@dataclass
class ProjectView:
    project: Project
    replicas: list[ReplicationStatus]
    # This secondary's own registry row, when there is one.
    registry: ReplicaRegistry | None


async def project_view(session: AsyncSession, project_id: int) -> ProjectView | None:
    project = await session.get(Project, project_id)
    if project is None:
        return None
    replicas = await session.scalars(
        select(ReplicationStatus)
        .where(ReplicationStatus.project_id == project_id)
        .order_by(ReplicationStatus.site)
    )
    return ProjectView(project, list(replicas), await session.get(ReplicaRegistry, project_id))
