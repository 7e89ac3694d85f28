"""Work that must wait until the site's read model has applied an event.

The replicator hears the primary's events on Kafka at the same time as its site's internal API
does; the read model it asks (replicables, their selective sync) may not have applied them yet.
A site's changed selection or a moved project is acted on once the site's event-feed position
(`last_global_seq`) reaches the event's, or after a bound: backfill finds anything missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from geogit.common.internal_api_client import InternalApiError
from geogit.replicator.clients.internal_api import InternalApiClient

log = logging.getLogger(__name__)


class ReadModelWait:
    def __init__(
        self, api: InternalApiClient, poll_seconds: float = 0.2, timeout_seconds: float = 30.0
    ) -> None:
        self._api = api
        self._poll = poll_seconds
        self._timeout = timeout_seconds
        self._tasks: set[asyncio.Task[None]] = set()

    def then(self, global_seq: int, action: Callable[[], object]) -> None:
        """Run `action` once the read model has applied the event at `global_seq`."""
        task = asyncio.create_task(self._wait_then(global_seq, action), name="read-model-wait")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _applied(self, global_seq: int) -> bool:
        try:
            return (await self._api.site_status()).last_global_seq >= global_seq
        except InternalApiError as exc:
            log.info("read model position unknown", extra={"error": str(exc)})
            return False

    async def _wait_then(self, global_seq: int, action: Callable[[], object]) -> None:
        deadline = time.monotonic() + self._timeout
        while not await self._applied(global_seq):
            if time.monotonic() >= deadline:
                log.warning("read model behind an event", extra={"global_seq": global_seq})
                break
            await asyncio.sleep(self._poll)
        action()

    async def stop(self) -> None:
        tasks, self._tasks = set(self._tasks), set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
