"""FastAPI dependencies: the app's services, a database session, and who is calling.

Two kinds of caller exist. People and tools use the admin API with a personal access token
(`PRIVATE-TOKEN: <token>` or `Authorization: Bearer <token>`, scope `api`). Gateways, storage
and hooks use the internal endpoints with a short-lived JWT in `Geogit-Api-Request`.

Dependencies here and in every router are `async def` even when they never await: FastAPI
runs a plain `def` dependency in a worker thread, and those thread hops (about twenty per
authorization) cost more than the request itself on a busy machine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.geo import GeoSigner
from geogit.common.primary_client import PrimaryClient
from geogit.common.tokens import (
    API_REQUEST_HEADER,
    INTERNAL_API_AUDIENCE,
    MAX_TTL_SECONDS,
    TokenError,
    verify_token,
)
from geogit.internal_api.accounts.credentials import active_token
from geogit.internal_api.clients.sites import SitesClient
from geogit.internal_api.clients.storage import StorageClient
from geogit.internal_api.config import InternalApiSettings
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.errors import ApiError, forbidden, unauthorized
from geogit.internal_api.events.outbox import Outbox, ReportOutbox
from geogit.internal_api.geo.event_feed import EventFeed
from geogit.internal_api.geo.peers import Peers
from geogit.internal_api.geo.promotion import Promotions
from geogit.internal_api.geo.site_state import Authority, SiteAuthority
from geogit.internal_api.metrics import Metrics
from geogit.internal_api.models import User
from geogit.internal_api.repositories.push_queue import PushQueue
from geogit.internal_api.repositories.storage_moves import StorageMoves


@dataclass(frozen=True)
class GeoServices:
    """The site's part in Geo beside request handling (DESIGN §5, §10)."""

    feed: EventFeed
    peers: Peers
    promotions: Promotions
    sites: SitesClient


@dataclass(frozen=True)
class Services:
    """Everything a request may need, built once by the app's lifespan."""

    settings: InternalApiSettings
    sessions: SessionMaker
    storage: StorageClient
    outbox: Outbox
    reports: ReportOutbox
    metrics: Metrics
    # The site's role, epoch and primary (DESIGN §10), followed at runtime.
    authority: SiteAuthority
    # Signs this site's Geo tokens (the one signer of the process), at the site's epoch.
    geo_signer: GeoSigner
    # The client for the primary's front door; it follows the authority's primary URL and is
    # used only while this site is a secondary.
    primary: PrimaryClient
    geo: GeoServices
    # Repository storage moves running in the background (primary only).
    storage_moves: StorageMoves
    push_queue: PushQueue = field(default_factory=PushQueue)


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings(services: ServicesDep) -> InternalApiSettings:
    return services.settings


async def get_storage(services: ServicesDep) -> StorageClient:
    return services.storage


async def get_outbox(services: ServicesDep) -> Outbox:
    return services.outbox


async def get_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    async with services.sessions() as session:
        yield session


async def get_authority(services: ServicesDep) -> Authority:
    return services.authority.current


SettingsDep = Annotated[InternalApiSettings, Depends(get_settings)]
AuthorityDep = Annotated[Authority, Depends(get_authority)]
StorageDep = Annotated[StorageClient, Depends(get_storage)]
OutboxDep = Annotated[Outbox, Depends(get_outbox)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


def presented_token(request: Request) -> str | None:
    if token := request.headers.get("private-token"):
        return token
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def optional_user(request: Request, session: SessionDep) -> User | None:
    """The token's user, None without a token; a token that does not work is a 401."""
    token = presented_token(request)
    if token is None:
        return None
    found = await active_token(session, token)
    if found is None or not found[1].active:
        raise unauthorized()
    pat, user = found
    if "api" not in pat.scopes:
        raise forbidden("insufficient_scope: this endpoint needs a token with the api scope")
    return user


OptionalUser = Annotated[User | None, Depends(optional_user)]


async def current_user(user: OptionalUser) -> User:
    if user is None:
        raise unauthorized()
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise forbidden()
    return user


AdminUser = Annotated[User, Depends(admin_user)]


async def internal_caller(request: Request, settings: SettingsDep) -> dict[str, Any]:
    """Claims of the caller's internal JWT; anything else is a 401 naming the reason."""
    try:
        return verify_token(
            request.headers.get(API_REQUEST_HEADER),
            settings.internal_api_secret,
            INTERNAL_API_AUDIENCE,
            max_ttl_seconds=MAX_TTL_SECONDS,
        )
    except TokenError as exc:
        raise ApiError(401, f"401 Unauthorized - {API_REQUEST_HEADER}: {exc}") from exc


InternalCaller = Depends(internal_caller)
