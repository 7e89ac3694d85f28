"""The console script as operators and the dev stack run it: migrate, bootstrap-admin, serve
(and stop gracefully on SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from internal_api_support import PRIMARY_GEO_KEY, Database
from sqlalchemy import Connection, text

from geogit.common.net import free_port
from geogit.internal_api.db import make_engine
from geogit.internal_api.migrate import alembic_config
from geogit.internal_api.models import Base
from geogit.storage.testing import API_SECRET, STORAGE_SECRET, StorageProcess

CLI = [sys.executable, "-m", "geogit.internal_api.cli"]


@pytest.fixture
def empty_database() -> Iterator[Database]:
    db = Database()
    db.create(migrate=False)
    yield db
    db.drop()


def _env(database: Database, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "GEOGIT_DATABASE_URL": database.url,
        "GEOGIT_LOG_LEVEL": "WARNING",
        **extra,
    }


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def _schema_differences(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def test_migrate_builds_the_schema_the_models_describe(empty_database: Database) -> None:
    env = _env(empty_database)
    _run(["migrate"], env)
    _run(["migrate"], env)  # idempotent
    engine = make_engine(empty_database.url)
    try:
        async with engine.connect() as connection:
            version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
            scripts = ScriptDirectory.from_config(alembic_config(empty_database.url))
            head = scripts.get_current_head()
            assert version == head and head is not None
            assert await connection.run_sync(_schema_differences) == []
    finally:
        await engine.dispose()


def test_bootstrap_admin_then_serve_then_sigterm(
    empty_database: Database, storage: StorageProcess
) -> None:
    env = _env(empty_database)
    _run(["migrate"], env)
    args = ["bootstrap-admin", "--username", "root", "--email", "root@example.com"]
    first = json.loads(_run([*args, "--password", "a-long-password"], env).stdout)
    second = json.loads(_run([*args, "--password", "ignored-now"], env).stdout)
    assert first["username"] == "root" and first["user_id"] == second["user_id"]
    assert first["token"] != second["token"] and first["token"].startswith("glpat-")

    port = free_port()
    server = subprocess.Popen(
        CLI,
        env=_env(
            empty_database,
            GEOGIT_HTTP_ADDRESS=f"127.0.0.1:{port}",
            GEOGIT_INTERNAL_API_SECRET=API_SECRET,
            GEOGIT_STORAGE_SECRET=STORAGE_SECRET,
            GEOGIT_STORAGES=json.dumps({"default": storage.address}),
            GEOGIT_GEO_PRIVATE_KEY=PRIMARY_GEO_KEY,
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/readiness").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        for token in (first["token"], second["token"]):
            me = httpx.get(f"{url}/api/v4/user", headers={"PRIVATE-TOKEN": token})
            assert me.status_code == 200 and me.json()["is_admin"] is True
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_serve_refuses_a_geo_private_key_that_is_not_one(empty_database: Database) -> None:
    env = _env(
        empty_database,
        GEOGIT_INTERNAL_API_SECRET=API_SECRET,
        GEOGIT_STORAGE_SECRET=STORAGE_SECRET,
        GEOGIT_GEO_PRIVATE_KEY="not a key",
    )
    result = subprocess.run([*CLI, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "geogit-internal-api: GEOGIT_GEO_PRIVATE_KEY: not a PEM private key"
        " (expected -----BEGIN PRIVATE KEY-----)"
    )
