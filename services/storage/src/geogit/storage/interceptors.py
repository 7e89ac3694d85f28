"""Wraps every RPC once: token check, correlation id, error-to-status mapping, metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from geogit.common.logging import CORRELATION_METADATA_KEY, bound_correlation_id
from geogit.common.paths import InvalidPathError
from geogit.common.tokens import HOOKS_AUDIENCE, STORAGE_AUDIENCE, TokenError, verify_token
from geogit.storage.errors import StorageError
from geogit.storage.git import GitError

log = logging.getLogger(__name__)

RPC_TOTAL = Counter("geogit_storage_rpc_total", "RPCs handled", ["method", "code"])
RPC_SECONDS = Histogram("geogit_storage_rpc_seconds", "RPC duration", ["method"])

# Probes must work without a token.
_UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_HOOK_SERVICE_PREFIX = "/geogit.storage.v1.HookService/"


def _status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, StorageError):
        return exc.code, str(exc)
    if isinstance(exc, InvalidPathError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, GitError):
        return grpc.StatusCode.INTERNAL, str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}"


class StorageInterceptor(grpc.aio.ServerInterceptor):
    """Hooks present a token for HookService only; everyone else a storage token."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(_UNAUTHENTICATED_PREFIXES):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        audience = HOOKS_AUDIENCE if method.startswith(_HOOK_SERVICE_PREFIX) else STORAGE_AUDIENCE
        denial = self._authenticate(metadata.get("authorization"), audience)
        return _wrap(handler, method, metadata.get(CORRELATION_METADATA_KEY), denial)

    def _authenticate(self, header: str | bytes | None, audience: str) -> str | None:
        if isinstance(header, bytes):
            header = header.decode(errors="replace")
        if not header:
            return "missing storage token (authorization metadata)"
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "authorization metadata must be 'Bearer <token>'"
        max_ttl = 24 * 3600 if audience == HOOKS_AUDIENCE else 60
        try:
            verify_token(token, self._secret, audience, max_ttl_seconds=max_ttl)
        except TokenError as exc:
            return f"storage token rejected: {exc}"
        return None


def _wrap(
    handler: grpc.RpcMethodHandler, method: str, correlation: Any, denial: str | None
) -> grpc.RpcMethodHandler:
    correlation_id = correlation.decode() if isinstance(correlation, bytes) else correlation
    name = method.rsplit("/", 1)[-1]

    async def guard(context: grpc.aio.ServicerContext) -> None:
        if denial is not None:
            RPC_TOTAL.labels(name, grpc.StatusCode.UNAUTHENTICATED.name).inc()
            log.warning("rpc refused", extra={"method": name, "reason": denial})
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, denial)

    async def fail(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
        code, message = _status_for(exc)
        RPC_TOTAL.labels(name, code.name).inc()
        level = logging.ERROR if code == grpc.StatusCode.INTERNAL else logging.INFO
        log.log(
            level,
            "rpc failed",
            extra={"method": name, "code": code.name, "error": message},
            exc_info=code == grpc.StatusCode.INTERNAL,
        )
        await context.abort(code, message)

    def done(started: float) -> None:
        RPC_TOTAL.labels(name, "OK").inc()
        RPC_SECONDS.labels(name).observe(time.monotonic() - started)

    if handler.response_streaming:
        behavior = handler.unary_stream or handler.stream_stream

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            with bound_correlation_id(correlation_id):
                await guard(context)
                started = time.monotonic()
                try:
                    async for response in behavior(request, context):
                        yield response
                except (StorageError, InvalidPathError, GitError) as exc:
                    await fail(context, exc)
                done(started)

        factory = (
            grpc.unary_stream_rpc_method_handler
            if handler.unary_stream
            else grpc.stream_stream_rpc_method_handler
        )
        return factory(streaming, handler.request_deserializer, handler.response_serializer)

    behavior = handler.unary_unary or handler.stream_unary

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        with bound_correlation_id(correlation_id):
            await guard(context)
            started = time.monotonic()
            try:
                response = await behavior(request, context)
            except (StorageError, InvalidPathError, GitError) as exc:
                await fail(context, exc)
            done(started)
            return response

    factory = (
        grpc.unary_unary_rpc_method_handler
        if handler.unary_unary
        else grpc.stream_unary_rpc_method_handler
    )
    return factory(unary, handler.request_deserializer, handler.response_serializer)
