"""Relaying a storage RPC's output to a git client, and what to say when it fails.

The status line is held back until storage's first message arrives, so an RPC that fails at
once (repository missing, malformed request) still becomes a proper HTTP error that git can
show. Once bytes have gone out the status cannot change. A request git refused part way
(`not our ref`: git's ERR line is out, then the RPC ends INVALID_ARGUMENT) or a body that
turned out bad still gets a complete response: an ERR pkt-line saying why, which git prints
as "remote error", then the normal end. Any other failure leaves the response incomplete and
the connection closed, and git reports a truncated response instead of using half a pack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

import grpc

from geogit.common.logging import get_correlation_id
from geogit.common.pktline import MAX_PKT_PAYLOAD, pkt_line
from geogit.edge_proxy.asgi import (
    TEXT,
    ClientDisconnected,
    Request,
    Send,
    respond,
    send_body,
    start_response,
)
from geogit.edge_proxy.body import BodyError
from geogit.edge_proxy.clients.storage import StorageCallError

log = logging.getLogger(__name__)

# As git http-backend sends them: no cache may keep refs or negotiation results.
NO_CACHE = (
    ("expires", "Fri, 01 Jan 1980 00:00:00 GMT"),
    ("pragma", "no-cache"),
    ("cache-control", "no-cache, max-age=0, must-revalidate"),
)


def storage_error_status(exc: StorageCallError) -> tuple[int, str]:
    """The HTTP status and message for a storage failure that happened before any output."""
    reference = f"(request id {get_correlation_id()})"
    if exc.code == grpc.StatusCode.INVALID_ARGUMENT:
        return 400, exc.details
    if exc.code == grpc.StatusCode.NOT_FOUND:
        return 404, "The repository was not found on storage."
    if exc.code == grpc.StatusCode.UNAVAILABLE:
        return 503, f"Repository storage is unavailable; try again later {reference}"
    if exc.code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return 504, f"Repository storage did not finish in time {reference}"
    return 502, f"Repository storage failed ({exc.code.name}) {reference}"


async def relay(
    request: Request,
    send: Send,
    chunks: AsyncGenerator[bytes, None],
    content_type: str,
    *,
    after_body: bool,
) -> None:
    """Stream `chunks` as a 200 response; `after_body` when producing them reads the body."""
    watcher = asyncio.create_task(request.watch_disconnect(after_body=after_body))
    try:
        async with contextlib.aclosing(chunks):
            try:
                first = await anext(chunks, b"")
            except StorageCallError as exc:
                status, message = storage_error_status(exc)
                request.log.update(outcome="storage_error", error=str(exc))
                await respond(send, status, message + "\n", TEXT, NO_CACHE)
                return
            except BodyError as exc:
                request.log.update(outcome="bad_body", error=str(exc))
                await respond(send, exc.status, f"{exc}\n", TEXT, NO_CACHE)
                return
            except ClientDisconnected as exc:
                request.log.update(outcome="client_gone", error=str(exc))
                return
            await start_response(send, 200, content_type, NO_CACHE)
            await _send_rest(request, send, first, chunks)
    finally:
        watcher.cancel()


async def _send_rest(
    request: Request, send: Send, first: bytes, chunks: AsyncGenerator[bytes, None]
) -> None:
    chunk: bytes | None = first
    try:
        while chunk is not None:
            if chunk:
                await send_body(send, chunk)
            if request.disconnected:
                raise ClientDisconnected("client disconnected during the response")
            chunk = await anext(chunks, None)
    except (StorageCallError, BodyError) as exc:
        if not _refused_request(exc):
            # Returning without the final body message makes uvicorn close the connection.
            request.log.update(outcome="aborted", error=str(exc))
            return
        request.log.update(outcome="refused_in_band", error=str(exc))
        message = exc.details if isinstance(exc, StorageCallError) else str(exc)
        await send_body(send, error_pkt_line(message))
    except ClientDisconnected as exc:
        request.log.update(outcome="aborted", error=str(exc))
        return
    await send_body(send, b"", more=False)


def _refused_request(exc: StorageCallError | BodyError) -> bool:
    return isinstance(exc, BodyError) or exc.code == grpc.StatusCode.INVALID_ARGUMENT


def error_pkt_line(message: str) -> bytes:
    """git's in-band refusal (`ERR <message>`), cut to what one pkt-line holds."""
    payload = f"ERR {message}".encode(errors="replace")
    return pkt_line(payload[:MAX_PKT_PAYLOAD])
