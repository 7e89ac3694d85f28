"""A site's own account of its services' health, for the Geo status page of every site.

The internal API asks its database itself and every other service of the site at its
readiness URL (`GEOGIT_SERVICE_HEALTH_URLS`: storage, edge proxy, SSH gateway, replicator),
all at once and each with a short timeout, so one hung service costs the page two seconds, not
a hang. Another site's page gets the answer through `GET /api/v4/geo/site_health`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import httpx
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from geogit.internal_api.db import SessionMaker
from geogit.internal_api.models import GeoEventFeed

PROBE_TIMEOUT_SECONDS = 2.0


class ServiceHealthOut(BaseModel):
    name: str
    ok: bool
    detail: str = ""


class SiteHealthOut(BaseModel):
    site: str
    services: list[ServiceHealthOut]
    # A secondary's event feed: the last global sequence applied and when it last confirmed
    # it was caught up (its heartbeat); None on a primary, which has no feed to follow.
    feed_position: int | None = None
    feed_caught_up_at: datetime | None = None


async def database_health(sessions: SessionMaker) -> ServiceHealthOut:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS), sessions() as session:
            await session.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        return ServiceHealthOut(name="database", ok=False, detail=f"unreachable: {exc!r}"[:300])
    return ServiceHealthOut(name="database", ok=True)


async def _probe(http: httpx.AsyncClient, name: str, url: str) -> ServiceHealthOut:
    started = time.monotonic()
    try:
        response = await http.get(url, timeout=PROBE_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        return ServiceHealthOut(name=name, ok=False, detail=f"unreachable: {exc!r}"[:300])
    took = f"{(time.monotonic() - started) * 1000:.0f} ms"
    if response.status_code != 200:
        return ServiceHealthOut(
            name=name, ok=False, detail=f"readiness answered {response.status_code} in {took}"
        )
    return ServiceHealthOut(name=name, ok=True, detail=took)


async def _feed(sessions: SessionMaker) -> GeoEventFeed | None:
    async with sessions() as session:
        return await session.get(GeoEventFeed, 1)


async def site_health(
    site: str, secondary: bool, sessions: SessionMaker, urls: dict[str, str]
) -> SiteHealthOut:
    """A client per call: the page is opened by people, a few times a minute at most."""
    async with httpx.AsyncClient(trust_env=False) as http:
        database, *others = await asyncio.gather(
            database_health(sessions),
            *(_probe(http, name, url) for name, url in sorted(urls.items())),
        )
    health = SiteHealthOut(
        site=site, services=[ServiceHealthOut(name="internal-api", ok=True), database, *others]
    )
    if secondary and database.ok and (feed := await _feed(sessions)) is not None:
        health.feed_position, health.feed_caught_up_at = feed.last_global_seq, feed.caught_up_at
    return health
