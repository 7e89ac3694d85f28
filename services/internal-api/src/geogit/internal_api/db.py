"""The async engine and sessions, built per app (never at import time)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionMaker = async_sessionmaker[AsyncSession]


def make_engine(database_url: str) -> AsyncEngine:
    # pre_ping: a pooled connection that died with a database restart is replaced, not used.
    return create_async_engine(database_url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def make_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    # Objects stay readable after commit: handlers build their response from them.
    return async_sessionmaker(engine, expire_on_commit=False)
