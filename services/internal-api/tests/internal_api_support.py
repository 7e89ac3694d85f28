"""Helpers for driving the internal API in tests: users, tokens, projects, internal calls."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from sqlalchemy import func, select

from geogit.common.geo import generate_site_key
from geogit.common.paths import hashed_repository_path
from geogit.common.proto.storage.v1 import shared_pb2
from geogit.common.tokens import API_REQUEST_HEADER, INTERNAL_API_AUDIENCE, issue_token
from geogit.internal_api.app import create_app
from geogit.internal_api.config import InternalApiSettings
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.migrate import upgrade
from geogit.internal_api.models import OutboxEvent, ReportOutboxEvent
from geogit.storage.testing import API_SECRET, STORAGE_SECRET, StorageProcess, git

ZERO = "0" * 40
POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_PASSWORD = "admin-password-for-tests"
# The primary's Geo key pair (every site has one; the primary signs coordination tokens).
PRIMARY_GEO_KEY, PRIMARY_GEO_PUBLIC_KEY = generate_site_key()


async def _admin_sql(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


class Database:
    """A throwaway database, migrated to head; dropped (connections and all) at the end."""

    def __init__(self) -> None:
        self.name = f"geogit_test_{uuid.uuid4().hex[:12]}"
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.name}"

    def create(self, migrate: bool = True) -> None:
        asyncio.run(_admin_sql(f'CREATE DATABASE "{self.name}"'))
        if migrate:
            upgrade(self.url)

    def drop(self) -> None:
        asyncio.run(_admin_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))


def make_settings(
    database: Database, storage: StorageProcess, **overrides: object
) -> InternalApiSettings:
    values: dict[str, object] = {
        "database_url": database.url,
        "internal_api_secret": API_SECRET,
        "storage_secret": STORAGE_SECRET,
        "storages": {"default": storage.address},
        "external_url": "http://git.example.test",
        "site_name": "primary",
        "geo_private_key": PRIMARY_GEO_KEY,
        **overrides,
    }
    return InternalApiSettings.model_validate(values)


@dataclass(frozen=True)
class ServerInfo:
    url: str


@contextmanager
def serve_in_thread(settings: InternalApiSettings) -> Iterator[ServerInfo]:
    """The real app under uvicorn, lifespan included, in a thread of the test process."""
    host, port = settings.http_host_port
    config = uvicorn.Config(
        create_app(settings), host=host, port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the internal API did not start")
        time.sleep(0.02)
    try:
        yield ServerInfo(url=f"http://{host}:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass(frozen=True)
class Person:
    id: int
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"PRIVATE-TOKEN": self.token}

    @property
    def gl_id(self) -> str:
        return f"user-{self.id}"


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def internal_headers(secret: str = API_SECRET, ttl: int = 30) -> dict[str, str]:
    return {API_REQUEST_HEADER: issue_token(secret, "tests", INTERNAL_API_AUDIENCE, ttl)}


def basic(person: Person) -> str:
    return "Basic " + base64.b64encode(f"{person.username}:{person.token}".encode()).decode()


class Api:
    def __init__(self, client: httpx.AsyncClient, admin_token: str) -> None:
        self.client = client
        self.admin = {"PRIVATE-TOKEN": admin_token}

    async def user(
        self, prefix: str = "user", scopes: list[str] | None = None, admin: bool = False
    ) -> Person:
        username = unique(prefix)
        response = await self.client.post(
            "/api/v4/users",
            headers=self.admin,
            json={
                "username": username,
                "email": f"{username}@example.com",
                "name": username.title(),
                "password": "correct horse battery",
                "admin": admin,
            },
        )
        assert response.status_code == 201, response.text
        user_id = response.json()["id"]
        token = await self.token(user_id, scopes or ["api", "read_repository", "write_repository"])
        return Person(user_id, username, token)

    async def token(self, user_id: int, scopes: list[str], **extra: Any) -> str:
        response = await self.client.post(
            f"/api/v4/users/{user_id}/personal_access_tokens",
            headers=self.admin,
            json={"name": "test", "scopes": scopes, **extra},
        )
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    async def project(
        self, owner: Person, visibility: str = "private", **extra: Any
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v4/projects",
            headers=owner.headers,
            json={"path": unique("proj"), "visibility": visibility, **extra},
        )
        assert response.status_code == 201, response.text
        project: dict[str, Any] = response.json()
        return project

    async def add_member(self, project: dict[str, Any], person: Person, level: int) -> None:
        response = await self.client.post(
            f"/api/v4/projects/{project['id']}/members",
            headers=self.admin,
            json={"user_id": person.id, "access_level": level},
        )
        assert response.status_code == 201, response.text

    async def protect(self, project: dict[str, Any], name: str, **rule: Any) -> None:
        response = await self.client.post(
            f"/api/v4/projects/{project['id']}/protected_branches",
            headers=self.admin,
            json={"name": name, **rule},
        )
        assert response.status_code == 201, response.text

    async def internal(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(
            f"/api/v4/internal/{path}", json=body, headers=internal_headers()
        )


OutboxTable = type[OutboxEvent] | type[ReportOutboxEvent]


async def outbox_count(db: SessionMaker, table: OutboxTable = OutboxEvent) -> int:
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def outbox_rows(
    db: SessionMaker, aggregate_id: str, table: OutboxTable = OutboxEvent
) -> list[OutboxEvent | ReportOutboxEvent]:
    async with db() as session:
        rows = await session.scalars(
            select(table).where(table.aggregate_id == aggregate_id).order_by(table.id)
        )
        return list(rows.all())


def storage_repo(project: dict[str, Any]) -> shared_pb2.Repository:
    return shared_pb2.Repository(
        storage_name="default",
        relative_path=hashed_repository_path(project["id"]),
        gl_repository=f"project-{project['id']}",
        gl_project_path=project["path_with_namespace"],
    )


def push(
    storage: StorageProcess,
    repo: shared_pb2.Repository,
    tree: Path,
    person: Person,
    *refspecs: str,
    check: bool = True,
) -> str:
    """`git push` into storage as `person`; the hooks ask the internal API under test."""
    result = git(
        "push",
        storage.url(repo),
        *refspecs,
        cwd=tree,
        env=storage.git_env(repo, gl_id=person.gl_id, username=person.username),
        check=check,
    )
    return result.stderr.decode(errors="replace")
