"""The operations endpoint of a non-HTTP service: /metrics, /-/liveness, /-/readiness.

Kubernetes probes and Prometheus need only these three GETs, so a few lines over asyncio
streams do, instead of a web framework in services that otherwise speak gRPC or SSH. A service
may add operator actions as POST paths without a body (the replicator's `POST /backfill`).

Bounded as every listener is (issue 9): a head must arrive within the header timeout (408), be
at most MAX_REQUEST_HEAD bytes (431), and beyond `max_connections` open at once a new
connection is answered 503 with Retry-After at once, so a flood of probes or slow clients
cannot hold the port that Kubernetes uses to decide whether the service lives.

/metrics shows the service's own registry (built per server, so several services in one test
process each show their own) followed by the process-wide one: the process and GC collectors
and the Kafka broker's outage state, which belong to the process, not to one service.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from pydantic import Field

from geogit.common.settings import GeogitSettings

MAX_REQUEST_HEAD = 8192
LINGER_SECONDS = 1.0
_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def render_metrics(registry: CollectorRegistry | None) -> bytes:
    """A service's own registry, then the process-wide one (process and GC collectors, the
    Kafka outage state), as every /metrics page shows them."""
    registries = [REGISTRY] if registry is None else [registry, REGISTRY]
    return b"".join(map(generate_latest, registries))


class OpsListenerSettings(GeogitSettings):
    """The bounds of a service's ops listener, from GEOGIT_* variables."""

    ops_header_timeout_seconds: float = Field(default=10.0, gt=0)
    ops_max_connections: int = Field(default=64, ge=1)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class OpsServer:
    def __init__(
        self,
        host: str,
        port: int,
        ready: Callable[[], bool],
        actions: Mapping[str, Callable[[], None]] | None = None,
        header_timeout: float = 10.0,
        max_connections: int = 64,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._ready = ready
        self._actions = dict(actions or {})
        self._header_timeout = header_timeout
        self._max_connections = max_connections
        self._registry = registry
        self._open = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _route(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method == "POST" and path in self._actions:
            self._actions[path]()
            return 202, "application/json", b'{"status":"accepted"}\n'
        if method != "GET":
            return 405, "text/plain", b"method not allowed\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, render_metrics(self._registry)
        if path == "/-/liveness":
            return 200, "application/json", b'{"status":"ok"}\n'
        if path == "/-/readiness":
            if self._ready():
                return 200, "application/json", b'{"status":"ok"}\n'
            return 503, "application/json", b'{"status":"not ready"}\n'
        return 404, "text/plain", b"not found\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open += 1
        try:
            if self._open > self._max_connections:
                await _refuse(reader, writer, 503, b"too many connections, retry later\n")
                return
            try:
                status, content_type, body = self._route(*await self._read_head(reader))
            except _Refused as exc:
                await _refuse(reader, writer, exc.status, f"{exc}\n".encode())
                return
            await _respond(writer, status, content_type, body)
        finally:
            self._open -= 1
            writer.close()

    async def _read_head(self, reader: asyncio.StreamReader) -> tuple[str, str]:
        """The method and path of the request, once its whole head has arrived in time."""
        try:
            head = await asyncio.wait_for(
                reader.readuntil(b"\r\n\r\n"), timeout=self._header_timeout
            )
        except TimeoutError as exc:
            raise _Refused(408, "the request head took too long") from exc
        except asyncio.LimitOverrunError as exc:
            raise _Refused(431, "request head too large") from exc
        except asyncio.IncompleteReadError as exc:
            raise _Refused(400, "bad request") from exc
        if len(head) > MAX_REQUEST_HEAD:
            raise _Refused(431, "request head too large")
        try:
            method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        except ValueError as exc:
            raise _Refused(400, "bad request") from exc
        return method, path.split("?", 1)[0]


async def _refuse(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int, message: bytes
) -> None:
    """Answer, then read and drop what the client still sends for a moment (lingering close),
    so its unread request does not reset the connection before it has read the answer."""
    extra = "Retry-After: 1\r\n" if status == 503 else ""
    await _respond(writer, status, "text/plain", message, extra)
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()
    with contextlib.suppress(TimeoutError, OSError):
        await asyncio.wait_for(_discard(reader), LINGER_SECONDS)


async def _discard(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


async def _respond(
    writer: asyncio.StreamWriter, status: int, content_type: str, body: bytes, extra: str = ""
) -> None:
    writer.write(
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}"
        "Connection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()
