"""/api/v4/geo/sites: the admin API for the sites of the deployment (GitLab's shape).

A secondary is registered with the secret it signs its Geo tokens with: given in the request,
or generated and shown once in the answer, like a personal access token.
"""

from __future__ import annotations

import secrets as secrets_module
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from geogit.common.proto.events.v1 import domain_pb2
from geogit.common.text import StorableText
from geogit.internal_api.deps import (
    AdminUser,
    OutboxDep,
    SessionDep,
)
from geogit.internal_api.errors import conflict, not_found
from geogit.internal_api.events.outbox import site_aggregate
from geogit.internal_api.geo.status import SiteStatusOut, site_status
from geogit.internal_api.models import GeoSite
from geogit.internal_api.pagination import PageDep
from geogit.internal_api.params import Id

router = APIRouter(prefix="/api/v4/geo", tags=["geo"])


MIN_SECRET_LENGTH = 32


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StorableText = Field(min_length=1, max_length=255)
    url: StorableText = Field(min_length=1, max_length=2048, pattern=r"^https?://")
    internal_url: StorableText = Field("", max_length=2048, pattern=r"^(https?://.*)?$")
    primary: bool = False
    enabled: bool = True
    # A secondary's Geo secret; generated when omitted.
    secret: StorableText | None = Field(None, min_length=MIN_SECRET_LENGTH, max_length=512)


class SiteUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: StorableText | None = Field(None, min_length=1, max_length=2048, pattern=r"^https?://")
    internal_url: StorableText | None = Field(None, max_length=2048, pattern=r"^(https?://.*)?$")
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


class NewSiteOut(SiteOut):
    """The creation answer: the only time a secondary's secret is shown."""

    secret: str | None = None


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


@router.post("/sites", response_model=NewSiteOut, status_code=201, response_model_exclude_none=True)
async def add_site(
    body: SiteIn, _: AdminUser, session: SessionDep, outbox: OutboxDep
) -> NewSiteOut:
    if await session.scalar(select(GeoSite.id).where(GeoSite.name == body.name)):
        raise conflict({"name": ["has already been taken"]})
    if body.primary and await session.scalar(select(GeoSite.id).where(GeoSite.primary)):
        raise conflict({"primary": ["a primary site already exists"]})
    secret = "" if body.primary else body.secret or secrets_module.token_urlsafe(32)
    site = GeoSite(**body.model_dump(exclude={"secret"}), secret=secret)
    session.add(site)
    await session.flush()
    await outbox.append(
        session, _site_event(site, domain_pb2.SiteAdded), aggregate_id=site_aggregate(site.id)
    )
    await session.commit()
    return NewSiteOut(**SiteOut.of(site).model_dump(), secret=secret or None)


@router.get("/sites/{site_id}", response_model=SiteOut)
async def get_site(site_id: Id, _: AdminUser, session: SessionDep) -> SiteOut:
    return SiteOut.of(await _site(session, site_id))


@router.get("/sites/{site_id}/status", response_model=SiteStatusOut)
async def get_site_status(site_id: Id, _: AdminUser, session: SessionDep) -> SiteStatusOut:
    return await site_status(session, await _site(session, site_id))


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
