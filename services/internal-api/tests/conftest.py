"""The internal API under test: a fresh PostgreSQL database, the real storage process and the
real app served by uvicorn (lifespan included) on a loopback port.

Storage's hooks call back into this very server, so a `git push` in a test goes through the
whole policy path: storage → pre-receive → /internal/allowed → post-receive → the outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from internal_api_support import (
    ADMIN_PASSWORD,
    Api,
    Database,
    ServerInfo,
    make_settings,
    serve_in_thread,
)

from geogit.common.net import free_port
from geogit.common.testing import kafka_config, tansu, topics
from geogit.internal_api.bootstrap import bootstrap_admin
from geogit.internal_api.config import InternalApiSettings
from geogit.internal_api.db import SessionMaker, make_engine, make_sessionmaker
from geogit.storage.testing import StorageProcess

__all__ = ["kafka_config", "tansu", "topics"]


@pytest.fixture(scope="session")
def database() -> Iterator[Database]:
    db = Database()
    db.create()
    yield db
    db.drop()


@pytest.fixture
def fresh_database() -> Iterator[Database]:
    """A database of its own, for tests that need to see every row (the relay's)."""
    db = Database()
    db.create()
    yield db
    db.drop()


@pytest.fixture(scope="session")
def api_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def storage(tmp_path_factory: pytest.TempPathFactory, api_port: int) -> Iterator[StorageProcess]:
    server = StorageProcess(
        tmp_path_factory.mktemp("storage") / "repositories", f"http://127.0.0.1:{api_port}"
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def settings(database: Database, storage: StorageProcess, api_port: int) -> InternalApiSettings:
    return make_settings(database, storage, http_address=f"127.0.0.1:{api_port}")


@pytest.fixture(scope="session")
def server(settings: InternalApiSettings) -> Iterator[ServerInfo]:
    with serve_in_thread(settings) as info:
        yield info


@pytest.fixture(scope="session")
def admin_token(database: Database, server: ServerInfo) -> str:
    admin = asyncio.run(
        bootstrap_admin(database.url, "primary", "root", "root@example.com", ADMIN_PASSWORD)
    )
    return admin.token


@pytest.fixture
async def api(server: ServerInfo, admin_token: str) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        yield Api(client, admin_token)


@pytest.fixture
async def db(database: Database) -> AsyncIterator[SessionMaker]:
    """Direct access to the database, to check what the API wrote (or did not)."""
    engine = make_engine(database.url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path
