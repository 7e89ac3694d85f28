"""A Geo secondary beside the session's primary, for the secondary's own tests.

The secondary is registered on the primary (so its Geo tokens verify there), has a database
and a storage process of its own, and reads the primary's event store over HTTP like a real
site. Its feed's timer is slow on purpose: the tests decide when it catches up and what its
heartbeat says, so every verdict they check follows from state they set.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from internal_api_support import (
    Database,
    ServerInfo,
    internal_headers,
    make_settings,
    serve_in_thread,
    unique,
)
from sqlalchemy import update

from geogit.common.events import Topics
from geogit.common.net import free_port
from geogit.common.primary_client import PrimaryClient
from geogit.internal_api.db import SessionMaker, make_engine, make_sessionmaker
from geogit.internal_api.geo.event_feed import EventFeed
from geogit.internal_api.models import GeoEventFeed, Project, utcnow
from geogit.storage.testing import StorageProcess

# The secondary's own feed polls the store once at start-up and then not for the test's life.
NEVER = 3600.0
MAX_LAG = 15.0


@dataclass(frozen=True)
class Registration:
    """A secondary as the primary knows it: its name, its Geo secret and its site id."""

    name: str
    secret: str
    site_id: int


def register_secondary(primary: ServerInfo, admin_token: str) -> Registration:
    name, secret = unique("secondary-"), secrets.token_urlsafe(32)
    response = httpx.post(
        f"{primary.url}/api/v4/geo/sites",
        headers={"PRIVATE-TOKEN": admin_token},
        json={"name": name, "url": f"http://{name}.example.test", "secret": secret},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return Registration(name, secret, int(response.json()["id"]))


def primary_client(primary: ServerInfo, site: Registration) -> PrimaryClient:
    return PrimaryClient(primary.url, site.name, site.secret, timeout=30)


def feed_for(sessions: SessionMaker, primary: ServerInfo, site: Registration) -> EventFeed:
    """The secondary's event feed as its app builds it, without Kafka and not started: the
    test drives it."""
    return EventFeed(
        sessions,
        primary_client(primary, site),
        None,
        Topics(),
        site.name,
        poll_seconds=NEVER,
        heartbeat_seconds=NEVER,
    )


@dataclass
class Secondary:
    """A running secondary internal API; `redirect_url` is a second replica of the same site's
    API (same database) configured with `geo_proxy_mode=redirect`."""

    site: Registration
    primary: ServerInfo
    database: Database
    storage: StorageProcess
    url: str
    redirect_url: str

    async def internal(
        self, path: str, body: dict[str, Any], *, redirect: bool = False
    ) -> httpx.Response:
        base = self.redirect_url if redirect else self.url
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            return await client.post(
                f"/api/v4/internal/{path}", json=body, headers=internal_headers()
            )

    async def put_registry(self, project_id: int, **entry: Any) -> None:
        """What the replicator reports through the site's own endpoint."""
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            response = await client.put(
                f"/api/v4/internal/geo/registry/{project_id}",
                json=entry,
                headers=internal_headers(),
            )
        assert response.status_code == 204, response.text

    async def catch_up(self) -> int:
        """Apply everything the primary's store holds; returns the new position."""
        engine = make_engine(self.database.url)
        try:
            feed = feed_for(make_sessionmaker(engine), self.primary, self.site)
            await feed.catch_up()
            return await feed.position()
        finally:
            await engine.dispose()

    async def delete_registry(self, project_id: int) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            response = await client.delete(
                f"/api/v4/internal/geo/registry/{project_id}", headers=internal_headers()
            )
        assert response.status_code == 204, response.text

    async def set_floor_and_heartbeat(
        self, project_id: int, min_seq: int, heartbeat_age: float | None
    ) -> None:
        """The project's read-your-writes floor and the feed's last confirmation, `age`
        seconds ago (None: never), as the edge's report and the feed leave them."""
        caught_up_at = (
            None if heartbeat_age is None else utcnow() - timedelta(seconds=heartbeat_age)
        )
        engine = make_engine(self.database.url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                await session.execute(
                    update(Project).where(Project.id == project_id).values(geo_min_seq=min_seq)
                )
                await session.execute(
                    update(GeoEventFeed)
                    .where(GeoEventFeed.id == 1)
                    .values(caught_up_at=caught_up_at)
                )
        finally:
            await engine.dispose()

    async def project(self, project_id: int) -> Project | None:
        engine = make_engine(self.database.url)
        try:
            async with make_sessionmaker(engine)() as session:
                return await session.get(Project, project_id)
        finally:
            await engine.dispose()


def _wait_first_poll(url: str) -> None:
    """The feed's first poll (at start-up) marks the heartbeat; after it nothing moves."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = httpx.get(
            f"{url}/api/v4/internal/geo/status", headers=internal_headers(), timeout=30
        )
        if response.status_code == 200 and response.json()["caught_up_at"] is not None:
            return
        time.sleep(0.2)
    raise RuntimeError("the secondary's event feed never caught up")


@contextmanager
def running_secondary(
    primary: ServerInfo, admin_token: str, root: Path, **overrides: object
) -> Iterator[Secondary]:
    site = register_secondary(primary, admin_token)
    database = Database()
    database.create()
    port, redirect_port = free_port(), free_port()
    storage = StorageProcess(root / "repositories", f"http://127.0.0.1:{port}")
    storage.start()
    values: dict[str, object] = {
        "http_address": f"127.0.0.1:{port}",
        "site_name": site.name,
        "site_role": "secondary",
        "primary_url": primary.url,
        "geo_secret": site.secret,
        "event_store_poll_seconds": NEVER,
        "feed_heartbeat_seconds": NEVER,
        "freshness_max_lag_seconds": MAX_LAG,
        **overrides,
    }
    settings = make_settings(database, storage, **values)
    redirect = settings.model_copy(
        update={"http_address": f"127.0.0.1:{redirect_port}", "geo_proxy_mode": "redirect"}
    )
    try:
        with serve_in_thread(settings) as info, serve_in_thread(redirect) as redirect_info:
            _wait_first_poll(info.url)
            yield Secondary(site, primary, database, storage, info.url, redirect_info.url)
    finally:
        storage.stop()
        database.drop()
