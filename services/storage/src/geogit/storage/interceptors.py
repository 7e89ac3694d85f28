"""Wraps every RPC once: token check, request decoding, correlation id, error-to-status
mapping, metrics.

The token is checked before a single request byte is decoded: a refused call gets a handler
that never deserialises anything. Request bytes that do not decode are the caller's fault
(INVALID_ARGUMENT), not an unexpected exception inside grpc.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from geogit.common.logging import CORRELATION_METADATA_KEY, adopt_correlation_id
from geogit.common.paths import InvalidPathError
from geogit.common.tokens import STORAGE_AUDIENCE, TokenError, verify_token
from geogit.storage.errors import InvalidArgument, StorageError
from geogit.storage.git import GitError, GitProtocolError
from geogit.storage.metrics import StorageMetrics

log = logging.getLogger(__name__)

# Probes must work without a token.
_UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# An SSH session's client keeps its input open until it has heard the end.
_INTERACTIVE_PREFIX = "/geogit.storage.v1.SSHService/"
_HANDLED = (StorageError, InvalidPathError, GitError)
_UNDECODABLE = object()


def _status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, StorageError):
        return exc.code, str(exc)
    if isinstance(exc, InvalidPathError | GitProtocolError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, GitError):
        return grpc.StatusCode.INTERNAL, str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}"


class StorageInterceptor(grpc.aio.ServerInterceptor):
    """Every caller presents a storage token (the hooks call back over their own socket)."""

    def __init__(self, secret: str, metrics: StorageMetrics | None = None) -> None:
        self._secret = secret
        self._metrics = metrics or StorageMetrics()

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
        denial = self._authenticate(metadata.get("authorization"))
        call = _Call(method, metadata.get(CORRELATION_METADATA_KEY), denial, self._metrics)
        call.drains = handler.request_streaming and not method.startswith(_INTERACTIVE_PREFIX)
        return _wrap(handler, call)

    def _authenticate(self, header: str | bytes | None) -> str | None:
        if isinstance(header, bytes):
            header = header.decode(errors="replace")
        if not header:
            return "missing storage token (authorization metadata)"
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "authorization metadata must be 'Bearer <token>'"
        try:
            verify_token(token, self._secret, STORAGE_AUDIENCE)
        except TokenError as exc:
            return f"storage token rejected: {exc}"
        return None


class _Call:
    """One RPC's identity, its refusal if any, and its request decoding.

    grpc turns an exception from a deserializer into UNKNOWN "Unexpected DecodeError" with a
    traceback, so `decode` never raises: it keeps the failure, and the call ends with it.
    """

    def __init__(
        self, method: str, correlation: Any, denial: str | None, metrics: StorageMetrics
    ) -> None:
        self.name = method.rsplit("/", 1)[-1]
        self._metrics = metrics
        if isinstance(correlation, bytes):
            correlation = correlation.decode(errors="replace")
        self.correlation_id: str | None = correlation
        self.denial = denial
        self.decode_error: InvalidArgument | None = None
        # Read the rest of a finished call's request stream before its status goes out: a
        # grpc.aio client whose write fails replaces the status it was about to receive with
        # INTERNAL "Internal error from Core", and the edge would answer 502 for a 400.
        self.drains = False

    def decoder(self, deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
        def decode(raw: bytes) -> Any:
            if deserializer is None:
                return raw
            try:
                return deserializer(raw)
            except DecodeError as exc:
                self.decode_error = InvalidArgument(
                    f"{self.name}: the request message could not be decoded ({exc})"
                )
                return _UNDECODABLE

        return decode

    async def messages(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """The decoded request stream; it raises at the first undecodable message."""
        count = 0
        async for request in requests:
            if request is _UNDECODABLE:
                assert self.decode_error is not None
                raise self.decode_error
            count += 1
            yield request
        if not count:
            raise InvalidArgument(f"{self.name}: the request stream carried no message")

    def request(self, request: Any) -> Any:
        if request is _UNDECODABLE:
            assert self.decode_error is not None
            raise self.decode_error
        return request

    async def drain(self, requests: Any) -> None:
        if not self.drains:
            return
        self.drains = False
        with contextlib.suppress(Exception):
            async for _ in requests:
                pass

    async def start(self, context: grpc.aio.ServicerContext) -> float:
        adopt_correlation_id(self.correlation_id)
        if self.denial is not None:
            self._metrics.rpc_total.labels(self.name, grpc.StatusCode.UNAUTHENTICATED.name).inc()
            log.warning("rpc refused", extra={"method": self.name, "reason": self.denial})
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, self.denial)
        return time.monotonic()

    async def fail(self, context: grpc.aio.ServicerContext, exc: BaseException) -> None:
        # A request that did not decode explains whatever failed after it.
        code, message = _status_for(self.decode_error or exc)
        self._metrics.rpc_total.labels(self.name, code.name).inc()
        level = logging.ERROR if code == grpc.StatusCode.INTERNAL else logging.INFO
        log.log(
            level,
            "rpc failed",
            extra={"method": self.name, "code": code.name, "error": message},
            exc_info=code == grpc.StatusCode.INTERNAL,
        )
        await context.abort(code, message)

    async def done(self, context: grpc.aio.ServicerContext, started: float) -> None:
        if self.decode_error is not None:
            await self.fail(context, self.decode_error)
        self._metrics.rpc_total.labels(self.name, "OK").inc()
        self._metrics.rpc_seconds.labels(self.name).observe(time.monotonic() - started)


def _wrap(handler: grpc.RpcMethodHandler, call: _Call) -> grpc.RpcMethodHandler:
    # A refused call decodes nothing: its behaviour aborts before reading a message.
    deserializer = call.decoder(None if call.denial else handler.request_deserializer)

    def requests(request: Any) -> Any:
        return call.messages(request) if handler.request_streaming else call.request(request)

    if handler.response_streaming:
        behavior = handler.unary_stream or handler.stream_stream

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            # No context manager around the yields: see adopt_correlation_id.
            started = await call.start(context)
            try:
                async for response in behavior(requests(request), context):
                    yield response
            except _HANDLED as exc:
                await call.drain(request)
                await call.fail(context, exc)
            await call.drain(request)
            await call.done(context, started)

        factory = (
            grpc.unary_stream_rpc_method_handler
            if handler.unary_stream
            else grpc.stream_stream_rpc_method_handler
        )
        return factory(streaming, deserializer, handler.response_serializer)

    behavior = handler.unary_unary or handler.stream_unary

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = await call.start(context)
        try:
            response = await behavior(requests(request), context)
        except _HANDLED as exc:
            await call.fail(context, exc)
        await call.done(context, started)
        return response

    factory = (
        grpc.unary_unary_rpc_method_handler
        if handler.unary_unary
        else grpc.stream_unary_rpc_method_handler
    )
    return factory(unary, deserializer, handler.response_serializer)
