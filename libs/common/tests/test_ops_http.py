"""The ops listener's bounds, against a real OpsServer on a free port over raw sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from geogit.common.ops_http import OpsServer

HEADER_TIMEOUT = 1.0
MAX_CONNECTIONS = 3
PROBE = b"GET /-/liveness HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
async def port() -> AsyncIterator[int]:
    server = OpsServer(
        "127.0.0.1",
        0,
        ready=lambda: True,
        header_timeout=HEADER_TIMEOUT,
        max_connections=MAX_CONNECTIONS,
    )
    await server.start()
    yield server.port
    await server.stop()


async def exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_a_probe_is_answered(port: int) -> None:
    response = await exchange(port, PROBE)
    assert response.startswith(b"HTTP/1.1 200 OK\r\n"), response
    assert response.endswith(b'{"status":"ok"}\n')


async def test_a_half_sent_head_gets_408(port: int) -> None:
    started = time.monotonic()
    response = await exchange(port, b"GET /-/liveness HTTP/1.1\r\nHost: x\r\n")
    assert response.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), response
    assert response.endswith(b"the request head took too long\n")
    assert HEADER_TIMEOUT - 0.1 <= time.monotonic() - started < HEADER_TIMEOUT + 2


async def test_an_oversized_head_gets_431(port: int) -> None:
    response = await exchange(port, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), response
    assert response.endswith(b"request head too large\n")


async def test_connections_beyond_the_cap_get_503_with_retry_after(port: int) -> None:
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(MAX_CONNECTIONS)]
    await asyncio.sleep(0.1)
    response = await exchange(port, PROBE)
    assert response.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), response
    assert b"Retry-After: 1\r\n" in response
    assert response.endswith(b"too many connections, retry later\n")
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.2)
    assert (await exchange(port, PROBE)).startswith(b"HTTP/1.1 200 OK\r\n")
