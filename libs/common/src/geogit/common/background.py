"""A service's long-running loop as one object: started with the service, cancelled with it.

Every loop (the outbox relay, consumers, pollers, the backfill scan) needs the same few lines
to start a task, cancel it on stop and wait until it is gone; here they are written once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


class Background:
    def __init__(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        self.name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def _loop(self) -> None:
        await self._run()

    async def stop(self) -> None:
        """Cancel the loop and wait for it to end (a no-op if it never started)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
