"""Operator actions on a secondary: resync or reverify one project, backfill the site now.

`POST /api/v4/geo/sites/:id/projects/:project_id/resync|reverify` and
`POST /api/v4/geo/sites/:id/backfill` (202: requested, not done). The request is an event on
the log (`GeoActionRequested`) which that site's replicator acts on, so it reaches a site that
is down once it is back, and the primary needs no route to the secondary's replicator. The
Geo status page calls the same functions.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.proto.events.v1 import domain_pb2
from geogit.internal_api.deps import AdminUser, OutboxDep, SessionDep
from geogit.internal_api.errors import bad_request, not_found
from geogit.internal_api.events.outbox import Outbox, site_aggregate
from geogit.internal_api.models import GeoSite, Project
from geogit.internal_api.params import Id

router = APIRouter(prefix="/api/v4/geo/sites", tags=["geo"])

ProjectAction = Literal["resync", "reverify"]


class ActionOut(BaseModel):
    geo_site_id: int
    action: str
    project_id: int | None = None
    status: str = "requested"


async def _secondary(session: AsyncSession, site_id: int) -> GeoSite:
    site = await session.get(GeoSite, site_id)
    if site is None:
        raise not_found("Geo Site")
    if site.primary:
        raise bad_request("400 Bad request - the primary site has no replicas to act on")
    return site


async def request_action(
    session: AsyncSession,
    outbox: Outbox,
    site_id: int,
    action: ProjectAction | Literal["backfill"],
    project_id: int = 0,
) -> ActionOut:
    """Append the request and commit; raises the API's 404/400 for a wrong site or project."""
    site = await _secondary(session, site_id)
    if action != "backfill" and await session.get(Project, project_id) is None:
        raise not_found("Project")
    await outbox.append(
        session,
        domain_pb2.GeoActionRequested(
            site_id=site.id, site=site.name, action=action, project_id=project_id
        ),
        aggregate_id=site_aggregate(site.id),
    )
    await session.commit()
    return ActionOut(geo_site_id=site.id, action=action, project_id=project_id or None)


@router.post("/{site_id}/projects/{project_id}/{action}", response_model=ActionOut, status_code=202)
async def project_action(
    site_id: Id,
    project_id: Id,
    action: ProjectAction,
    _: AdminUser,
    session: SessionDep,
    outbox: OutboxDep,
) -> ActionOut:
    return await request_action(session, outbox, site_id, action, project_id)


@router.post("/{site_id}/backfill", response_model=ActionOut, status_code=202)
async def backfill(site_id: Id, _: AdminUser, session: SessionDep, outbox: OutboxDep) -> ActionOut:
    return await request_action(session, outbox, site_id, "backfill")
