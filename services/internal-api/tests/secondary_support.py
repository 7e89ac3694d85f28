"""A Geo secondary beside the session's primary, for the secondary's own tests.

The secondary is registered on the primary (so its Geo tokens verify there), has a database
and a storage process of its own, and reads the primary's event store over HTTP like a real
site. Its feed's timer is slow on purpose: the tests decide when it catches up and what its
heartbeat says, so every verdict they check follows from state they set.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from internal_api_support import (
    Api,
    Database,
    ServerInfo,
    internal_headers,
    make_settings,
    push,
    serve_in_thread,
    storage_repo,
    unique,
)
from sqlalchemy import func, select, update

from geogit.common.events import Event, Topics
from geogit.common.geo import BOOTSTRAP_EPOCH, GeoSigner, generate_site_key
from geogit.common.kafka import KafkaConfig
from geogit.common.net import free_port
from geogit.common.primary_client import PrimaryClient
from geogit.internal_api.config import InternalApiSettings
from geogit.internal_api.db import SessionMaker, make_engine, make_sessionmaker
from geogit.internal_api.geo import site_state
from geogit.internal_api.geo.event_feed import EventFeed
from geogit.internal_api.geo.site_state import SiteAuthority
from geogit.internal_api.metrics import Metrics
from geogit.internal_api.models import GeoEventFeed, OutboxEvent, Project, utcnow
from geogit.storage.testing import StorageProcess, git

# The secondary's own feed polls the store once at start-up and then not for the test's life.
NEVER = 3600.0
MAX_LAG = 15.0


@dataclass(frozen=True)
class Registration:
    """A secondary as the primary knows it: its name, its Geo key pair and its site id."""

    name: str
    private_key: str
    public_key: str
    site_id: int

    @property
    def signer(self) -> GeoSigner:
        return GeoSigner(self.private_key, self.name, lambda: BOOTSTRAP_EPOCH)


def register_secondary(primary: ServerInfo, admin_token: str) -> Registration:
    name, (private_key, public_key) = unique("secondary-"), generate_site_key()
    response = httpx.post(
        f"{primary.url}/api/v4/geo/sites",
        headers={"PRIVATE-TOKEN": admin_token},
        json={"name": name, "url": f"http://{name}.example.test", "public_key": public_key},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert response.json()["public_key"] == public_key
    return Registration(name, private_key, public_key, int(response.json()["id"]))


def primary_client(primary: ServerInfo, site: Registration) -> PrimaryClient:
    return PrimaryClient(primary.url, site.signer, timeout=30)


def feed_for(
    sessions: SessionMaker,
    primary: ServerInfo,
    site: Registration,
    kafka: KafkaConfig | None = None,
    topics: Topics | None = None,
    *,
    poll_seconds: float = NEVER,
    heartbeat_seconds: float = NEVER,
    metrics: Metrics | None = None,
) -> EventFeed:
    """The secondary's event feed as its app builds it, not started: the test drives it (no
    promotion happens in these tests). The site's database must be bootstrapped."""
    settings = InternalApiSettings(
        site_name=site.name, site_role="secondary", primary_url=primary.url
    )

    async def no_promotion(event: Event) -> None:
        raise AssertionError(f"unexpected new epoch: {event}")

    async def no_rollback() -> None:
        raise AssertionError("unexpected rollback")

    return EventFeed(
        sessions,
        primary_client(primary, site),
        kafka,
        topics or Topics(),
        site.name,
        SiteAuthority(sessions, settings),
        on_new_epoch=no_promotion,
        rollback=no_rollback,
        poll_seconds=poll_seconds,
        heartbeat_seconds=heartbeat_seconds,
        metrics=metrics,
    )


async def bootstrap_secondary(
    sessions: SessionMaker, primary: ServerInfo, site: Registration
) -> None:
    async with sessions() as session:
        await site_state.bootstrap(session, "secondary", site.name, primary.url)
        await session.commit()


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
        "geo_private_key": site.private_key,
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


# A history made on the primary, through its API, with every kind of domain event -------


@dataclass(frozen=True)
class History:
    """What `make_history` did on the primary: the store's position before it, and the ids it
    touched (for comparing this slice of the two sites' tables)."""

    before: int
    user_ids: tuple[int, ...]
    project_ids: tuple[int, ...]
    site_ids: tuple[int, ...]


def _ssh_key(work: Path) -> str:
    path = work / f"key-{secrets.token_hex(4)}"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "t@x", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return Path(f"{path}.pub").read_text().strip()


def git_tree(work: Path) -> Path:
    """A one-commit work tree to push."""
    tree = work / f"tree-{secrets.token_hex(4)}"
    git("init", "-q", "-b", "main", str(tree))
    (tree / "README").write_text("hello\n")
    git("add", "README", cwd=tree)
    git("-c", "user.name=T", "-c", "user.email=t@example.test", "commit", "-qm", "one", cwd=tree)
    return tree


async def store_head(primary_database: Database) -> int:
    engine = make_engine(primary_database.url)
    try:
        async with make_sessionmaker(engine)() as session:
            return int(await session.scalar(select(func.max(OutboxEvent.id))) or 0)
    finally:
        await engine.dispose()


async def make_history(
    primary: ServerInfo,
    primary_database: Database,
    admin_token: str,
    storage: StorageProcess,
    work: Path,
) -> History:
    """Users, tokens, a key, projects, members, protected branches, a push, renames, removals,
    a blocked and a deleted user, and a site added, changed and removed."""
    before = await store_head(primary_database)
    async with httpx.AsyncClient(base_url=primary.url, timeout=60) as client:
        api = Api(client, admin_token)

        async def call(method: str, path: str, status: int, **kwargs: Any) -> Any:
            response = await client.request(method, f"/api/v4{path}", **kwargs)
            assert response.status_code == status, response.text
            return response.json() if response.content else None

        alice, bob, carol = await api.user("alice"), await api.user("bob"), await api.user("carol")
        project = await api.project(alice)
        doomed = await api.project(alice, visibility="internal")
        await api.add_member(project, bob, 30)
        await api.add_member(project, carol, 20)
        await api.protect(project, "main", push_access_level=40)
        await api.protect(project, "wip-*", push_access_level=30, allow_force_push=True)
        push(storage, storage_repo(project), git_tree(work), alice, "HEAD:refs/heads/main")
        key = {"title": "laptop", "key": _ssh_key(work)}
        await call("POST", f"/users/{carol.id}/keys", 201, headers=api.admin, json=key)
        await call(
            "POST",
            f"/users/{bob.id}/keys",
            201,
            headers=api.admin,
            json=key | {"key": _ssh_key(work)},
        )
        tokens = await call("GET", "/personal_access_tokens", 200, headers=bob.headers)
        await call("DELETE", f"/personal_access_tokens/{tokens[0]['id']}", 204, headers=api.admin)
        pid = project["id"]
        await call(
            "PUT", f"/projects/{pid}", 200, headers=alice.headers, json={"visibility": "internal"}
        )
        await call(
            "PUT", f"/projects/{pid}", 200, headers=alice.headers, json={"path": unique("moved")}
        )
        await call(
            "PUT",
            f"/projects/{pid}/members/{bob.id}",
            200,
            headers=api.admin,
            json={"access_level": 40},
        )
        await call("DELETE", f"/projects/{pid}/members/{carol.id}", 204, headers=api.admin)
        await call("DELETE", f"/projects/{pid}/protected_branches/wip-*", 204, headers=api.admin)
        await call("DELETE", f"/projects/{doomed['id']}", 202, headers=alice.headers)
        await call("POST", f"/users/{bob.id}/block", 201, headers=api.admin)
        await call("DELETE", f"/users/{carol.id}", 204, headers=api.admin)
        kept, gone = (
            register_secondary(primary, admin_token),
            register_secondary(primary, admin_token),
        )
        await call(
            "PUT", f"/geo/sites/{kept.site_id}", 200, headers=api.admin, json={"enabled": False}
        )
        rotated = {"public_key": generate_site_key()[1]}
        await call("PUT", f"/geo/sites/{kept.site_id}", 200, headers=api.admin, json=rotated)
        await call("DELETE", f"/geo/sites/{gone.site_id}", 204, headers=api.admin)
    return History(
        before=before,
        user_ids=(alice.id, bob.id, carol.id),
        project_ids=(project["id"], doomed["id"]),
        site_ids=(kept.site_id, gone.site_id),
    )
