"""`/api/v4/*` from outside, relayed to the internal API (the admin REST API, DESIGN §6).

Bodies stream both ways with back-pressure: a request chunk is read from the client only
when the upstream connection took the previous one, and each response chunk is written to
the client before the next is read. Hop-by-hop headers stay on their own hop; the edge says
who the client was (X-Forwarded-*) and carries the correlation id, and a client can set none
of the headers the edge owns, least of all the internal API's JWT header.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from geogit.common.internal_api import ErrorMessage
from geogit.common.logging import CORRELATION_HEADER, get_correlation_id
from geogit.common.tokens import API_REQUEST_HEADER
from geogit.edge_proxy.asgi import (
    JSON,
    ClientDisconnected,
    Headers,
    Request,
    Send,
    respond,
    send_body,
)
from geogit.edge_proxy.clients.internal_api import ApiPassthroughClient, InternalApiError

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Request headers only the edge may set, or that the edge has already answered (Expect).
EDGE_REQUEST_HEADERS = frozenset(
    {
        b"expect",
        b"host",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        CORRELATION_HEADER.lower().encode(),
        API_REQUEST_HEADER.lower().encode(),
    }
)
# Response headers the edge's wrapper sets on every response.
EDGE_RESPONSE_HEADERS = frozenset(
    {b"geogit-served-by", b"geogit-route", CORRELATION_HEADER.lower().encode()}
)


class BodyTooLarge(Exception):
    """The client sent more than max_api_body_bytes."""


def _connection_bound(headers: Headers) -> frozenset[bytes]:
    """Hop-by-hop headers, including those the message's Connection header names."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    return HOP_BY_HOP | named


def request_headers(request: Request) -> Headers:
    dropped = _connection_bound(request.headers) | EDGE_REQUEST_HEADERS
    headers = [(name, value) for name, value in request.headers if name not in dropped]
    forwarded_for = [value for name, value in request.headers if name == b"x-forwarded-for"]
    if client := request.scope.get("client"):
        forwarded_for.append(client[0].encode())
    if forwarded_for:
        headers.append((b"x-forwarded-for", b", ".join(forwarded_for)))
    headers.append((b"x-forwarded-proto", request.scope["scheme"].encode()))
    if host := request.header("host"):
        headers.append((b"x-forwarded-host", host.encode("latin-1")))
    headers.append((CORRELATION_HEADER.lower().encode(), get_correlation_id().encode()))
    return headers


def response_headers(upstream: httpx.Response) -> Headers:
    dropped = _connection_bound(upstream.headers.raw) | EDGE_RESPONSE_HEADERS
    return [
        (name.lower(), value) for name, value in upstream.headers.raw if name.lower() not in dropped
    ]


class ApiPassthrough:
    def __init__(self, client: ApiPassthroughClient, max_body_bytes: int) -> None:
        self.client = client
        self.max_body_bytes = max_body_bytes

    async def handle(self, request: Request, send: Send) -> None:
        declared = request.header("content-length")  # digits only: h11 checked it
        if declared is not None and int(declared) > self.max_body_bytes:
            await _error(send, 413, "413 Request Entity Too Large")
            return
        has_body = int(declared or 0) > 0 or request.header("transfer-encoding") is not None
        body = self._body(request) if has_body else None
        target = request.scope["raw_path"] + (
            b"?" + request.scope["query_string"] if request.scope["query_string"] else b""
        )
        try:
            upstream = await self.client.open(
                request.method, target, request_headers(request), body
            )
        except InternalApiError as exc:
            request.log.update(outcome="internal_api_error", error=str(exc))
            await _error(send, exc.status, f"the internal API {exc.summary}")
            return
        except BodyTooLarge:
            await _error(send, 413, "413 Request Entity Too Large")
            return
        except ClientDisconnected as exc:
            request.log.update(outcome="client_gone", error=str(exc))
            return
        watcher = asyncio.create_task(request.watch_disconnect(after_body=body is not None))
        try:
            await self._relay(request, send, upstream)
        finally:
            watcher.cancel()
            await upstream.aclose()

    async def _relay(self, request: Request, send: Send, upstream: httpx.Response) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": upstream.status_code,
                "headers": response_headers(upstream),
            }
        )
        try:
            async for chunk in upstream.aiter_raw():
                await send_body(send, chunk)
                if request.disconnected:
                    raise ClientDisconnected("client disconnected during the response")
        except (httpx.HTTPError, ClientDisconnected) as exc:
            # Returning without the final body message makes uvicorn close the connection.
            request.log.update(outcome="aborted", error=repr(exc))
            return
        await send_body(send, b"", more=False)

    async def _body(self, request: Request) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in request.body():
            received += len(chunk)
            if received > self.max_body_bytes:
                raise BodyTooLarge(f"request body exceeds {self.max_body_bytes} bytes")
            yield chunk


async def _error(send: Send, status: int, message: str) -> None:
    await respond(send, status, ErrorMessage(message=message).model_dump_json(), JSON)
