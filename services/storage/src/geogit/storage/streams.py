"""Copying between gRPC message streams and a git process, with back-pressure both ways.

Memory stays bounded: at most a few 64 KiB chunks are in flight per RPC whatever the pack
size, because each side waits for the other (stdin.drain, a small queue for output).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from enum import Enum
from typing import Any, TypeVar

from geogit.storage.git import GitProcess

T = TypeVar("T")
_QUEUE_CHUNKS = 4


class RequestReader:
    """A gRPC request stream whose reads survive the cancellation of whoever awaits them.

    The stdin feeder is cancelled once git exits, usually in the middle of a read; grpc.aio's
    own request iterator is an async generator that ends for good when that happens, and the
    rest of the stream could no longer be read (see interceptors.py: a finished call reads its
    request to the end). Here the read goes on in a task of its own and is picked up by the
    next caller.
    """

    def __init__(self, messages: AsyncIterator[Any]) -> None:
        self._messages = messages
        self._pending: asyncio.Future[Any] | None = None

    async def next(self) -> Any:
        """The next message; StopAsyncIteration at the end of the stream."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(anext(self._messages))
            # Retrieved here so a read nobody picks up never logs "exception never retrieved".
            self._pending.add_done_callback(_retrieve)
        pending = self._pending
        try:
            return await asyncio.shield(pending)
        finally:
            if pending.done():
                self._pending = None

    async def drain(self) -> None:
        """Read and drop what is left, whatever the stream ends with."""
        with contextlib.suppress(Exception):
            while True:
                await self.next()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class Stream(Enum):
    STDOUT = "stdout"
    STDERR = "stderr"


async def input_chunks(
    first: T,
    rest: AsyncIterator[T],
    data: Callable[[T], bytes],
    eof: Callable[[T], bool] = lambda _: False,
) -> AsyncIterator[bytes]:
    """The bytes carried by a request stream, starting with its already-read first message."""
    message: Any = first
    while True:
        if chunk := data(message):
            yield chunk
        if eof(message):
            return
        try:
            message = await anext(rest)
        except StopAsyncIteration:
            return


async def relay(
    proc: GitProcess, stdin: AsyncIterator[bytes] | None, *, forward_stderr: bool
) -> AsyncIterator[tuple[Stream, bytes]]:
    """Feed stdin to git and yield its output until it exits.

    The stdin feeder is cancelled once git has exited: over SSH the client keeps its side open
    after the last exchange, and waiting for it would hang the RPC.
    """
    queue: asyncio.Queue[tuple[Stream, bytes] | None] = asyncio.Queue(_QUEUE_CHUNKS)

    async def pump(stream: Stream, chunks: AsyncIterator[bytes]) -> None:
        async for chunk in chunks:
            await queue.put((stream, chunk))
        await queue.put(None)

    tasks = [asyncio.create_task(pump(Stream.STDOUT, proc.stdout_chunks()))]
    if forward_stderr:
        tasks.append(asyncio.create_task(pump(Stream.STDERR, proc.stderr_chunks())))
    else:
        tasks.append(asyncio.create_task(_drain_then_signal(proc, queue)))
    feeder = asyncio.create_task(proc.write_stdin(stdin)) if stdin is not None else None
    try:
        open_streams = len(tasks)
        while open_streams:
            item = await queue.get()
            if item is None:
                open_streams -= 1
            else:
                yield item
        await asyncio.gather(*tasks)
    finally:
        for task in [*tasks, feeder]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


async def _drain_then_signal(proc: GitProcess, queue: asyncio.Queue[Any]) -> None:
    await proc.drain_stderr()
    await queue.put(None)
