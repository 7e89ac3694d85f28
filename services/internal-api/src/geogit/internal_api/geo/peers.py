"""How a site learns that another one was promoted while it was not told (DESIGN §10): it was
down, partitioned, or it is an old primary coming back.

Every few seconds, at start-up before a primary takes its first write, and at once when an
event or a token names a newer epoch, the site asks every other registered site for its
authority. A newer epoch is believed only once the site named as its primary confirms it is
primary at that epoch (through the URL in this site's own registry), and then this site
follows it — a primary fences itself that way, before it accepts another write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.background import Background
from geogit.common.geo_coordination import SiteStateOut
from geogit.internal_api.clients.sites import SitesClient, SiteUnreachable
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.geo.epochs import EpochStart
from geogit.internal_api.geo.follow import EpochConflict, NewPrimary, follow
from geogit.internal_api.geo.site_state import SiteAuthority
from geogit.internal_api.models import GeoSite

log = logging.getLogger(__name__)

ASK_TIMEOUT_SECONDS = 3.0


async def other_sites(session: AsyncSession, me: str) -> list[GeoSite]:
    """The enabled sites of this site's registry but itself, the ones it coordinates with."""
    rows = await session.scalars(
        select(GeoSite).where(GeoSite.name != me, GeoSite.enabled).order_by(GeoSite.id)
    )
    return list(rows)


async def ask(sites: SitesClient, url: str) -> SiteStateOut | None:
    try:
        return await sites.site_state(url, timeout=ASK_TIMEOUT_SECONDS)
    except SiteUnreachable as exc:
        log.debug("site did not answer", extra={"url": url, "error": str(exc)})
        return None


async def confirmed_primary(sites: SitesClient, name: str, url: str) -> NewPrimary | None:
    """`name` as the primary it says it is, asked at `url` (the registry's address for it)."""
    answer = await ask(sites, url)
    if answer is None or answer.site != name or answer.role != "primary":
        return None
    history = tuple(EpochStart(e.epoch, e.after_seq, e.primary_site) for e in answer.epochs)
    return NewPrimary(answer.epoch, answer.epoch_after_seq, name, url, history)


class Peers:
    def __init__(
        self,
        sessions: SessionMaker,
        authority: SiteAuthority,
        sites: SitesClient,
        interval_seconds: float,
        on_followed: Callable[[], None],
    ) -> None:
        self._sessions = sessions
        self._authority = authority
        self._sites = sites
        self._interval = interval_seconds
        self._on_followed = on_followed
        self._soon = asyncio.Event()
        self._loop = Background("geo-peers", self._run)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    def check_soon(self) -> None:
        self._soon.set()

    async def check_once(self) -> NewPrimary | None:
        """Follow the newest confirmed primary any site knows of; what was followed, if any."""
        mine = self._authority.current.epoch
        urls = await self._registered()
        answers = await asyncio.gather(*(self._ask(name, url) for name, url in urls.items()))
        claims = sorted(
            (answer for answer in answers if answer is not None and answer.epoch > mine),
            key=lambda answer: answer.epoch,
            reverse=True,
        )
        for claim in claims:
            url = urls.get(claim.primary_site)
            new = await confirmed_primary(self._sites, claim.primary_site, url) if url else None
            if new is not None and new.epoch >= claim.epoch:
                return await self._follow(new)
            log.warning(
                "a newer epoch was claimed but its primary does not confirm it",
                extra={"epoch": claim.epoch, "primary": claim.primary_site, "by": claim.site},
            )
        return None

    async def _follow(self, new: NewPrimary) -> NewPrimary | None:
        try:
            followed = await follow(self._sessions, new)
        except EpochConflict as exc:
            log.error("not following", extra={"error": str(exc)})
            return None
        await self._authority.refresh()
        if followed:
            self._on_followed()
        return new if followed else None

    async def _registered(self) -> dict[str, str]:
        async with self._sessions() as session:
            sites = await other_sites(session, self._authority.site_name)
        return {site.name: site.url for site in sites}

    async def _ask(self, name: str, url: str) -> SiteStateOut | None:
        """The site's answer, if it gave one and it is the site this registry names there."""
        answer = await ask(self._sites, url)
        return answer if answer is not None and answer.site == name else None

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._interval):
                    await self._soon.wait()
            except TimeoutError:
                pass
            self._soon.clear()
            try:
                await self.check_once()
            except Exception as exc:  # a database or network blip: the next round tries again
                log.warning("checking the other sites failed", extra={"error": repr(exc)})
