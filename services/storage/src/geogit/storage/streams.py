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


async def pump_git(
    proc: GitProcess,
    stdin: AsyncIterator[bytes] | None,
    *,
    forward_stderr: bool,
    finite_input: bool = False,
) -> AsyncIterator[tuple[Stream, bytes]]:
    """Feed stdin to git and yield its output until it exits.

    Over SSH the stdin feeder is cancelled once git has exited: the client keeps its side open
    after the last exchange, and waiting for it would hang the RPC. A `finite_input` (a smart
    HTTP body) is read to its end instead, what git did not take dropped, and never abandoned
    in the middle of a read: the call is answered once the client has finished sending (see
    interceptors.py).
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
    feeder = None
    if stdin is not None:
        feeder = asyncio.create_task(proc.write_stdin(stdin))
    try:
        open_streams = len(tasks)
        while open_streams:
            item = await queue.get()
            if item is None:
                open_streams -= 1
            else:
                yield item
        await asyncio.gather(*tasks)
        if feeder is not None and finite_input:
            await proc.wait()  # git has closed its stdin: the feeder now only reads
            await feeder
    finally:
        for task in [*tasks, feeder]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


async def _drain_then_signal(proc: GitProcess, queue: asyncio.Queue[Any]) -> None:
    await proc.drain_stderr()
    await queue.put(None)
