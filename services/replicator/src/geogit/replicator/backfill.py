"""Backfill: every project the site lacks, has behind, or has not verified lately.

Runs at start, every GEOGIT_BACKFILL_INTERVAL_SECONDS and on demand (`POST /backfill`), so a
new or long-offline secondary converges without waiting for pushes, a sync interrupted by a
crash is picked up again, and a replica whose checksum went stale is found (DESIGN §5). It only
requests work; the scheduler bounds how much runs at once and takes only this replicator's share
of the projects (ownership.py), so several replicators split one scan between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from geogit.common.background import Background
from geogit.common.internal_api import RegistryEntry, Replicable
from geogit.common.internal_api_client import InternalApiError
from geogit.replicator.clients.internal_api import InternalApiClient
from geogit.replicator.scheduler import Action, Scheduler

log = logging.getLogger(__name__)


def _backing_off(registry: RegistryEntry | None, now: datetime) -> bool:
    return (
        registry is not None
        and registry.state == "failed"
        and registry.next_retry_at is not None
        and registry.next_retry_at > now
    )


def needed(replicable: Replicable, verify_after: timedelta, now: datetime) -> Action | None:
    """What a replica needs; a failed one waits out its backoff (`next_retry_at`) first."""
    registry = replicable.registry
    if _backing_off(registry, now):
        return None
    if registry is None or registry.state != "synced" or registry.synced_seq < replicable.seq:
        return Action.SYNC
    if registry.verified_at is None or now - registry.verified_at > verify_after:
        return Action.VERIFY
    return None


class Backfill:
    def __init__(
        self,
        api: InternalApiClient,
        scheduler: Scheduler,
        interval_seconds: float,
        verify_interval_seconds: float,
        replicating: Callable[[], bool] = lambda: True,
    ) -> None:
        self._api = api
        self._replicating = replicating
        self._scheduler = scheduler
        self._interval = interval_seconds
        self._verify_after = timedelta(seconds=verify_interval_seconds)
        self._wake = asyncio.Event()
        self._loop = Background("backfill", self._run)

    def now(self) -> None:
        """Start a scan at once (the ops endpoint's action)."""
        self._wake.set()

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def scan(self) -> int:
        """Request the work every project needs; returns how many of this replicator's
        projects needed some."""
        requested = 0
        if not self._replicating():
            return requested
        now = datetime.now(UTC)
        async for page in self._api.pages():
            for project_id in page.orphans:
                requested += self._scheduler.request(project_id, Action.DELETE)
            for replicable in page.replicables:
                action = needed(replicable, self._verify_after, now)
                if action is not None:
                    requested += self._scheduler.request(replicable.project_id, action)
        return requested

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                requested = await self.scan()
                if requested:
                    log.info("backfill requested work", extra={"projects": requested})
            except InternalApiError as exc:
                log.warning("backfill scan failed", extra={"error": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
