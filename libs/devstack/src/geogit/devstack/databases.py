"""One PostgreSQL database per site, on the throwaway cluster or on the server the user named.

Database URLs are SQLAlchemy's (`postgresql+asyncpg://user@host:port/db`) because that is what
the internal API reads from GEOGIT_DATABASE_URL. Databases are created by connecting to the
same server's `postgres` maintenance database with the same credentials.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

_DRIVER_PREFIX = re.compile(r"^postgresql(\+\w+)?://")
_MAINTENANCE_DB = "postgres"
_DEFAULT_BASE = "geogit"


class DatabaseError(RuntimeError):
    """A site database could not be derived, created or dropped."""


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def site_database_name(base: str, site_name: str) -> str:
    """`geogit` + `secondary-1` -> `geogit_secondary_1`: a plain identifier, no quoting games."""
    name = f"{base or _DEFAULT_BASE}_{site_name}".replace("-", "_").lower()
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise DatabaseError(f"cannot derive a database name from {base!r} and {site_name!r}")
    return name


def site_database_url(server_url: str, site_name: str) -> str:
    """The site's database on the server of `server_url`, named after that URL's database.

    GEOGIT_DATABASE_URL=postgresql+asyncpg://me@db:5432/geogit gives the primary `geogit_primary`
    and the first secondary `geogit_secondary_1`, so several sites never share a schema.
    """
    return with_database(server_url, site_database_name(database_name(server_url), site_name))


def _asyncpg_dsn(url: str) -> str:
    if not _DRIVER_PREFIX.match(url):
        raise DatabaseError(f"not a PostgreSQL URL: {url!r}")
    return _DRIVER_PREFIX.sub("postgresql://", url)


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def _admin(url: str, statement_for: str, create: bool) -> bool:
    name = database_name(url)
    if not name:
        raise DatabaseError(f"no database name in {url!r}")
    dsn = _asyncpg_dsn(with_database(url, _MAINTENANCE_DB))
    try:
        connection = await asyncpg.connect(dsn, timeout=10)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"{statement_for} {name}: cannot connect to the server: {exc}") from exc
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if create and not exists:
            await connection.execute(f"CREATE DATABASE {_quoted(name)}")
            return True
        if not create and exists:
            await connection.execute(f"DROP DATABASE {_quoted(name)} WITH (FORCE)")
            return True
        return False
    except asyncpg.PostgresError as exc:
        raise DatabaseError(f"{statement_for} {name}: {exc}") from exc
    finally:
        await connection.close()


def ensure_database(url: str) -> bool:
    """Create the database `url` names unless it exists; returns whether it was created."""
    return asyncio.run(_admin(url, "creating database", create=True))


def drop_database(url: str) -> bool:
    """Drop the database `url` names (for tests and `--purge`); returns whether it existed."""
    return asyncio.run(_admin(url, "dropping database", create=False))


def can_connect(url: str, timeout: float = 2.0) -> bool:
    """Whether the database answers, for `geogit dev status`."""

    async def probe() -> bool:
        try:
            connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=timeout)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await connection.close()
        return True

    return asyncio.run(probe())
