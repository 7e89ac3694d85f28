"""Which failures mean "the database cannot be reached" (a 503) rather than a bug (a 500)."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import exc as sa_exc

from geogit.internal_api.db import database_unavailable


def _wrapped(orig: Exception) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError("SELECT 1", None, orig)


def _chained(cause: BaseException) -> RuntimeError:
    try:
        raise RuntimeError("handler failed") from cause
    except RuntimeError as error:
        return error


UNAVAILABLE: list[BaseException] = [
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
    sa_exc.TimeoutError("QueuePool limit reached"),
    _wrapped(asyncpg.exceptions.CannotConnectNowError("the database system is shutting down")),
    _wrapped(asyncpg.exceptions.AdminShutdownError("terminating connection")),
    _wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")),
    _wrapped(asyncpg.exceptions.TooManyConnectionsError("too many clients")),
    _wrapped(asyncpg.exceptions.InterfaceError("connection is closed")),
    _chained(ConnectionResetError()),
]
NOT_UNAVAILABLE: list[BaseException] = [
    ValueError("bug"),
    _wrapped(asyncpg.exceptions.UndefinedTableError("relation does not exist")),
    _wrapped(asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence")),
    sa_exc.IntegrityError("INSERT", None, Exception("duplicate key")),
]


@pytest.mark.parametrize("error", UNAVAILABLE, ids=repr)
def test_connection_failures_are_unavailable(error: BaseException) -> None:
    assert database_unavailable(error)


@pytest.mark.parametrize("error", NOT_UNAVAILABLE, ids=repr)
def test_other_failures_are_not(error: BaseException) -> None:
    assert not database_unavailable(error)
