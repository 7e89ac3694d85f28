"""The throwaway cluster with the machine's initdb/pg_ctl, and one database per site."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from geogit.common.net import free_port
from geogit.devstack.databases import can_connect, ensure_database
from geogit.devstack.postgres import PostgresError, ThrowawayPostgres, server_account

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop only applies as root")


def server_uid(pg: ThrowawayPostgres) -> int:
    postmaster_pid = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    for line in Path(f"/proc/{postmaster_pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


async def query(url: str, sql: str) -> object:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


def test_cluster_runs_unprivileged_serves_loopback_and_stops(open_tmp_path: Path) -> None:
    pg = ThrowawayPostgres(open_tmp_path / "postgres", port=free_port())
    pg.start()
    try:
        assert pg.running()
        account = server_account()
        assert server_uid(pg) == account.uid
        assert pg.data_dir.stat().st_uid == account.uid
        if os.geteuid() == 0:
            assert account.uid != 0

        primary = pg.url("geogit_primary")
        assert ensure_database(primary) is True
        assert ensure_database(primary) is False  # already there
        assert asyncio.run(query(primary, "SELECT current_user")) == "postgres"
        assert asyncio.run(query(primary, "SHOW listen_addresses")) == "127.0.0.1"
        assert asyncio.run(query(primary, "SHOW unix_socket_directories")) == ""

        pg.start()  # already running: kept, no error
    finally:
        assert pg.stop() is True
    assert not pg.running()
    assert not can_connect(pg.url("geogit_primary"), timeout=1)
    assert pg.stop() is False

    pg.start()  # data survives a restart
    try:
        assert ensure_database(pg.url("geogit_primary")) is False
    finally:
        pg.stop()


@needs_root
def test_server_account_is_not_root() -> None:
    account = server_account()
    assert account.uid != 0
    assert account.user in ("postgres", "geogit-dev")


@needs_root
def test_a_data_dir_the_account_cannot_reach_is_a_clear_error(open_tmp_path: Path) -> None:
    private = open_tmp_path / "private"
    private.mkdir(mode=0o700)
    pg = ThrowawayPostgres(private / "postgres", port=free_port())

    expected = r"cannot enter /tmp/geogit-devstack-\w+/private; allow it \(chmod o\+x"
    with pytest.raises(PostgresError, match=expected):
        pg.start()
