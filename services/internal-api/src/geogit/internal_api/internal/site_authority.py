"""The site-local Geo routes through which sites agree on the primary (DESIGN §10), answered
on any role (the edge routes them here even on a secondary, `geogit.common.geo_routes`):

- `GET /api/v4/geo/site_state`: this site's role, epoch, primary and maintenance — for other
  sites (Geo token), operators (admin token) and this site's own tools (internal JWT);
- `GET /api/v4/geo/site_health`: the health of this site's services, for the Geo status page
  of every site (same callers);
- `POST /api/v4/geo/follow`: the new primary tells this site to follow it (its Geo token, of
  the epoch it announces);
- `POST|DELETE /api/v4/geo/maintenance`: a candidate asks this primary to stop writes for a
  planned failover, or to take them again (the candidate's Geo token, or an admin).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from geogit.common.geo import GeoClaims
from geogit.common.geo_coordination import (
    DrainedOut,
    EpochOut,
    FollowIn,
    FollowOut,
    MaintenanceIn,
    MaintenanceOut,
    SiteStateOut,
)
from geogit.common.tokens import API_REQUEST_HEADER
from geogit.internal_api.deps import OptionalUser, ServicesDep, SessionDep, internal_caller
from geogit.internal_api.errors import ApiError, forbidden, unauthorized
from geogit.internal_api.geo import epochs, maintenance, site_state
from geogit.internal_api.geo.auth import GeoGate
from geogit.internal_api.geo.follow import EpochConflict, follow
from geogit.internal_api.geo.maintenance import MaintenanceRefused
from geogit.internal_api.geo.mirror import feed_position, last_event_id
from geogit.internal_api.geo.peers import confirmed_primary
from geogit.internal_api.geo.site_health import SiteHealthOut, site_health
from geogit.internal_api.models import GeoSite

router = APIRouter(prefix="/api/v4/geo", tags=["geo"])


async def _site_or_admin(
    request: Request, services: ServicesDep, claims: GeoGate, user: OptionalUser
) -> GeoClaims | None:
    """Another site (its claims), an admin or this site's own services (None)."""
    if claims is not None:
        if claims.scope != "site":
            raise forbidden()
        return claims
    if user is not None:
        if not user.is_admin:
            raise forbidden()
        return None
    if API_REQUEST_HEADER in request.headers:
        await internal_caller(request, services.settings)
        return None
    raise unauthorized()


SiteOrAdmin = Annotated[GeoClaims | None, Depends(_site_or_admin)]


@router.get("/site_state", response_model=SiteStateOut)
async def get_site_state(
    _: SiteOrAdmin, session: SessionDep, services: ServicesDep
) -> SiteStateOut:
    state = await site_state.load(session)
    me = services.settings.site_name
    site_id = await session.scalar(select(GeoSite.id).where(GeoSite.name == me))
    history = await epochs.history(session)
    primary = state.role == "primary"
    last = await last_event_id(session) if primary else await feed_position(session)
    return SiteStateOut(
        site_id=site_id,
        site=me,
        role="primary" if primary else "secondary",
        epoch=state.epoch,
        epoch_after_seq=next((e.after_seq for e in history.epochs if e.epoch == state.epoch), 0),
        primary_site=state.primary_site,
        primary_url=state.primary_url,
        maintenance=(
            MaintenanceOut(target=state.maintenance_target, since=state.maintenance_since)
            if state.maintenance_target
            else None
        ),
        fenced=state.fenced_at is not None,
        last_global_seq=last,
        epochs=[
            EpochOut(epoch=e.epoch, after_seq=e.after_seq, primary_site=e.primary_site)
            for e in history.epochs
        ],
    )


@router.get("/site_health", response_model=SiteHealthOut)
async def get_site_health(_: SiteOrAdmin, services: ServicesDep) -> SiteHealthOut:
    settings = services.settings
    return await site_health(
        settings.site_name,
        services.authority.current.is_secondary,
        services.sessions,
        settings.service_health_urls,
    )


@router.post("/follow", response_model=FollowOut)
async def post_follow(
    body: FollowIn, claims: GeoGate, services: ServicesDep, session: SessionDep
) -> FollowOut:
    """Believed only once the announcing site, asked at the address this site's registry holds
    for it, says itself that it is primary at that epoch from that sequence."""
    if claims is None or claims.scope != "site":
        raise unauthorized()
    if claims.site != body.primary_site or claims.epoch != body.epoch:
        raise forbidden(
            f"only {body.primary_site} itself, at epoch {body.epoch}, can announce its epoch"
        )
    url = await session.scalar(select(GeoSite.url).where(GeoSite.name == body.primary_site))
    if url is None:
        raise forbidden(f"site {body.primary_site!r} is not registered here")
    new = await confirmed_primary(services.geo.sites, body.primary_site, url)
    if new is None or (new.epoch, new.after_seq) != (body.epoch, body.after_seq):
        raise ApiError(409, f"409 Conflict - {body.primary_site} does not confirm {body}")
    try:
        followed = await follow(services.sessions, new)
    except EpochConflict as exc:
        raise ApiError(409, f"409 Conflict - {exc}") from exc
    authority = await services.authority.refresh()
    if followed:
        services.geo.feed.wake()
    return FollowOut(followed=followed, rollback=authority.rollback_after_seq is not None)


@router.post("/maintenance", response_model=DrainedOut)
async def enter_maintenance(
    body: MaintenanceIn, caller: SiteOrAdmin, services: ServicesDep
) -> DrainedOut:
    if caller is not None and caller.site != body.target:
        raise forbidden(f"site {caller.site!r} cannot fail this site over to {body.target!r}")
    epoch = services.authority.current.epoch
    if caller is not None and caller.epoch != epoch:
        raise ApiError(
            409, f"409 Conflict - {caller.site} is at epoch {caller.epoch}, this site at {epoch}"
        )
    await maintenance.begin(services.sessions, body.target)
    await services.authority.refresh()
    try:
        return await maintenance.drain(services.sessions, body.drain_timeout_seconds)
    except MaintenanceRefused:
        # The candidate gives up too: the primary must not stay read-only with no one to
        # end it.
        await maintenance.leave(services.sessions)
        await services.authority.refresh()
        raise


@router.delete("/maintenance", status_code=204)
async def leave_maintenance(caller: SiteOrAdmin, services: ServicesDep) -> Response:
    """Only the site being failed to, at this site's epoch, or an admin, ends it."""
    authority = services.authority.current
    if caller is not None and (
        caller.site != authority.maintenance_target or caller.epoch != authority.epoch
    ):
        raise forbidden(f"site {caller.site!r} at epoch {caller.epoch} cannot end this maintenance")
    await maintenance.leave(services.sessions)
    await services.authority.refresh()
    return Response(status_code=204)
