"""The operations endpoint of a non-HTTP service: /metrics, /-/liveness, /-/readiness.

Kubernetes probes and Prometheus need only these three GETs, so a few lines over asyncio
streams do, instead of a web framework in services that otherwise speak gRPC or SSH. A service
may add operator actions as POST paths without a body (the replicator's `POST /backfill`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

MAX_REQUEST_HEAD = 8192


class OpsServer:
    def __init__(
        self,
        host: str,
        port: int,
        ready: Callable[[], bool],
        actions: Mapping[str, Callable[[], None]] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._ready = ready
        self._actions = dict(actions or {})
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
            return 200, CONTENT_TYPE_LATEST, generate_latest()
        if path == "/-/liveness":
            return 200, "application/json", b'{"status":"ok"}\n'
        if path == "/-/readiness":
            if self._ready():
                return 200, "application/json", b'{"status":"ok"}\n'
            return 503, "application/json", b'{"status":"not ready"}\n'
        return 404, "text/plain", b"not found\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            if len(head) > MAX_REQUEST_HEAD:
                raise ValueError("request head too large")
            method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            status, content_type, body = self._route(method, path.split("?", 1)[0])
        except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            status, content_type, body = 400, "text/plain", b"bad request\n"
        writer.write(
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
