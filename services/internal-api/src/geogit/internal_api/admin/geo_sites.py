"""/api/v4/geo/sites: the admin API for the sites of the deployment (GitLab's shape).

Every site, primary or secondary, is registered with the Ed25519 public key its Geo tokens
verify with (DESIGN §3.4); the private key never leaves the site. The key travels with the
site's events, so every site can verify every other's tokens; PUT rotates it. So does its
selective sync (admin/geo_site_selection.py), which the site itself applies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from geogit.common.geo import check_public_key
from geogit.common.proto.events.v1 import domain_pb2
from geogit.common.text import StorableText
from geogit.internal_api.admin.geo_site_selection import SelectionIn, apply_selection
from geogit.internal_api.deps import (
    AdminUser,
    OutboxDep,
    ServicesDep,
    SessionDep,
    SettingsDep,
)
from geogit.internal_api.errors import conflict, field_error, not_found
from geogit.internal_api.events.outbox import site_aggregate
from geogit.internal_api.geo.status import SiteStatusOut, site_status, with_authority
from geogit.internal_api.models import GeoSite
from geogit.internal_api.pagination import PageDep
from geogit.internal_api.params import Id

router = APIRouter(prefix="/api/v4/geo", tags=["geo"])

# A PEM Ed25519 public key is 113 characters; room for line-ending variations, not for essays.
MAX_PUBLIC_KEY_LENGTH = 1024


class SiteIn(SelectionIn):
    model_config = ConfigDict(extra="forbid")

    name: StorableText = Field(min_length=1, max_length=255)
    url: StorableText = Field(min_length=1, max_length=2048, pattern=r"^https?://")
    internal_url: StorableText = Field("", max_length=2048, pattern=r"^(https?://.*)?$")
    primary: bool = False
    enabled: bool = True
    # PEM Ed25519 public key (SubjectPublicKeyInfo): verifies the site's Geo tokens.
    public_key: StorableText = Field(min_length=1, max_length=MAX_PUBLIC_KEY_LENGTH)


class SiteUpdate(SelectionIn):
    model_config = ConfigDict(extra="forbid")

    url: StorableText | None = Field(None, min_length=1, max_length=2048, pattern=r"^https?://")
    internal_url: StorableText | None = Field(None, max_length=2048, pattern=r"^(https?://.*)?$")
    enabled: bool | None = None
    # A new key (rotation): tokens signed with the old one are refused from now on.
    public_key: StorableText | None = Field(None, min_length=1, max_length=MAX_PUBLIC_KEY_LENGTH)


class SiteOut(BaseModel):
    id: int
    name: str
    url: str
    internal_url: str
    primary: bool
    enabled: bool
    public_key: str
    created_at: datetime
    # GitLab's shape: null when the site holds everything.
    selective_sync_type: str | None
    selective_sync_namespace_ids: list[int]
    selective_sync_shards: list[str]

    @field_validator("selective_sync_type")
    @classmethod
    def _everything_is_null(cls, value: str | None) -> str | None:
        return value or None

    @classmethod
    def of(cls, site: GeoSite) -> SiteOut:
        return cls.model_validate(site, from_attributes=True)


def _role(site: GeoSite) -> str:
    return "primary" if site.primary else "secondary"


def _site_event(site: GeoSite, kind: type[Any]) -> Any:
    return kind(
        site_id=site.id,
        name=site.name,
        url=site.url,
        role=_role(site),
        enabled=site.enabled,
        public_key=site.public_key,
        selective_sync_type=site.selective_sync_type,
        selective_sync_namespace_ids=site.selective_sync_namespace_ids,
        selective_sync_shards=site.selective_sync_shards,
    )


def _public_key(pem: str) -> str:
    try:
        return check_public_key(pem)
    except ValueError as exc:
        raise field_error("public_key", str(exc)) from exc


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
async def add_site(
    body: SiteIn, _: AdminUser, session: SessionDep, outbox: OutboxDep, settings: SettingsDep
) -> SiteOut:
    public_key = _public_key(body.public_key)
    if await session.scalar(select(GeoSite.id).where(GeoSite.name == body.name)):
        raise conflict({"name": ["has already been taken"]})
    if body.primary and await session.scalar(select(GeoSite.id).where(GeoSite.primary)):
        raise conflict({"primary": ["a primary site already exists"]})
    fields = body.model_dump(exclude={"public_key", *SelectionIn.model_fields})
    site = GeoSite(**fields, public_key=public_key)
    await apply_selection(session, settings, site, body)
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


@router.get("/sites/{site_id}/status", response_model=SiteStatusOut)
async def get_site_status(
    site_id: Id, _: AdminUser, session: SessionDep, services: ServicesDep
) -> SiteStatusOut:
    site = await _site(session, site_id)
    return await with_authority(await site_status(session, site), site, services)


@router.put("/sites/{site_id}", response_model=SiteOut)
async def update_site(
    site_id: Id,
    body: SiteUpdate,
    _: AdminUser,
    session: SessionDep,
    outbox: OutboxDep,
    settings: SettingsDep,
) -> SiteOut:
    site = await _site(session, site_id)
    await apply_selection(session, settings, site, body)
    changes = body.model_dump(exclude_none=True, exclude=set(SelectionIn.model_fields))
    if "public_key" in changes:
        changes["public_key"] = _public_key(changes["public_key"])
    for field, value in changes.items():
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
