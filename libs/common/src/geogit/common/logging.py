"""JSON logs, one object per line, carrying the request's correlation id.

One `git push` crosses the edge-proxy or SSH gateway, storage, the hooks and the internal API;
the correlation id travels in `X-Request-Id` (HTTP) and `x-request-id` (gRPC metadata) and is
bound in a context variable, so every log line of that push, in every service, can be joined.
"""

import contextvars
import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

CORRELATION_HEADER = "X-Request-Id"
CORRELATION_METADATA_KEY = "x-request-id"

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")

# Incoming ids come from clients: anything that is not a short token is replaced rather than
# copied into every log line of the request.
_VALID_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# Attributes every LogRecord has; anything else on a record came from `extra={...}`.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def get_correlation_id() -> str:
    return correlation_id.get()


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def _usable(value: str | None) -> str:
    if not value or not _VALID_CORRELATION_ID.fullmatch(value):
        return new_correlation_id()
    return value


@contextmanager
def bound_correlation_id(value: str | None) -> Iterator[str]:
    """Bind the caller's id for the duration of a request, or a fresh one if it sent none.

    An id that is not a short token (`[A-Za-z0-9._:-]`, at most 128 characters) is replaced by a
    fresh one, so a client cannot stuff arbitrary text into our logs.
    """
    value = _usable(value)
    token = correlation_id.set(value)
    try:
        yield value
    finally:
        correlation_id.reset(token)


def adopt_correlation_id(value: str | None) -> str:
    """Bind the caller's id (or a fresh one) for the rest of the current task, with no reset.

    For a handler that runs in a task of its own and is an async generator (a streaming gRPC
    call): a generator left suspended is finalised later in another task, and resetting a
    token there fails ("was created in a different Context"). Each grpc.aio call has its own
    task, hence its own copy of the context, so nothing leaks past the call.
    """
    value = _usable(value)
    correlation_id.set(value)
    return value


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: fixed keys first, then the call's extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if request_id := correlation_id.get():
            entry["correlation_id"] = request_id
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES:
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _JsonHandler(logging.StreamHandler[Any]):
    """Marks the handler `configure_logging` owns, so a second call replaces it."""


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send the root logger's records to stderr as JSON lines.

    Calling it again (tests, a service re-reading its settings) replaces the previous JSON
    handler instead of adding a second one; handlers installed by others are left alone.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _JsonHandler)]:
        root.removeHandler(handler)
        handler.close()
    handler = _JsonHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root.addHandler(handler)
    root.setLevel(level.upper())
