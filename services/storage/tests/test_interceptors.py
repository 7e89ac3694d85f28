"""The interceptor's wrapping of a streaming RPC, driven in process as grpc.aio drives it."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import grpc

from geogit.common.logging import get_correlation_id
from geogit.common.tokens import STORAGE_AUDIENCE, issue_token
from geogit.storage.interceptors import StorageInterceptor
from geogit.storage.testing import STORAGE_SECRET


class _CallDetails(NamedTuple):
    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


async def _responses(request: Any, context: Any) -> AsyncIterator[str]:
    yield get_correlation_id()
    yield "second"


async def _wrapped_streaming() -> Any:
    token = issue_token(STORAGE_SECRET, "tests", STORAGE_AUDIENCE)
    details = _CallDetails(
        "/geogit.storage.v1.SSHService/SSHUploadPack",
        (("authorization", f"Bearer {token}"), ("x-request-id", "caller-id")),
    )

    async def continuation(_: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return grpc.unary_stream_rpc_method_handler(_responses)

    handler = await StorageInterceptor(STORAGE_SECRET).intercept_service(continuation, details)
    return handler.unary_stream


async def test_a_stream_abandoned_after_one_message_closes_in_any_context() -> None:
    """grpc stops iterating when the client goes (an SSH client closing after the ref
    advertisement); the suspended generator is then finalised by another task, in another
    Context. Resetting the correlation id there raised ValueError ("created in a different
    Context")."""
    behavior = await _wrapped_streaming()
    responses = behavior(b"", None)
    first = await asyncio.create_task(anext(responses))
    assert first == "caller-id"
    finaliser = asyncio.create_task(responses.aclose(), context=contextvars.Context())
    await finaliser
    assert get_correlation_id() == ""
