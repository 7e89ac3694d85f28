"""The primary's view of a secondary (`GET /geo/sites/:id/status`), from what its replicator
reported on `geogit.replication`: replica counts by state and the push-to-replica lag. The
counts are of the projects in the site's selective sync, as on GitLab."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.internal_api.clients.sites import SiteUnreachable
from geogit.internal_api.deps import Services
from geogit.internal_api.geo.mirror import last_event_id
from geogit.internal_api.geo.selective_sync import selected
from geogit.internal_api.models import (
    GeoSite,
    Project,
    ReplicationLagSample,
    ReplicationStatus,
    utcnow,
)

LAG_WINDOW = timedelta(hours=1)


class SiteStatusOut(BaseModel):
    geo_site_id: int
    name: str
    repositories_count: int
    repositories_synced_count: int
    repositories_failed_count: int
    repositories_verified_count: int
    replication_lag_p50_ms: float | None
    replication_lag_p95_ms: float | None = None
    replication_lag_p99_ms: float | None
    lag_samples: int
    # The primary's newest event, to compare with the secondary's own feed position.
    last_event_id: int
    last_report_at: datetime | None
    # The site's own account of its authority (DESIGN §10), asked at once; None if it did not
    # answer. `sequence_gap`: events this site has and it has not applied — the RPO a
    # promotion of it would have now.
    reachable: bool = False
    role: str | None = None
    epoch: int | None = None
    maintenance: str | None = None
    last_global_seq: int | None = None
    sequence_gap: int | None = None
    error: str = ""


async def _count(session: AsyncSession, site: str, *conditions: ColumnElement[bool]) -> int:
    """Replicas of projects that still exist and are in the site's selective sync: a deleted
    or unselected project's last report stays behind."""
    statement = (
        select(func.count())
        .select_from(ReplicationStatus)
        .join(Project, Project.id == ReplicationStatus.project_id)
        .where(ReplicationStatus.site == site, selected(site), *conditions)
    )
    return int(await session.scalar(statement) or 0)


async def with_authority(status: SiteStatusOut, site: GeoSite, services: Services) -> SiteStatusOut:
    """The live part of a site's status: its role, epoch, maintenance and sequence gap (this
    site's own from its authority, another's from its answer)."""
    mine = status.last_event_id
    if site.name == services.settings.site_name:
        own = services.authority.current
        role, epoch, maintenance, last = own.role, own.epoch, own.maintenance_target, mine
    else:
        try:
            answer = await services.geo.sites.site_state(site.url, timeout=3.0)
        except SiteUnreachable as exc:
            return status.model_copy(update={"error": str(exc)})
        role, epoch, last = answer.role, answer.epoch, answer.last_global_seq
        maintenance = answer.maintenance.target if answer.maintenance else ""
    return status.model_copy(
        update={
            "reachable": True,
            "role": role,
            "epoch": epoch,
            "maintenance": maintenance or None,
            "last_global_seq": last,
            "sequence_gap": max(mine - last, 0),
        }
    )


async def site_status(session: AsyncSession, site: GeoSite) -> SiteStatusOut:
    since = utcnow() - LAG_WINDOW
    p50, p95, p99, samples = (
        await session.execute(
            select(
                func.percentile_cont(0.5).within_group(ReplicationLagSample.lag_ms),
                func.percentile_cont(0.95).within_group(ReplicationLagSample.lag_ms),
                func.percentile_cont(0.99).within_group(ReplicationLagSample.lag_ms),
                func.count(),
            ).where(
                ReplicationLagSample.site == site.name, ReplicationLagSample.recorded_at >= since
            )
        )
    ).one()
    return SiteStatusOut(
        geo_site_id=site.id,
        name=site.name,
        repositories_count=int(
            await session.scalar(
                select(func.count()).select_from(Project).where(selected(site.name))
            )
            or 0
        ),
        repositories_synced_count=await _count(
            session, site.name, ReplicationStatus.state == "synced"
        ),
        repositories_failed_count=await _count(
            session, site.name, ReplicationStatus.state == "failed"
        ),
        repositories_verified_count=await _count(
            session, site.name, ReplicationStatus.verified.is_(True)
        ),
        replication_lag_p50_ms=p50,
        replication_lag_p95_ms=p95,
        replication_lag_p99_ms=p99,
        lag_samples=int(samples),
        last_event_id=await last_event_id(session),
        last_report_at=await session.scalar(
            select(func.max(ReplicationStatus.updated_at)).where(
                ReplicationStatus.site == site.name
            )
        ),
    )
