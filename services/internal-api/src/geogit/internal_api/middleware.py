"""The ASGI layers every request passes, outermost first (installed in app.py):

- `RequestContext`: binds the correlation id (`X-Request-Id`), echoes it, records metrics and
  one log line per request.
- `BodyLimit`: refuses bodies over the cap with 413 before a handler buffers them.
- `EncodedPathSegments`: keeps `%2F` inside one path segment, so GitLab's URL-encoded project
  paths (`/projects/alice%2Fdemo/members`) route like ids do.
- `UnexpectedErrors`: a 500 for an exception no handler took, keeping the connection open.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import unquote

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geogit.common.logging import CORRELATION_HEADER, bound_correlation_id
from geogit.internal_api.metrics import Metrics

log = logging.getLogger(__name__)
INTERNAL_PREFIX = "/api/v4/internal/"


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        incoming = headers.get(CORRELATION_HEADER.lower().encode(), b"").decode("latin-1")
        status = 500
        started = time.monotonic()
        with bound_correlation_id(incoming) as correlation_id:

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [
                        *message.get("headers", []),
                        (CORRELATION_HEADER.encode(), correlation_id.encode()),
                    ]
                await send(message)

            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = _route_label(scope)
                self.metrics.requests.labels(scope["method"], route, str(status)).inc()
                self.metrics.request_seconds.labels(scope["method"], route).observe(
                    time.monotonic() - started
                )


class BodyLimit:
    """A declared Content-Length over the cap is answered here; a chunked body that grows past
    it fails while the handler reads it, as an HTTPException that FastAPI passes through.
    Internal endpoints get their own, larger cap: a push's ref changes can be long."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_internal_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_internal_bytes = max_internal_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        internal = str(scope["path"]).startswith(INTERNAL_PREFIX)
        limit = self.max_internal_bytes if internal else self.max_bytes
        too_large = f"413 Request Entity Too Large - the body exceeds {limit} bytes"
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit():
            await _send_json(send, 400, "400 Bad request - invalid Content-Length")
            return
        if int(declared) > limit:
            await _send_json(send, 413, too_large)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, too_large)
            return message

        await self.app(scope, limited_receive, send)


async def _send_json(send: Send, status: int, message: str) -> None:
    body = json.dumps({"message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class EncodedPathSegments:
    """Re-derive `path` from `raw_path` segment by segment, leaving `/` and `%` encoded.

    Starlette routes on the decoded path, where `alice%2Fdemo` has become two segments. After
    this layer every string path parameter arrives percent-encoded exactly once, and handlers
    of those that may hold a slash (project ids, branch names) `unquote` them. The scope is
    updated in place so outer layers see the route the router records in it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw: Any = scope.get("raw_path")
        if scope["type"] == "http" and isinstance(raw, bytes):
            raw_path = raw.decode("latin-1").split("?", 1)[0]
            scope["path"] = "/".join(
                unquote(segment).replace("%", "%25").replace("/", "%2F")
                for segment in raw_path.split("/")
            )
        await self.app(scope, receive, send)


class UnexpectedErrors:
    """The last word on an exception no handler took: a 500 answered here.

    Starlette's own 500 handler re-raises the exception to the server after answering, and
    uvicorn then closes the keep-alive connection, which the edge's pool could hand to the
    next caller (a 502 for someone else). Only a response already begun is left to end so.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error")
            if started:
                raise
            await _send_json(send, 500, "500 Internal Server Error")
