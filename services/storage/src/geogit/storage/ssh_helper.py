"""geogit-storage-ssh: a GIT_SSH_COMMAND that reaches a storage's SSHService without SSH.

gitaly-ssh's role. git runs it as it would run ssh ("<helper> [options] host 'git-upload-pack
<path>'"); it opens the matching RPC on the storage named in GEOGIT_SSH_PAYLOAD and relays
stdin, stdout, stderr and the exit status. Storage uses it to fetch from another storage, and
tests use it to drive storage with the real git client:

    GIT_SSH_COMMAND=geogit-storage-ssh GIT_SSH_VARIANT=ssh \
    GEOGIT_SSH_PAYLOAD='{"address": "127.0.0.1:9999", "token": "..."}' \
    git clone geogit-storage:@hashed/ab/cd/abcd....git
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shlex
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

import grpc

from geogit.common import git_ssh
from geogit.common.git_commands import SSH_COMMANDS, GitCommandSpec, joined_spelling
from geogit.common.logging import bound_correlation_id
from geogit.common.proto.storage.v1 import shared_pb2
from geogit.common.storage_client import aio_channel, storage_metadata

SSH_PAYLOAD_ENV = "GEOGIT_SSH_PAYLOAD"
CHUNK_SIZE = 64 * 1024
# Pack data arrives in 256 KiB messages; a pipe of Linux's default 64 KiB takes each in four
# writes, each a wake-up of git's index-pack. 1 MiB is the unprivileged maximum.
PIPE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class SshPayload:
    """GEOGIT_SSH_PAYLOAD. A dataclass, not pydantic: the helper starts once per git command
    and every import is felt (DESIGN §9: fixed per-operation costs)."""

    address: str
    token: str
    storage_name: str = ""
    # Defaults to the path in git's command line.
    relative_path: str = ""
    gl_repository: str = ""
    gl_project_path: str = ""
    gl_id: str = ""
    gl_username: str = ""
    correlation_id: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SshPayload:
        try:
            payload = cls(**json.loads(text))
        except (ValueError, TypeError) as exc:
            raise UsageError(f"invalid {SSH_PAYLOAD_ENV}: {exc}") from exc
        if not all(isinstance(value, str) for value in asdict(payload).values()):
            raise UsageError(f"invalid {SSH_PAYLOAD_ENV}: every field must be a string")
        return payload


class UsageError(Exception):
    pass


def parse_command(argv: list[str]) -> tuple[GitCommandSpec, str]:
    """The command and repository path from ssh-style arguments; options and host are ignored."""
    if not argv:
        raise UsageError("no command given")
    words = joined_spelling(shlex.split(argv[-1]))
    command = SSH_COMMANDS.get(words[0]) if len(words) == 2 else None
    if command is None:
        raise UsageError(f"unsupported command: {argv[-1]!r}")
    return command, words[1].lstrip("/")


def _first_request(command: GitCommandSpec, payload: SshPayload, path: str) -> Any:
    return git_ssh.first_request(
        command,
        shared_pb2.Repository(
            storage_name=payload.storage_name,
            relative_path=payload.relative_path or path,
            gl_repository=payload.gl_repository,
            gl_project_path=payload.gl_project_path,
        ),
        os.environ.get("GIT_PROTOCOL", ""),
        shared_pb2.User(gl_id=payload.gl_id, gl_username=payload.gl_username, protocol="ssh"),
    )


def _read_stdin(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes]) -> None:
    """Runs in a daemon thread: a read blocked on stdin must not keep the helper alive."""
    while True:
        chunk = os.read(0, CHUNK_SIZE)
        asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
        if not chunk:
            return


async def _requests(command: GitCommandSpec, first: Any) -> AsyncIterator[Any]:
    make = git_ssh.request_type(command)
    yield first
    queue: asyncio.Queue[bytes] = asyncio.Queue(4)
    reader = threading.Thread(
        target=_read_stdin, args=(asyncio.get_running_loop(), queue), daemon=True
    )
    reader.start()
    while chunk := await queue.get():
        yield make(stdin=chunk)
    yield make(stdin_eof=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class StdoutPipe:
    """stdout as an asyncio pipe when it is one: no thread hand-off per message."""

    def __init__(self, writer: asyncio.StreamWriter | None) -> None:
        self._writer = writer

    @classmethod
    async def open(cls) -> StdoutPipe:
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.connect_write_pipe(
                asyncio.streams.FlowControlMixin, os.fdopen(1, "wb", buffering=0, closefd=False)
            )
        except ValueError:  # a regular file: plain blocking writes in a thread
            return cls(None)
        with contextlib.suppress(OSError):
            fcntl.fcntl(1, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        return cls(asyncio.StreamWriter(transport, protocol, None, loop))

    async def write(self, data: bytes) -> None:
        if self._writer is None:
            await asyncio.get_running_loop().run_in_executor(None, _write_all, 1, data)
            return
        self._writer.write(data)
        await self._writer.drain()

    async def flush(self) -> None:
        """Wait until the pipe took every byte: `drain()` returns with up to the high-water
        mark still buffered, and whatever is buffered when the loop closes is lost, which git
        sees as a pack cut short. A reader that already closed its end (git after a push's
        report) wants nothing more, so that is not an error."""
        if self._writer is None:
            return
        self._writer.transport.set_write_buffer_limits(high=0)
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()


async def relay(command: GitCommandSpec, payload: SshPayload, path: str) -> int:
    loop = asyncio.get_running_loop()
    stdout = await StdoutPipe.open()
    async with aio_channel(payload.address) as channel:
        call = git_ssh.start_call(
            channel,
            command,
            _requests(command, _first_request(command, payload, path)),
            storage_metadata(payload.token),
        )
        async for response in call:
            if response.stdout:
                await stdout.write(response.stdout)
            if response.stderr:
                await loop.run_in_executor(None, _write_all, 2, response.stderr)
            if response.HasField("exit_status"):
                # The last message: our stdin may still be open, so end the call here.
                call.cancel()
                await stdout.flush()
                return int(response.exit_status.value)
        await stdout.flush()
        return 1


def main() -> int:
    try:
        command, path = parse_command(sys.argv[1:])
        payload = SshPayload.from_json(os.environ.get(SSH_PAYLOAD_ENV, ""))
    except UsageError as exc:
        print(f"geogit-storage-ssh: {exc}", file=sys.stderr)
        return 2
    try:
        with bound_correlation_id(payload.correlation_id or None):
            return asyncio.run(relay(command, payload, path))
    except grpc.aio.AioRpcError as exc:
        print(f"geogit-storage-ssh: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
