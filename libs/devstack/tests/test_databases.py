"""Per-site database names and their creation on an existing server (GEOGIT_DATABASE_URL)."""

from __future__ import annotations

import pytest

from geogit.devstack.databases import (
    DatabaseError,
    can_connect,
    drop_database,
    ensure_database,
    site_database_name,
    site_database_url,
)
from geogit.devstack.testing import fresh_database


def test_site_database_url_derives_one_database_per_site() -> None:
    server = "postgresql+asyncpg://me:pw@db.example:5433/geogit"
    assert site_database_url(server, "primary") == (
        "postgresql+asyncpg://me:pw@db.example:5433/geogit_primary"
    )
    assert site_database_url(server, "secondary-1").endswith("/geogit_secondary_1")
    assert site_database_url("postgresql+asyncpg://me@db/", "primary").endswith("/geogit_primary")


def test_names_that_would_need_quoting_are_refused() -> None:
    with pytest.raises(DatabaseError):
        site_database_name('x"; DROP DATABASE postgres; --', "primary")


def test_ensure_and_drop_on_an_existing_server(test_server: str) -> None:
    with fresh_database("geogit_devstack_test") as url:
        assert can_connect(url)
        site_url = site_database_url(url, "secondary-1")
        try:
            assert ensure_database(site_url) is True
            assert can_connect(site_url)
        finally:
            assert drop_database(site_url) is True
        assert not can_connect(site_url)
