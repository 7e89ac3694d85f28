"""The guarded h11 listener, served by a real uvicorn on a free port and spoken to over raw
sockets, as a slow or hostile client would."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn

from geogit.common.http_listener import ListenerLimits, uvicorn_options

LIMITS = ListenerLimits(
    header_timeout=1.0,
    body_idle_timeout=1.0,
    keep_alive=5.0,
    max_connections=4,
    max_head_bytes=4096,
)
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Says how many body bytes it read."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = f"read {size}\n".encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def serving() -> AsyncIterator[int]:
    """A uvicorn with the guarded listener; its socket is bound (and so accepts) at once."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, lifespan="off", **uvicorn_options(LIMITS)
    )
    sock = config.bind_socket()
    sock.listen()
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async with serving() as port:
        yield port


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def answer(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), timeout)


async def test_a_normal_request_is_served_and_kept_alive(port: int) -> None:
    reader, writer = await connect(port)
    for _ in range(2):
        writer.write(REQUEST)
        head = await asyncio.wait_for(reader.readuntil(b"read 0\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ")
    writer.close()


async def test_a_half_sent_head_gets_408_after_the_head_timeout(port: int) -> None:
    started = time.monotonic()
    reader, writer = await connect(port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    response = await answer(reader)
    elapsed = time.monotonic() - started
    assert response.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), response
    assert response.endswith(b"The request head took too long.\n")
    assert b"Connection: close" in response
    assert LIMITS.header_timeout - 0.1 <= elapsed < LIMITS.header_timeout + 2


async def test_a_head_sent_a_byte_at_a_time_still_times_out(port: int) -> None:
    """Slowloris: bytes keep coming, but the head never completes within the timeout."""
    reader, writer = await connect(port)
    started = time.monotonic()
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaa":
        if reader.at_eof() or time.monotonic() - started > LIMITS.header_timeout + 0.5:
            break
        writer.write(bytes([byte]))
        await asyncio.sleep(0.1)
    response = await answer(reader)
    assert response.startswith(b"HTTP/1.1 408 "), response
    assert time.monotonic() - started < LIMITS.header_timeout + 2


async def test_a_silent_connection_is_closed_without_an_answer(port: int) -> None:
    reader, _ = await connect(port)
    started = time.monotonic()
    assert await answer(reader) == b""
    assert time.monotonic() - started < LIMITS.header_timeout + 2


async def test_a_keep_alive_connection_then_a_half_head_gets_408(port: int) -> None:
    reader, writer = await connect(port)
    writer.write(REQUEST)
    await asyncio.wait_for(reader.readuntil(b"read 0\n"), 5)
    writer.write(b"GET / HTTP/1.1\r\n")
    response = await answer(reader)
    assert response.startswith(b"HTTP/1.1 408 "), response


async def test_a_body_that_stops_ends_the_connection(port: int) -> None:
    reader, writer = await connect(port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
    started = time.monotonic()
    assert await answer(reader) == b""
    assert LIMITS.body_idle_timeout <= time.monotonic() - started < LIMITS.body_idle_timeout + 2


async def test_a_slow_but_steady_body_is_read_whole(port: int) -> None:
    reader, writer = await connect(port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
    for _ in range(6):  # 1.8 s in all: longer than the idle timeout, never idle that long
        await asyncio.sleep(0.3)
        writer.write(b"x")
    response = await asyncio.wait_for(reader.readuntil(b"read 6\n"), 5)
    assert response.startswith(b"HTTP/1.1 200 ")
    writer.close()


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n",
        b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(800)) + b"\r\n",
    ],
    ids=["one-big-header", "long-url", "many-headers"],
)
async def test_an_oversized_head_gets_431(port: int, head: bytes) -> None:
    reader, writer = await connect(port)
    writer.write(head)
    response = await answer(reader)
    assert response.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), response
    assert response.endswith(b"The request head is larger than 4096 bytes.\n")


async def test_a_malformed_head_is_still_400(port: int) -> None:
    reader, writer = await connect(port)
    writer.write(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
    response = await answer(reader)
    assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n"), response


async def test_connections_beyond_the_cap_get_503_with_retry_after(port: int) -> None:
    held = [await connect(port) for _ in range(LIMITS.max_connections)]
    await asyncio.sleep(0.1)
    reader, writer = await connect(port)
    writer.write(REQUEST)
    response = await answer(reader)
    assert response.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), response
    assert b"Retry-After: 1\r\n" in response
    assert response.endswith(b"Too many connections to this server, retry later.\n")
    for _, held_writer in held:
        held_writer.close()
    await asyncio.sleep(0.2)
    reader, writer = await connect(port)
    writer.write(REQUEST)
    assert (await asyncio.wait_for(reader.readuntil(b"read 0\n"), 5)).startswith(b"HTTP/1.1 200")
    writer.close()


async def test_a_refusal_arrives_though_the_client_still_sends() -> None:
    """Lingering close: the 431 is read by a client that has not finished sending its head."""

    def blocking_client() -> bytes:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 200_000)
            sock.settimeout(5)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
            return received

    async with serving() as port:
        response = await asyncio.to_thread(blocking_client)
    assert response.startswith(b"HTTP/1.1 431 "), response
