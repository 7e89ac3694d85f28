"""Internal Geo endpoints of a site, for its own services (internal JWT).

- the replicator's view of the site (`replicables`: every project of the site's selective sync
  with what its replica should be, and registry rows whose project is gone or outside the
  selection) and its registry writes (DESIGN §5);
- the edge-proxy's report of a push it relayed to the primary (read-your-writes);
- the site's own status: event-feed position and heartbeat, replica counts.
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from google.protobuf.message import DecodeError
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.events import EVENT_TYPES
from geogit.common.internal_api import (
    GeoSiteStatus,
    ProxiedPush,
    RegistryEntry,
    Replicable,
    ReplicablePage,
    ReplicationReport,
)
from geogit.common.paths import InvalidPathError
from geogit.common.proto.events.v1 import replication_pb2
from geogit.internal_api.deps import InternalCaller, ServicesDep, SessionDep
from geogit.internal_api.errors import ApiError, bad_request, not_found
from geogit.internal_api.geo.freshness import feed_is_current, selection_and_registry
from geogit.internal_api.geo.routing import floor_for_unknown, refresh_min_seq
from geogit.internal_api.geo.selective_sync import selected
from geogit.internal_api.lookup import project_by_path
from geogit.internal_api.models import (
    GeoDivergedRef,
    GeoEventFeed,
    Project,
    ReplicaRegistry,
    utcnow,
)
from geogit.internal_api.params import MAX_ID, Id

router = APIRouter(prefix="/api/v4/internal/geo", tags=["internal"], dependencies=[InternalCaller])
MAX_PAGE = 1000


def _replicable(
    project: Project, registry: ReplicaRegistry | None, in_selection: bool = True
) -> Replicable:
    return Replicable(
        project_id=project.id,
        full_path=project.full_path,
        storage_shard=project.storage_shard,
        disk_path=project.disk_path,
        default_branch=project.default_branch,
        seq=project.repository_seq,
        checksum=project.repository_checksum,
        pushed_at=project.repository_pushed_at,
        registry=RegistryEntry.model_validate(registry, from_attributes=True) if registry else None,
        selected=in_selection,
    )


async def _orphans(session: AsyncSession, site_name: str) -> list[int]:
    """Replicas to remove. One that kept diverged commits after a rollback stays (DESIGN §10)."""
    rows = await session.scalars(
        select(ReplicaRegistry.project_id)
        .outerjoin(Project, Project.id == ReplicaRegistry.project_id)
        .where(or_(Project.id.is_(None), ~selected(site_name)), ReplicaRegistry.diverged_epoch == 0)
        .limit(MAX_PAGE)
    )
    return list(rows)


@router.get("/replicables", response_model=ReplicablePage)
async def replicables(
    session: SessionDep,
    services: ServicesDep,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200,
) -> ReplicablePage:
    site_name = services.settings.site_name
    rows = (
        await session.execute(
            select(Project, ReplicaRegistry)
            .outerjoin(ReplicaRegistry, ReplicaRegistry.project_id == Project.id)
            .where(Project.id > after, selected(site_name))
            .order_by(Project.id)
            .limit(limit)
        )
    ).all()
    items = [_replicable(project, registry) for project, registry in rows]
    return ReplicablePage(
        replicables=items,
        orphans=await _orphans(session, site_name) if after == 0 else [],
        next_after=items[-1].project_id if len(items) == limit else None,
    )


async def _replicating(services: ServicesDep) -> None:
    """A primary's repositories are the originals: a replicator that has not yet seen this site
    promoted must not fetch over them (with prune) from the old primary (DESIGN §10)."""
    if not services.authority.current.is_secondary:
        raise ApiError(409, "409 Conflict - this site is the primary: nothing to replicate")


Replicating = Depends(_replicating)


@router.get("/replicables/{project_id}", response_model=Replicable, dependencies=[Replicating])
async def replicable(project_id: Id, session: SessionDep, services: ServicesDep) -> Replicable:
    project = await session.get(Project, project_id)
    if project is None:
        raise not_found("Project")
    site_name = services.settings.site_name
    in_selection, registry = await selection_and_registry(session, project_id, site_name)
    return _replicable(project, registry, in_selection)


@router.put("/registry/{project_id}", status_code=204, dependencies=[Replicating])
async def save_registry(project_id: Id, entry: RegistryEntry, session: SessionDep) -> Response:
    values = entry.model_dump() | {"updated_at": utcnow()}
    statement = insert(ReplicaRegistry).values(project_id=project_id, **values)
    await session.execute(
        statement.on_conflict_do_update(index_elements=["project_id"], set_=values)
    )
    await session.commit()
    return Response(status_code=204)


@router.delete("/registry/{project_id}", status_code=204)
async def delete_registry(project_id: Id, session: SessionDep) -> Response:
    registry = await session.get(ReplicaRegistry, project_id)
    if registry is not None:
        await session.delete(registry)
        await session.commit()
    return Response(status_code=204)


@router.post("/reports", status_code=204)
async def save_report(
    report: ReplicationReport, session: SessionDep, services: ServicesDep
) -> Response:
    """The site's replicator reports a sync or a verification: the report waits in the site's
    report outbox, which its relay publishes to `geogit.replication` in order, retrying while
    Kafka is down. Its sequence is the report's own per project (a sync and a verification of
    the same repository sequence are two reports)."""
    try:
        payload = EVENT_TYPES[report.type].FromString(
            base64.b64decode(report.payload, validate=True)
        )
    except (ValueError, DecodeError) as exc:  # binascii.Error is a ValueError
        raise bad_request(f"400 Bad request - payload is not a {report.type}: {exc}") from exc
    aggregate = f"{services.settings.site_name}:{report.project_id}"
    await services.reports.append(session, payload, aggregate_id=aggregate)
    if isinstance(payload, replication_pb2.ReplicaDiverged):
        await _keep_record(session, report.project_id, payload)
    await session.commit()
    return Response(status_code=204)


async def _keep_record(
    session: AsyncSession, project_id: int, report: replication_pb2.ReplicaDiverged
) -> None:
    """The site's own list of what a rollback kept (its status shows it)."""
    for ref in report.refs:
        await session.execute(
            insert(GeoDivergedRef)
            .values(
                project_id=project_id,
                epoch=report.epoch,
                ref=ref.ref,
                kept_as=ref.kept_as,
                oid=ref.oid,
            )
            .on_conflict_do_nothing()
        )


@router.post("/proxied_push", status_code=204)
async def proxied_push(body: ProxiedPush, session: SessionDep, services: ServicesDep) -> Response:
    """Called by the edge (before it ends the response) and the SSH gateway (before the exit
    status) for a push they relayed, so the pusher's next read through this site cannot be
    served from a replica that lacks the push."""
    path = body.project.removesuffix(".git")
    try:
        project = await project_by_path(session, path)
    except InvalidPathError:
        return Response(status_code=204)
    if not services.authority.current.is_secondary:
        return Response(status_code=204)
    if project is not None:
        await refresh_min_seq(session, services.primary, project)
    else:
        await floor_for_unknown(session, services.primary, path)
    return Response(status_code=204)


@router.get("/status", response_model=GeoSiteStatus)
async def status(session: SessionDep, services: ServicesDep) -> GeoSiteStatus:
    settings = services.settings
    authority = services.authority.current
    feed = await session.get(GeoEventFeed, 1)

    async def count(*conditions: ColumnElement[bool]) -> int:
        statement = select(func.count()).select_from(ReplicaRegistry).where(*conditions)
        return int(await session.scalar(statement) or 0)

    return GeoSiteStatus(
        site=settings.site_name,
        role=authority.role,
        epoch=authority.epoch,
        primary_url=authority.primary_url if authority.is_secondary else "",
        last_global_seq=feed.last_global_seq if feed else 0,
        caught_up_at=feed.caught_up_at if feed else None,
        fresh=await feed_is_current(session, settings.freshness_max_lag_seconds),
        projects=int(await session.scalar(select(func.count()).select_from(Project)) or 0),
        synced=await count(ReplicaRegistry.state == "synced"),
        failed=await count(ReplicaRegistry.state == "failed"),
        verified=await count(ReplicaRegistry.verification_state == "verified"),
        maintenance=authority.maintenance_target,
        diverged_refs=int(
            await session.scalar(select(func.count()).select_from(GeoDivergedRef)) or 0
        ),
    )
