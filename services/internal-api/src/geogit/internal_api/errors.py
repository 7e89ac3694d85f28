"""Failures and the one place they become HTTP answers, shaped as GitLab shapes them.

Every error body is `{"message": ...}`: a string, or for a model that failed validation a
mapping of field to problems (`{"message": {"fingerprint_sha256": ["has already been taken"]}}`),
as GitLab answers. An exception none of these take is middleware.UnexpectedErrors' 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from geogit.common.internal_api import DATABASE_UNAVAILABLE
from geogit.common.repository_client import StorageError
from geogit.common.text import UNSTORABLE_MESSAGE
from geogit.internal_api.db import database_unavailable
from geogit.internal_api.geo.site_state import Refused

log = logging.getLogger(__name__)

Message = str | dict[str, list[str]]


class ApiError(Exception):
    """An answer other than success, decided by a handler; `message` is shown to the caller."""

    def __init__(self, status: int, message: Message) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: Message) -> ApiError:
    return ApiError(400, message)


def not_found(what: str = "") -> ApiError:
    return ApiError(404, f"404 {what} Not Found" if what else "404 Not Found")


def forbidden(reason: str = "") -> ApiError:
    return ApiError(403, f"403 Forbidden - {reason}" if reason else "403 Forbidden")


def conflict(message: Message) -> ApiError:
    return ApiError(409, message)


def unauthorized() -> ApiError:
    return ApiError(401, "401 Unauthorized")


def field_error(field: str, problem: str) -> ApiError:
    return ApiError(400, {field: [problem]})


def _json(status: int, message: Message) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """One readable line from pydantic's errors, e.g. "username is missing"."""
    parts = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
        field = ".".join(location) or "body"
        kind = error.get("type", "")
        if kind == "missing":
            parts.append(f"{field} is missing")
        elif kind == "extra_forbidden":
            parts.append(f"{field} is not a known parameter")
        elif kind in ("json_invalid", "model_attributes_type", "dict_type"):
            parts.append("the body must be a JSON object")
        elif kind == "string_unicode":
            # pydantic's own refusal of a lone surrogate, worded as StorableText's.
            parts.append(f"{field} is invalid: {UNSTORABLE_MESSAGE}")
        else:
            parts.append(f"{field} is invalid: {error.get('msg', kind)}")
    return "; ".join(parts) or "invalid request"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _json(exc.status, exc.message)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _json(400, f"400 Bad request - {describe_validation_errors(exc.errors())}")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "error"
    if exc.status_code == 404 and message == "Not Found":
        message = "404 Not Found"
    elif exc.status_code == 405:
        message = "405 Method Not Allowed"
    return JSONResponse({"message": message}, exc.status_code, headers=exc.headers)


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # Handlers check uniqueness first and answer precisely; this is the race between two
    # requests that both passed that check.
    log.info("integrity error: %s", str(exc.__cause__ or exc)[:500])
    return _json(409, "409 Conflict - the resource was changed concurrently or already exists")


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    # A value the database refused (validation should have caught it first): the caller's
    # value is at fault, so a 400 rather than the catch-all's 500.
    log.warning("database refused a value: %s", str(exc.__cause__ or exc)[:500])
    return _json(400, "400 Bad request - a value could not be stored")


async def _storage_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StorageError)
    log.error("storage call failed", extra={"error": str(exc)})
    status = (
        503 if exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) else 502
    )
    return _json(status, f"{status} storage error: {exc}")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return _json(500, "500 Internal Server Error")


def _database_failure(
    retry_after_seconds: int,
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """A database that cannot be reached is the site's state, not a bug: 503 with the message
    the gateways pass on to git clients, Retry-After, one log line and no traceback. Any other
    database or OS error is a bug (500)."""
    headers = {"Retry-After": str(retry_after_seconds)}

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        if not database_unavailable(exc):
            return await _unexpected(request, exc)
        log.warning("database unavailable", extra={"error": repr(exc)[:500]})
        return JSONResponse({"message": DATABASE_UNAVAILABLE}, 503, headers=headers)

    return handle


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    """What the site's authority does not allow now (DESIGN §10): a write while it fails over
    or is no longer the primary, a maintenance or promotion that cannot be. A 503 is worth
    retrying soon; the message says where to go meanwhile."""
    assert isinstance(exc, Refused)
    phrase = HTTPStatus(exc.status).phrase
    response = _json(exc.status, f"{exc.status} {phrase} - {exc.message}")
    if exc.status == 503:
        response.headers["Retry-After"] = "5"
    return response


def install_error_handlers(app: FastAPI, retry_after_seconds: int = 5) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(StorageError, _storage_error)
    database_failure = _database_failure(retry_after_seconds)
    # Registered by type: Starlette answers these in its exception middleware, so the
    # connection stays open; anything else is middleware.UnexpectedErrors' 500.
    for failure in (SQLAlchemyError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(failure, database_failure)
