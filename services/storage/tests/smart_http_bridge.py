"""A minimal smart-HTTP front for storage's SmartHTTPService, so tests can drive it with the
real git client over HTTP (the edge-proxy plays this role in the product)."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from geogit.common.net import free_port
from geogit.common.proto.storage.v1 import shared_pb2, smarthttp_pb2, smarthttp_pb2_grpc
from geogit.common.storage_client import aio_channel, storage_metadata


class SmartHttpBridge:
    """Plain ASGI: request and response bodies must stream at the same time, which
    Starlette's StreamingResponse does not allow (it reads the request while responding)."""

    def __init__(self, address: str, token: Callable[[], str], storage_name: str) -> None:
        self.address = address
        self.token = token
        self.storage_name = storage_name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app, host="127.0.0.1", port=self.port, interface="asgi3", log_level="warning"
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "bridge did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)

    async def app(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        query = parse_qs(scope["query_string"].decode())
        git_protocol = headers.get("git-protocol", "")
        route = next(
            (
                (suffix, rpc)
                for suffix, rpc in _ROUTES.items()
                if path.endswith(suffix) and scope["method"] == ("GET" if rpc == "info" else "POST")
            ),
            None,
        )
        if route is None:
            await _respond(send, 404, "text/plain", [b"not found\n"])
            return
        suffix, rpc = route
        repo = shared_pb2.Repository(
            storage_name=self.storage_name,
            relative_path=path[1 : -len(suffix)],
            gl_repository="project-1",
            gl_project_path="group/project",
        )
        metadata = storage_metadata(self.token())
        async with aio_channel(self.address) as channel:
            stub = smarthttp_pb2_grpc.SmartHTTPServiceStub(channel)
            if rpc == "info":
                service = query.get("service", [""])[0]
                method = {
                    "git-upload-pack": stub.InfoRefsUploadPack,
                    "git-receive-pack": stub.InfoRefsReceivePack,
                }.get(service)
                if method is None:
                    await _respond(send, 403, "text/plain", [b"dumb HTTP is not supported\n"])
                    return
                call = method(
                    smarthttp_pb2.InfoRefsRequest(repository=repo, git_protocol=git_protocol),
                    metadata=metadata,
                )
                content_type = f"application/x-{service}-advertisement"
            else:
                message = (
                    smarthttp_pb2.PostUploadPackRequest
                    if rpc == "upload"
                    else smarthttp_pb2.PostReceivePackRequest
                )
                first: dict[str, Any] = {"repository": repo, "git_protocol": git_protocol}
                if rpc == "receive":
                    first["user"] = shared_pb2.User(
                        gl_id="user-1", gl_username="alice", protocol="http"
                    )

                async def requests() -> AsyncIterator[Any]:
                    yield message(**first)
                    async for chunk in _body(receive, headers.get("content-encoding") == "gzip"):
                        yield message(data=chunk)

                method = stub.PostUploadPack if rpc == "upload" else stub.PostReceivePack
                call = method(requests(), metadata=metadata)
                service = "git-upload-pack" if rpc == "upload" else "git-receive-pack"
                content_type = f"application/x-{service}-result"
            await _respond(send, 200, content_type, (r.data async for r in call))


_ROUTES = {"/info/refs": "info", "/git-upload-pack": "upload", "/git-receive-pack": "receive"}
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _respond(
    send: Send, status: int, content_type: str, chunks: AsyncIterable[bytes] | list[bytes]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode()), (b"cache-control", b"no-cache")],
        }
    )
    if isinstance(chunks, list):
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    else:
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _body(receive: Receive, gzipped: bool) -> AsyncIterator[bytes]:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield inflater.decompress(chunk) if inflater else chunk
        if not message.get("more_body"):
            if inflater and (rest := inflater.flush()):
                yield rest
            return
