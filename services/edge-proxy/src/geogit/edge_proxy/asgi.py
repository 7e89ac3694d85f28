"""The few ASGI pieces the edge needs, without a framework.

Git POSTs must read the request body while the response streams out, which framework
responses do not allow (Starlette's StreamingResponse consumes request messages while it
responds), so every route speaks raw ASGI through these helpers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


class ClientDisconnected(Exception):
    """The client went away; there is nobody left to answer."""


@dataclass
class Request:
    """One HTTP request: what the route table matched and what handlers need from the scope."""

    scope: Scope
    receive: Receive
    params: dict[str, str] = field(default_factory=dict)
    # Extra fields for this request's access log line (project, service, outcome...).
    log: dict[str, Any] = field(default_factory=dict)
    disconnected: bool = False
    _body_done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def path(self) -> str:
        path: str = self.scope["path"]
        return path

    @property
    def headers(self) -> Headers:
        headers: Headers = self.scope["headers"]
        return headers

    def header(self, name: str) -> str | None:
        """The first value of a header, or None; `name` in lower case."""
        key = name.encode("latin-1")
        for header_name, value in self.headers:
            if header_name == key:
                return value.decode("latin-1")
        return None

    async def body(self) -> AsyncIterator[bytes]:
        """The request body as it arrives; raises `ClientDisconnected` if it is cut short."""
        try:
            while True:
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    self.disconnected = True
                    raise ClientDisconnected("client disconnected before sending the whole body")
                if chunk := message.get("body", b""):
                    yield chunk
                if not message.get("more_body", False):
                    return
        finally:
            self._body_done.set()

    async def watch_disconnect(self, *, after_body: bool) -> None:
        """Set `disconnected` once the client goes away.

        uvicorn's `send` silently drops data for a client that left, so a long response would
        otherwise keep pulling from storage for nobody. Only one reader may call `receive`, so
        for a request whose body is streamed the watch starts once `body()` is done.
        """
        if after_body:
            await self._body_done.wait()
        while (await self.receive())["type"] != "http.disconnect":
            pass
        self.disconnected = True


def media_type(value: str | None) -> str:
    """`application/x-git-upload-pack-request; charset=x` → the bare, lower-case media type."""
    return (value or "").split(";", 1)[0].strip().lower()


async def start_response(
    send: Send,
    status: int,
    content_type: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    raw: Headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    if content_type is not None:
        raw.append((b"content-type", content_type.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw})


async def send_body(send: Send, chunk: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": more})


async def respond(
    send: Send,
    status: int,
    body: bytes | str,
    content_type: str = TEXT,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    """A complete small response, such as an error message."""
    data = body.encode() if isinstance(body, str) else body
    extra = [*headers, ("content-length", str(len(data)))]
    await start_response(send, status, content_type, extra)
    await send_body(send, data, more=False)
