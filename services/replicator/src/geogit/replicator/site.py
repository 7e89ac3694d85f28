"""The replicator follows its site's authority (DESIGN §10): every site runs one, and it
replicates only while its site is a secondary, from the primary its site follows now.

The internal API holds the site's role and primary (`GET /internal/geo/status`); asked every
few seconds, so a promotion or a demotion is followed without a restart. A site that just
became a secondary gets a backfill scan at once: its repositories are replicas from now on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from geogit.common.background import Background
from geogit.common.internal_api_client import InternalApiError
from geogit.common.primary_client import PrimaryClient
from geogit.replicator.clients.internal_api import InternalApiClient

log = logging.getLogger(__name__)


class SiteRole:
    def __init__(
        self,
        api: InternalApiClient,
        primary: PrimaryClient,
        interval_seconds: float,
        on_secondary: Callable[[], None],
    ) -> None:
        self._api = api
        self._primary = primary
        self._interval = interval_seconds
        self._on_secondary = on_secondary
        self.role = "unknown"
        self.epoch = 0
        self.primary_url = ""
        self._loop = Background("site-role", self._run)

    @property
    def replicating(self) -> bool:
        return self.role == "secondary" and bool(self.primary_url)

    async def refresh(self) -> None:
        try:
            status = await self._api.site_status()
        except InternalApiError as exc:
            log.info("site role unknown, keeping the last one", extra={"error": str(exc)})
            return
        was_replicating = self.replicating
        if status.primary_url != self.primary_url:
            self._primary.retarget(status.primary_url)
        if (status.role, status.epoch, status.primary_url) != (
            self.role,
            self.epoch,
            self.primary_url,
        ):
            log.info(
                "site authority",
                extra={"role": status.role, "epoch": status.epoch, "primary": status.primary_url},
            )
        self.role, self.epoch, self.primary_url = status.role, status.epoch, status.primary_url
        if self.replicating and not was_replicating:
            self._on_secondary()

    async def start(self) -> None:
        await self.refresh()
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.refresh()
