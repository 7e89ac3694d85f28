"""The async engine and sessions, built per app (never at import time), and the one place that
decides whether a failure means "the database cannot be reached"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionMaker = async_sessionmaker[AsyncSession]
POOL_TIMEOUT_SECONDS = 30.0

# SQLSTATEs of a server that is not there for us: class 08 (connection exception), an
# administrator or crash shutdown, "cannot connect now" (starting or stopping), too many clients.
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# Raised when no usable connection exists: asyncpg's connect fails with a plain OSError
# (refused, unreachable, timed out), a pooled connection the server dropped with these.
_UNAVAILABLE_TYPES: tuple[type[BaseException], ...] = (
    OSError,  # includes TimeoutError, ConnectionRefusedError
    asyncpg.exceptions.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # the pool waited pool_timeout for a connection
)


def make_engine(database_url: str, connect_timeout: float = 5.0) -> AsyncEngine:
    # pre_ping: a pooled connection that died with a database restart is replaced, not used.
    # The connect timeout keeps a request waiting for an unreachable database seconds, not a
    # minute; the wait for a free pooled connection stays long (a burst of clones queues for
    # the pool, and an unreachable database fails at connect, not there).
    return create_async_engine(
        database_url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        connect_args={"timeout": connect_timeout},
    )


def make_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    # Objects stay readable after commit: handlers build their response from them.
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_lock(engine: AsyncEngine, *key: int) -> AsyncIterator[bool]:
    """Try a session-level advisory lock on a connection of its own, held for the block
    (whether it was got is yielded). PostgreSQL lets it go when that connection ends, so the
    API replica holding it gives it up when it dies, with nothing to expire. The transaction
    that took it is committed at once: the lock outlives it, an idle transaction would not."""
    async with engine.connect() as connection:
        locked = bool(await connection.scalar(select(func.pg_try_advisory_lock(*key))))
        await connection.commit()
        try:
            yield locked
        finally:
            if locked:
                await connection.scalar(select(func.pg_advisory_unlock(*key)))
                await connection.commit()


def database_unavailable(error: BaseException) -> bool:
    """Whether `error` (or what caused it) says the database cannot be reached right now.

    Such a failure is the site's state, not the request's fault nor a bug: callers answer 503
    and retry later instead of logging a traceback. SQLAlchemy wraps driver errors (`.orig`),
    and Python chains them (`__cause__`, `__context__`), so the whole chain is looked at.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, _UNAVAILABLE_TYPES):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and (
            sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES
        ):
            return True
        orig = getattr(current, "orig", None)
        pending += [
            orig if isinstance(orig, BaseException) else None,
            current.__cause__,
            current.__context__,
        ]
    return False
