"""Geo: the proxy-detection answer for this site's edge-proxy, and the list of sites.

GET /api/v4/geo/proxy (internal JWT) answers `{}` on a primary: there is nothing to proxy to.
/geo/sites is the admin API for the sites of the deployment (GitLab's shape).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from geogit.common.proto.events.v1 import domain_pb2
from geogit.internal_api.deps import (
    AdminUser,
    InternalCaller,
    OutboxDep,
    SessionDep,
)
from geogit.internal_api.errors import conflict, not_found
from geogit.internal_api.models import GeoSite
from geogit.internal_api.outbox import site_aggregate
from geogit.internal_api.pagination import PageDep
from geogit.internal_api.params import Id

router = APIRouter(prefix="/api/v4/geo", tags=["geo"])


@router.get("/proxy", dependencies=[InternalCaller])
async def proxy() -> dict[str, Any]:
    # A secondary will answer geo_proxy_url and its signed site token here (DESIGN §3.4).
    return {}


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://")
    internal_url: str = Field("", max_length=2048, pattern=r"^(https?://.*)?$")
    primary: bool = False
    enabled: bool = True


class SiteUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, min_length=1, max_length=2048, pattern=r"^https?://")
    internal_url: str | None = Field(None, max_length=2048, pattern=r"^(https?://.*)?$")
    enabled: bool | None = None


class SiteOut(BaseModel):
    id: int
    name: str
    url: str
    internal_url: str
    primary: bool
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, site: GeoSite) -> SiteOut:
        return cls.model_validate(site, from_attributes=True)


def _role(site: GeoSite) -> str:
    return "primary" if site.primary else "secondary"


def _site_event(site: GeoSite, kind: type[Any]) -> Any:
    return kind(
        site_id=site.id, name=site.name, url=site.url, role=_role(site), enabled=site.enabled
    )


async def _site(session: SessionDep, site_id: int) -> GeoSite:
    site = await session.get(GeoSite, site_id)
    if site is None:
        raise not_found("Geo Site")
    return site


@router.get("/sites", response_model=list[SiteOut])
async def list_sites(_: AdminUser, session: SessionDep, page: PageDep) -> list[SiteOut]:
    sites = await page.fetch(session, select(GeoSite).order_by(GeoSite.id))
    return [SiteOut.of(site) for site in sites]


@router.post("/sites", response_model=SiteOut, status_code=201)
async def add_site(body: SiteIn, _: AdminUser, session: SessionDep, outbox: OutboxDep) -> SiteOut:
    if await session.scalar(select(GeoSite.id).where(GeoSite.name == body.name)):
        raise conflict({"name": ["has already been taken"]})
    if body.primary and await session.scalar(select(GeoSite.id).where(GeoSite.primary)):
        raise conflict({"primary": ["a primary site already exists"]})
    site = GeoSite(**body.model_dump())
    session.add(site)
    await session.flush()
    await outbox.append(
        session, _site_event(site, domain_pb2.SiteAdded), aggregate_id=site_aggregate(site.id)
    )
    await session.commit()
    return SiteOut.of(site)


@router.get("/sites/{site_id}", response_model=SiteOut)
async def get_site(site_id: Id, _: AdminUser, session: SessionDep) -> SiteOut:
    return SiteOut.of(await _site(session, site_id))


@router.put("/sites/{site_id}", response_model=SiteOut)
async def update_site(
    site_id: Id, body: SiteUpdate, _: AdminUser, session: SessionDep, outbox: OutboxDep
) -> SiteOut:
    site = await _site(session, site_id)
    for field, value in body.model_dump(exclude_none=True).items():
        setattr(site, field, value)
    await outbox.append(
        session, _site_event(site, domain_pb2.SiteUpdated), aggregate_id=site_aggregate(site.id)
    )
    await session.commit()
    return SiteOut.of(site)


@router.delete("/sites/{site_id}", status_code=204)
async def remove_site(
    site_id: Id, _: AdminUser, session: SessionDep, outbox: OutboxDep
) -> Response:
    site = await _site(session, site_id)
    await session.delete(site)
    await outbox.append(
        session, domain_pb2.SiteRemoved(site_id=site.id), aggregate_id=site_aggregate(site.id)
    )
    await session.commit()
    return Response(status_code=204)
