"""Bounds on what one HTTP client can hold of a listener: uvicorn's h11 protocol, guarded.

uvicorn (0.55) bounds neither how long a request head may take to arrive nor how long a
request body may pause, so a socket that sends one header line and stops is held for ever, and
a few hundred of them (slowloris) hold the listener. This protocol adds, per connection:

- a head timeout: a head not complete within `header_timeout` gets 408, then the connection
  closes (a connection that sent nothing is just closed);
- a body idle timeout: a body that stops arriving for `body_idle_timeout` (while the app is
  ready for more) ends the connection, and so the request;
- 431 for a head larger than `max_head_bytes` (uvicorn would say 400);
- a cap on open connections per listener: beyond `max_connections` a new connection is told
  503 with Retry-After at once, without reading its request;
- lingering close for these refusals: the answer is sent, the write side shut, and what the
  client still sends is read and dropped for a moment, so its unread request does not make the
  kernel reset the connection before the client has read the answer.

Idle keep-alive is uvicorn's own `timeout_keep_alive`.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass
from typing import Any

import h11
from pydantic import Field
from uvicorn.protocols.http.h11_impl import H11Protocol

from geogit.common.settings import GeogitSettings

LINGER_SECONDS = 2.0
RETRY_AFTER_SECONDS = 1
_HEAD_END = re.compile(rb"\n\r?\n")


class HttpListenerSettings(GeogitSettings):
    """The bounds of a service's HTTP listener, from GEOGIT_* variables."""

    # A request head (request line and headers) must arrive within this.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    # A request body may pause this long between two chunks.
    body_idle_timeout_seconds: float = Field(default=60.0, gt=0)
    # An idle keep-alive connection is closed after this.
    keep_alive_seconds: float = Field(default=65.0, gt=0)
    # Open connections per listener; beyond it a new one is answered 503 with Retry-After.
    max_connections: int = Field(default=1024, ge=1)


@dataclass(frozen=True)
class ListenerLimits:
    header_timeout: float
    body_idle_timeout: float
    keep_alive: float
    max_connections: int
    max_head_bytes: int


def listener_limits(settings: HttpListenerSettings, max_head_bytes: int) -> ListenerLimits:
    return ListenerLimits(
        header_timeout=settings.header_timeout_seconds,
        body_idle_timeout=settings.body_idle_timeout_seconds,
        keep_alive=settings.keep_alive_seconds,
        max_connections=settings.max_connections,
        max_head_bytes=max_head_bytes,
    )


def uvicorn_options(limits: ListenerLimits) -> dict[str, Any]:
    """The uvicorn.Config arguments that put `limits` on a listener."""
    return {
        "http": guarded_protocol(limits),
        "timeout_keep_alive": math.ceil(limits.keep_alive),
        "h11_max_incomplete_event_size": limits.max_head_bytes,
    }


def guarded_protocol(limits: ListenerLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol with `limits` (uvicorn builds one instance per connection)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})


def _plain_response(status: int, reason: str, message: str, *extra: str) -> bytes:
    body = f"{message}\n".encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class GuardedH11Protocol(H11Protocol):
    limits: ListenerLimits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._lingering = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self.transport = transport
            self._refuse(
                _plain_response(
                    503,
                    "Service Unavailable",
                    "Too many connections to this server, retry later.",
                    f"Retry-After: {RETRY_AFTER_SECONDS}",
                )
            )
            return
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the rest of a refused request, read only so the answer arrives
        if self.conn.their_state is h11.IDLE and self._head_size(data) > self.limits.max_head_bytes:
            self._refuse(
                _plain_response(
                    431,
                    "Request Header Fields Too Large",
                    f"The request head is larger than {self.limits.max_head_bytes} bytes.",
                )
            )
            return
        super().data_received(data)
        self._after_input()

    def _head_size(self, data: bytes) -> int:
        """How long the head being received is so far (all of it, once it has ended).

        h11 measures a head only while it is incomplete, so one that arrives whole in a single
        read would pass at any size.
        """
        pending = self.conn.trailing_data[0] + data
        end = _HEAD_END.search(pending)
        return end.end() if end else len(pending)

    def _after_input(self) -> None:
        if self.transport.is_closing():
            self._cancel_timers()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            # Bytes of a head have arrived (and uvicorn stopped its keep-alive timer).
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(
                    self.limits.header_timeout, self._head_timeout
                )
            return
        self._cancel(head=True)
        self._cancel(head=False)
        if state is h11.SEND_BODY:
            self._body_timer = self.loop.call_later(
                self.limits.body_idle_timeout, self._body_timeout
            )

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:
            self._refuse(_plain_response(408, "Request Timeout", "The request head took too long."))
        else:
            self.transport.close()

    def _body_timeout(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        if self.flow.read_paused:
            # The app has not read what came: the client is not the one waiting.
            self._body_timer = self.loop.call_later(
                self.limits.body_idle_timeout, self._body_timeout
            )
            return
        self.logger.info(
            "request body idle for %ss, connection closed", self.limits.body_idle_timeout
        )
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a head h11 cannot parse, as a lingering close."""
        self._refuse(_plain_response(400, "Bad Request", msg))

    def _refuse(self, response: bytes) -> None:
        self._cancel_timers()
        self._lingering = True
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.transport.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _cancel(self, head: bool) -> None:
        timer = self._head_timer if head else self._body_timer
        if timer is not None:
            timer.cancel()
        if head:
            self._head_timer = None
        else:
            self._body_timer = None

    def _cancel_timers(self) -> None:
        self._cancel(head=True)
        self._cancel(head=False)
