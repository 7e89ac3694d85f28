"""The SSH client's side of one Git command: its stdin, stdout and stderr, with every wait
bounded by the idle timeout, so a stalled client cannot hold a storage RPC or a request to the
primary forever."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncssh

CHUNK_SIZE = 64 * 1024


class ClientIdle(Exception):
    pass


class ClientGone(Exception):
    pass


class SshClient:
    def __init__(
        self,
        process: asyncssh.SSHServerProcess[bytes],
        idle_timeout: float,
        connection_lost: Callable[[], bool],
    ) -> None:
        self._process = process
        self._idle = idle_timeout
        self._connection_lost = connection_lost

    async def read(self) -> bytes:
        """The next chunk of stdin, b"" at a real EOF; a client killed mid-stream sends no
        EOF, only a lost connection, and that is `ClientGone`: half a pack is never applied."""
        while True:
            try:
                chunk = await asyncio.wait_for(self._process.stdin.read(CHUNK_SIZE), self._idle)
            except TimeoutError as exc:
                raise ClientIdle() from exc
            except (asyncssh.BreakReceived, asyncssh.SignalReceived, asyncssh.TerminalSizeChanged):
                continue
            except (asyncssh.Error, ConnectionError) as exc:
                raise ClientGone() from exc
            if chunk:
                return chunk
            await asyncio.sleep(0)  # let a lost connection finish its cleanup first
            if self._connection_lost():
                raise ClientGone()
            return b""

    async def _write(self, writer: asyncssh.SSHWriter[bytes], data: bytes) -> None:
        writer.write(data)
        try:
            await asyncio.wait_for(writer.drain(), self._idle)
        except TimeoutError as exc:
            raise ClientIdle() from exc

    async def write_stdout(self, data: bytes) -> None:
        await self._write(self._process.stdout, data)

    async def write_stderr(self, data: bytes) -> None:
        await self._write(self._process.stderr, data)
