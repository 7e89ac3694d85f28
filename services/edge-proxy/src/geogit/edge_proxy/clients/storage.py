"""Storage's SmartHTTPService, called over one cached grpc.aio channel per storage address.

Request bodies go out with back-pressure: the next chunk is not read from the client before
the previous one was handed to gRPC. Responses come back a message at a time and are yielded
as they arrive, so memory does not grow with the size of a pack in either direction.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import grpc

from geogit.common.git_commands import HTTP_COMMANDS, HttpService
from geogit.common.internal_api import GitHttpServe
from geogit.common.proto.storage.v1 import (
    repository_pb2,
    repository_pb2_grpc,
    shared_pb2,
    smarthttp_pb2,
    smarthttp_pb2_grpc,
)
from geogit.common.storage_client import ChannelPool, storage_metadata


class StorageCallError(Exception):
    """A storage RPC failed; `code` and `details` are what storage said."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


def _repository(serve: GitHttpServe) -> shared_pb2.Repository:
    ref = serve.repository
    return shared_pb2.Repository(
        storage_name=ref.storage_name,
        relative_path=ref.relative_path,
        gl_repository=ref.gl_repository,
        gl_project_path=ref.gl_project_path,
    )


class StorageClient:
    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._channels = ChannelPool()

    def _channel(self, address: str) -> grpc.aio.Channel:
        return self._channels.get(address)

    def _stub(self, address: str) -> smarthttp_pb2_grpc.SmartHTTPServiceStub:
        return smarthttp_pb2_grpc.SmartHTTPServiceStub(self._channel(address))

    async def missing_objects(self, serve: GitHttpServe, object_ids: list[str]) -> list[str]:
        """The ids of `object_ids` the repository lacks (the wants check)."""
        stub = repository_pb2_grpc.RepositoryServiceStub(self._channel(serve.storage.address))
        request = repository_pb2.HasObjectsRequest(
            repository=_repository(serve), object_ids=object_ids
        )
        try:
            response = await stub.HasObjects(
                request, metadata=storage_metadata(serve.storage.token), timeout=30
            )
        except grpc.aio.AioRpcError as exc:
            raise StorageCallError(exc.code(), exc.details() or "") from exc
        return list(response.missing)

    async def aclose(self) -> None:
        await self._channels.close()

    async def info_refs(
        self, serve: GitHttpServe, service: HttpService, git_protocol: str
    ) -> AsyncGenerator[bytes, None]:
        stub = self._stub(serve.storage.address)
        method = getattr(stub, HTTP_COMMANDS[service].info_refs_rpc)
        request = smarthttp_pb2.InfoRefsRequest(
            repository=_repository(serve), git_protocol=git_protocol
        )
        call = method(
            request, metadata=storage_metadata(serve.storage.token), timeout=self._timeout
        )
        try:
            async for response in call:
                yield response.data
        except grpc.aio.AioRpcError as exc:
            raise StorageCallError(exc.code(), exc.details() or "") from exc
        finally:
            call.cancel()

    def post(
        self,
        serve: GitHttpServe,
        service: HttpService,
        git_protocol: str,
        body: AsyncIterator[bytes],
    ) -> AsyncGenerator[bytes, None]:
        """The service's Post RPC (PostUploadPack, ...); errors raised by `body` come out
        unchanged. Its messages are `<rpc>Request`, as the proto names them."""
        command = HTTP_COMMANDS[service]
        method = getattr(self._stub(serve.storage.address), command.post_rpc)
        message_type = getattr(smarthttp_pb2, f"{command.post_rpc}Request")
        first_fields: dict[str, Any] = {"repository": _repository(serve)}
        if "git_protocol" in command.first_request:
            first_fields["git_protocol"] = git_protocol
        if "user" in command.first_request:
            first_fields["user"] = shared_pb2.User(
                gl_id=serve.gl_id, gl_username=serve.gl_username, protocol="http"
            )
        start = functools.partial(
            method, metadata=storage_metadata(serve.storage.token), timeout=self._timeout
        )
        return _exchange(start, message_type(**first_fields), message_type, body)


async def _exchange(
    start: Callable[[], Any], first: Any, message_type: Any, body: AsyncIterator[bytes]
) -> AsyncGenerator[bytes, None]:
    """Write `body` into a stream-stream call while yielding its responses.

    A failing body (client gone, bad gzip) cancels the call, so storage kills git before it
    acts on a truncated request, and its exception is raised here in place of the
    cancellation it causes.
    """
    call = start()
    body_failure: list[Exception] = []

    async def write() -> None:
        try:
            await call.write(first)
            async for chunk in body:
                await call.write(message_type(data=chunk))
            await call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return  # the call has ended; the reader gets its status
        except Exception as exc:
            body_failure.append(exc)
            call.cancel()

    writer = asyncio.create_task(write())
    try:
        while (response := await call.read()) is not grpc.aio.EOF:
            yield response.data
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if body_failure and not (task is not None and task.cancelling()):
            raise body_failure[0] from None
        raise
    except grpc.aio.AioRpcError as exc:
        raise StorageCallError(exc.code(), exc.details() or "") from exc
    finally:
        call.cancel()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
