"""The primary's view of a secondary (`GET /geo/sites/:id/status`), from what its replicator
reported on `geogit.replication`: replica counts by state and the push-to-replica lag."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.internal_api.models import (
    GeoSite,
    OutboxEvent,
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
    replication_lag_p99_ms: float | None
    lag_samples: int
    # The primary's newest event, to compare with the secondary's own feed position.
    last_event_id: int
    last_report_at: datetime | None


async def _count(session: AsyncSession, site: str, *conditions: ColumnElement[bool]) -> int:
    """Replicas of projects that still exist: a deleted project's last report stays behind."""
    statement = (
        select(func.count())
        .select_from(ReplicationStatus)
        .join(Project, Project.id == ReplicationStatus.project_id)
        .where(ReplicationStatus.site == site, *conditions)
    )
    return int(await session.scalar(statement) or 0)


async def site_status(session: AsyncSession, site: GeoSite) -> SiteStatusOut:
    since = utcnow() - LAG_WINDOW
    p50, p99, samples = (
        await session.execute(
            select(
                func.percentile_cont(0.5).within_group(ReplicationLagSample.lag_ms),
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
            await session.scalar(select(func.count()).select_from(Project)) or 0
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
        replication_lag_p99_ms=p99,
        lag_samples=int(samples),
        last_event_id=int(await session.scalar(select(func.max(OutboxEvent.id))) or 0),
        last_report_at=await session.scalar(
            select(func.max(ReplicationStatus.updated_at)).where(
                ReplicationStatus.site == site.name
            )
        ),
    )
