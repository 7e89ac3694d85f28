"""Whether this edge fronts a secondary, and how to reach its primary (DESIGN §3.4).

Polled from the site's own internal API (`GET /api/v4/geo/proxy`), as Workhorse polls Rails:
once at startup and every GEOGIT_GEO_POLL_SECONDS after. The answer carries the primary's
URL, its epoch and a fresh Geo token; a token lives 60 s and the poll is every 2 s by default
(a promotion is followed that soon), so the one in hand is valid while the internal API
answers. An answer from an older epoch than one already seen is not followed. A failed poll
keeps the last answer rather than forgetting the primary; once the internal API has been away
for about a minute the primary refuses that token, and so relayed requests, until it is back.
"""

from __future__ import annotations

import asyncio
import logging

from geogit.common.background import Background
from geogit.common.internal_api import GeoProxyInfo
from geogit.common.internal_api_client import InternalApiError
from geogit.edge_proxy.clients.internal_api import InternalApiClient

log = logging.getLogger(__name__)


class GeoState:
    def __init__(self, internal_api: InternalApiClient, poll_seconds: float) -> None:
        self._internal_api = internal_api
        self._poll_seconds = poll_seconds
        self.info = GeoProxyInfo()
        self._poller = Background("geo-proxy-poll", self._poll_forever)

    @property
    def primary_url(self) -> str | None:
        """The primary's front door when this site is a secondary, else None."""
        return self.info.geo_proxy_url or None

    @property
    def token(self) -> str:
        return self.info.geo_proxy_extra_data

    async def poll(self) -> None:
        try:
            info = await self._internal_api.geo_proxy()
        except InternalApiError as exc:
            log.warning("geo proxy poll failed, keeping the last answer", extra={"error": str(exc)})
            return
        if info.geo_epoch < self.info.geo_epoch:
            # An answer from before a promotion this edge already follows (DESIGN §10).
            log.warning(
                "geo proxy answer from an older epoch ignored",
                extra={"epoch": info.geo_epoch, "known": self.info.geo_epoch},
            )
            return
        if info.geo_proxy_url != self.info.geo_proxy_url:
            log.info("geo proxy target", extra={"primary": info.geo_proxy_url or "(none)"})
        self.info = info

    async def start(self) -> None:
        await self.poll()
        self._poller.start()

    async def stop(self) -> None:
        await self._poller.stop()

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            await self.poll()
