"""The Unix socket storage's hook client calls back on during a push (hook_client.py).

A local socket rather than gRPC keeps the hook free of heavy imports. The socket lives in a
directory only storage's user can enter (0700) and is itself 0600; on top of that every call
carries this storage process's hook token in its payload, so only a git process this storage
started can speak for a push. Every way a call can be wrong ends in an EXIT 1 with a message
for the pusher, which refuses the push.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from geogit.common.logging import adopt_correlation_id
from geogit.common.proto.storage.v1 import shared_pb2
from geogit.storage.errors import StorageError
from geogit.storage.hook_client import (
    EXIT,
    FRAME,
    HEADER,
    MAX_FRAME_BYTES,
    STDERR,
    STDIN,
    encode_frame,
    failure_message,
)
from geogit.storage.hook_service import Frame, HookCall, HookService
from geogit.storage.hooks import CALLBACK_HOOKS, HooksPayload
from geogit.storage.locator import RepositoryLocator

log = logging.getLogger(__name__)
SOCKET_NAME = "hooks.sock"
MAX_CHANGES_BYTES = 64 * 1024 * 1024
# git writes the ref changes to the hook as soon as it starts it.
REQUEST_TIMEOUT_SECONDS = 60.0
HEADER_FIELDS = {
    "hook": str,
    "args": list,
    "payload": str,
    "object_directory": str,
    "alternate_object_directories": list,
    "push_options": list,
}


class BadHookCall(Exception):
    """The hook's request cannot be served; the message goes to the pusher."""


class HookServer:
    def __init__(
        self, socket_dir: Path | None, locator: RepositoryLocator, service: HookService
    ) -> None:
        self._own_dir = socket_dir is None
        self.socket_dir = socket_dir or Path(tempfile.mkdtemp(prefix="geogit-hooks-"))
        self.socket_path = self.socket_dir / SOCKET_NAME
        self.token = secrets.token_urlsafe(32)
        self._locator = locator
        self._service = service
        self._server: asyncio.Server | None = None
        self._calls: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.chmod(0o700)
        self.socket_path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=self.socket_path)
        self.socket_path.chmod(0o600)

    async def stop(self, grace_seconds: float) -> None:
        """No new calls; running ones (a post-receive recording its push) get the grace, then
        are cancelled, which refuses their push. Before the internal API client closes."""
        if self._server is not None:
            self._server.close()
        if self._calls:
            _, running = await asyncio.wait(self._calls, timeout=grace_seconds)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self.socket_path.unlink(missing_ok=True)
        if self._own_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._calls.add(task)
        try:
            await self._handle(reader, writer)
        finally:
            self._calls.discard(task)
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hook = "pre-receive"
        try:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                    header = await self._read_header(reader)
                    hook = header["hook"]
                    call = self._call(header, await _read_stdin(reader))
            except TimeoutError:
                raise BadHookCall("the hook sent its request too slowly") from None
            await _answer(writer, self._service.run(call))
        except (BadHookCall, StorageError) as exc:
            await _answer(writer, _refusal(hook, str(exc)))
        except (ConnectionError, asyncio.IncompleteReadError):
            log.warning("hook connection lost")
        except Exception:
            log.exception("hook call failed")
            await _answer(writer, _refusal(hook, "storage could not run the hook"))

    async def _read_header(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        kind, data = await _read_frame(reader)
        if kind != HEADER:
            raise BadHookCall("the hook call does not start with its header")
        try:
            header = json.loads(data)
        except ValueError as exc:
            raise BadHookCall(f"unreadable hook header: {exc}") from exc
        if not isinstance(header, dict) or set(header) != set(HEADER_FIELDS):
            raise BadHookCall(f"the hook header must have exactly {sorted(HEADER_FIELDS)}")
        for name, kind_of in HEADER_FIELDS.items():
            if not isinstance(header[name], kind_of):
                raise BadHookCall(f"hook header field {name!r} has the wrong type")
        if header["hook"] not in CALLBACK_HOOKS:
            raise BadHookCall(f"unknown hook {header['hook']!r}")
        return header

    def _call(self, header: dict[str, Any], stdin: bytes) -> HookCall:
        try:
            payload = HooksPayload.decode(header["payload"])
        except ValueError as exc:
            raise BadHookCall(str(exc)) from exc
        if not hmac.compare_digest(payload.token.encode(), self.token.encode()):
            raise BadHookCall("the hook's token is not this storage's")
        adopt_correlation_id(payload.correlation_id)
        repository = self._locator.existing(
            shared_pb2.Repository(
                storage_name=payload.repository.storage_name,
                relative_path=payload.repository.relative_path,
            )
        )
        directories = [header["object_directory"], *header["alternate_object_directories"]]
        options = header["push_options"]
        if not all(isinstance(item, str) for item in (*directories, *options)):
            raise BadHookCall("object directories and push options must be strings")
        return HookCall(
            hook=header["hook"],
            payload=payload,
            repository=repository,
            object_directories=directories if header["object_directory"] else [],
            push_options=options,
            changes=stdin.decode(errors="replace"),
        )


async def _read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    kind, size = FRAME.unpack(await reader.readexactly(FRAME.size))
    if size > MAX_FRAME_BYTES:
        raise BadHookCall(f"hook frame of {size} bytes is over the {MAX_FRAME_BYTES} limit")
    return kind, await reader.readexactly(size)


async def _read_stdin(reader: asyncio.StreamReader) -> bytes:
    data = bytearray()
    while True:
        kind, chunk = await _read_frame(reader)
        if kind != STDIN:
            raise BadHookCall(f"unexpected hook frame {kind!r} in the hook's input")
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > MAX_CHANGES_BYTES:
            raise BadHookCall("too many ref changes in one push")


async def _refusal(hook: str, reason: str) -> AsyncIterator[Frame]:
    yield STDERR, f"{failure_message(hook, reason)}\n".encode()
    yield EXIT, b"1"


async def _answer(writer: asyncio.StreamWriter, frames: AsyncIterator[Frame]) -> None:
    async for kind, data in frames:
        writer.write(encode_frame(kind, data))
        await writer.drain()
