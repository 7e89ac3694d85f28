"""The SSH client's side of one Git command: its stdin, stdout and stderr, with every wait
bounded by the idle timeout, so a stalled client cannot hold a storage RPC or a request to the
primary forever.

Backpressure on stdin (a push's pack): asyncssh grants the client a new window whenever it
delivers data to the stream, even while older data still waits in the channel's own buffer,
so a stream that pauses and resumes on its own lets a fast client outrun a slow reader and the
pack piles up in memory (2.1 GB of RSS for a 2.19 GiB push). So the channel stays paused except
while `read` waits, and each read takes everything delivered (at most one window): the client
can then be at most one window ahead of what the storage RPC or the primary has accepted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncssh

WINDOW = 2 * 1024 * 1024
"""The SSH channel's receive window (asyncssh's default, set explicitly on the server): the most
a client may send beyond what has been read, and so the most one read returns."""


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
                chunk = await self._paced_read()
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

    async def _paced_read(self) -> bytes:
        """Let the channel deliver (and so open its window) only while someone waits to read."""
        channel = self._process.channel
        channel.resume_reading()
        try:
            return await asyncio.wait_for(self._process.stdin.read(WINDOW), self._idle)
        finally:
            channel.pause_reading()

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
