"""Relaying HTTP to an upstream: `/api/v4/*` to the internal API, and on a secondary every
request it does not serve itself to the primary's front door (DESIGN §3.2, §6).

Bodies stream both ways with back-pressure: a request chunk is read from the client only
when the upstream connection took the previous one, and each response chunk is written to
the client before the next is read. Hop-by-hop headers stay on their own hop; the edge says
who the client was (X-Forwarded-*) and carries the correlation id, and a client can set none
of the headers the edge owns, least of all the internal API's JWT header.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpx

from geogit.common.internal_api import ErrorMessage
from geogit.common.logging import CORRELATION_HEADER, get_correlation_id
from geogit.common.tokens import API_REQUEST_HEADER
from geogit.edge_proxy.asgi import (
    JSON,
    TEXT,
    ClientDisconnected,
    Headers,
    Request,
    Send,
    respond,
    send_body,
)
from geogit.edge_proxy.clients.relay import RelayClient, UpstreamError

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
ROUTE_HEADER = b"geogit-route"

ErrorWriter = Callable[[Send, int, str], Awaitable[None]]
# Called with the upstream's status once its whole body went out, before the response ends.
BeforeEnd = Callable[[int], Awaitable[None]]


class BodyTooLarge(Exception):
    """The client sent more than the route allows."""


@dataclass(frozen=True)
class Upstream:
    """Where a relayed request goes, what it is called in messages, and what the edge adds."""

    base_url: str
    name: str
    headers: Headers = field(default_factory=list)
    # Geogit-Route of the relayed response: `proxy` when it comes from the primary.
    route: bytes = b"local"


def _connection_bound(headers: Headers) -> frozenset[bytes]:
    """Hop-by-hop headers, including those the message's Connection header names."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    return HOP_BY_HOP | named


def request_headers(request: Request, dropped_too: Iterable[bytes] = ()) -> Headers:
    dropped = _connection_bound(request.headers) | EDGE_REQUEST_HEADERS | set(dropped_too)
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


def raw_target(request: Request) -> bytes:
    path: bytes = request.scope["raw_path"]
    query: bytes = request.scope["query_string"]
    return path + (b"?" + query if query else b"")


def limited(body: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        received = 0
        async for chunk in body:
            received += len(chunk)
            if received > max_bytes:
                raise BodyTooLarge(f"request body exceeds {max_bytes} bytes")
            yield chunk

    return chunks()


def has_body(request: Request) -> bool:
    declared = request.header("content-length")  # digits only: h11 checked it
    return int(declared or 0) > 0 or request.header("transfer-encoding") is not None


async def json_error(send: Send, status: int, message: str) -> None:
    await respond(send, status, ErrorMessage(message=message).model_dump_json(), JSON)


async def text_error(send: Send, status: int, message: str) -> None:
    await respond(send, status, message + "\n", TEXT)


class HttpRelay:
    def __init__(self, client: RelayClient) -> None:
        self.client = client

    async def relay(
        self,
        request: Request,
        send: Send,
        upstream: Upstream,
        target: bytes,
        body: AsyncIterator[bytes] | None,
        *,
        error: ErrorWriter = json_error,
        dropped_headers: Iterable[bytes] = (),
        before_end: BeforeEnd | None = None,
    ) -> None:
        headers = request_headers(request, dropped_headers) + upstream.headers
        try:
            response = await self.client.open(
                request.method, upstream.base_url, target, headers, body, upstream.name
            )
        except UpstreamError as exc:
            request.log.update(outcome="upstream_error", error=str(exc))
            await error(send, exc.status, f"{upstream.name} {exc.summary}")
            return
        except BodyTooLarge:
            await error(send, 413, "413 Request Entity Too Large")
            return
        except ClientDisconnected as exc:
            request.log.update(outcome="client_gone", error=str(exc))
            return
        watcher = asyncio.create_task(request.watch_disconnect(after_body=body is not None))
        try:
            await self._stream(request, send, response, upstream.route, before_end)
        finally:
            watcher.cancel()
            await response.aclose()

    async def _stream(
        self,
        request: Request,
        send: Send,
        upstream: httpx.Response,
        route: bytes,
        before_end: BeforeEnd | None,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": upstream.status_code,
                "headers": [*response_headers(upstream), (ROUTE_HEADER, route)],
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
        if before_end is not None:
            await before_end(upstream.status_code)
        await send_body(send, b"", more=False)


class ApiPassthrough:
    """`/api/v4/*`: to this site's internal API, or on a secondary to the primary."""

    def __init__(
        self, relay: HttpRelay, upstream: Callable[[], Upstream], max_body_bytes: int
    ) -> None:
        self.relay = relay
        self.upstream = upstream
        self.max_body_bytes = max_body_bytes

    async def handle(self, request: Request, send: Send) -> None:
        declared = request.header("content-length")
        if declared is not None and int(declared) > self.max_body_bytes:
            await json_error(send, 413, "413 Request Entity Too Large")
            return
        body = limited(request.body(), self.max_body_bytes) if has_body(request) else None
        upstream = self.upstream()
        await self.relay.relay(
            request,
            send,
            upstream,
            raw_target(request),
            body,
            dropped_headers=[name for name, _ in upstream.headers],
        )
