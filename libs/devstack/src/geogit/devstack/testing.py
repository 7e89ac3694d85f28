"""Real sites for end-to-end tests: a fresh database and a `Site` on free ports in a tmp dir.

The tests use the machine's PostgreSQL (DESIGN §8: real components), by default
`postgresql+asyncpg://postgres@127.0.0.1:5432/postgres` with trust auth as the CI machine has
it; GEOGIT_TEST_DATABASE_URL points elsewhere. Each test gets its own database, dropped after.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from geogit.devstack.credentials import UserCredentials
from geogit.devstack.databases import drop_database, ensure_database, with_database
from geogit.devstack.ports import SitePorts
from geogit.devstack.site import Role, Site

TEST_SERVER_VARIABLE = "GEOGIT_TEST_DATABASE_URL"
DEFAULT_TEST_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def server_url_for_tests() -> str:
    return os.environ.get(TEST_SERVER_VARIABLE) or DEFAULT_TEST_SERVER


@contextmanager
def fresh_database(prefix: str = "geogit_test") -> Iterator[str]:
    """A new, empty database on the test server for the duration of the block."""
    url = with_database(server_url_for_tests(), f"{prefix}_{uuid.uuid4().hex[:12]}")
    ensure_database(url)
    try:
        yield url
    finally:
        drop_database(url)


@contextmanager
def running_site(
    base_dir: Path,
    kafka_bootstrap: str,
    name: str = "primary",
    role: Role = "primary",
    admin: bool = True,
) -> Iterator[tuple[Site, UserCredentials | None]]:
    """A started site on free ports with its own fresh database, and its admin if asked for.

    The admin is bootstrapped with the same CLI command the dev stack uses (`root`).
    """
    with fresh_database() as database_url:
        site = Site(name, role, base_dir, SitePorts.free(), database_url, kafka_bootstrap)
        site.start()
        try:
            credentials = (
                site.bootstrap_admin("root", "root@example.com", uuid.uuid4().hex)
                if admin
                else None
            )
            yield site, credentials
        finally:
            site.stop()
