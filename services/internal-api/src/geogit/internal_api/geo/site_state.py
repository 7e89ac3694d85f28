"""This site's authority (DESIGN §10): its role, epoch, primary and maintenance, kept in its
own database and followed by every part of the site without a restart.

The row is bootstrapped once from GEOGIT_SITE_ROLE / GEOGIT_PRIMARY_URL and afterwards changed
only by promotion, demotion and fencing. Requests read a snapshot refreshed every second (and
at once after a change made here); what must never be stale — whether an event may be written
— reads the row itself, in the writer's transaction (`lock_for_write`). So do the Git access
decisions (`read`): with several replicas of the internal API, the one that made a change knows
it at once and the others within a second, and a Git request must not be served locally by one
replica where the other would proxy it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.background import Background
from geogit.internal_api.config import InternalApiSettings
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.models import GeoEpoch, GeoSiteState

log = logging.getLogger(__name__)

STATE_ROW = 1
BOOTSTRAP_EPOCH = 1
REFRESH_SECONDS = 1.0


def maintenance_message(target: str) -> str:
    return f"this site is being failed over to {target}; retry in a moment"


def not_primary_message(primary_site: str, primary_url: str) -> str:
    if primary_site and primary_url:
        where = f"{primary_site} ({primary_url})"
    else:  # a site configured as secondary knows its primary's URL before its name
        where = primary_site or primary_url or "another site"
    return f"this site is no longer the primary; the primary is {where}"


class Refused(Exception):
    """Something the site's authority does not allow now (DESIGN §10); `status` is the HTTP
    answer and `message` says why, and where to go instead."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class WriteRefused(Refused):
    """An event may not be written here now."""


@dataclass(frozen=True)
class Authority:
    role: str
    epoch: int
    primary_site: str
    primary_url: str
    maintenance_target: str = ""
    maintenance_since: datetime | None = None
    fenced_at: datetime | None = None
    rollback_after_seq: int | None = None

    @property
    def is_primary(self) -> bool:
        return self.role == "primary"

    @property
    def is_secondary(self) -> bool:
        return self.role == "secondary"

    @property
    def in_maintenance(self) -> bool:
        return bool(self.maintenance_target)

    @classmethod
    def of(cls, row: GeoSiteState) -> Authority:
        return cls(
            role=row.role,
            epoch=row.epoch,
            primary_site=row.primary_site,
            primary_url=row.primary_url,
            maintenance_target=row.maintenance_target,
            maintenance_since=row.maintenance_since,
            fenced_at=row.fenced_at,
            rollback_after_seq=row.rollback_after_seq,
        )


async def bootstrap(
    session: AsyncSession, role: str, site_name: str, primary_url: str = ""
) -> None:
    """The first start of a site writes its role from the environment; later starts keep
    whatever promotion made of it. The caller commits."""
    primary = role == "primary"
    await session.execute(
        insert(GeoSiteState)
        .values(
            id=STATE_ROW,
            role=role,
            epoch=BOOTSTRAP_EPOCH,
            primary_site=site_name if primary else "",
            primary_url="" if primary else primary_url,
        )
        .on_conflict_do_nothing()
    )
    await session.execute(
        insert(GeoEpoch)
        .values(epoch=BOOTSTRAP_EPOCH, primary_site=site_name if primary else "", after_seq=0)
        .on_conflict_do_nothing()
    )


async def _row(session: AsyncSession, lock: Literal["", "update", "share"] = "") -> GeoSiteState:
    statement = select(GeoSiteState).where(GeoSiteState.id == STATE_ROW)
    if lock:
        statement = statement.with_for_update(read=lock == "share")
    row = await session.scalar(statement)
    if row is None:
        raise RuntimeError("geo_site_state is missing: the site was not bootstrapped")
    return row


async def load(session: AsyncSession) -> GeoSiteState:
    return await _row(session)


async def read(session: AsyncSession, snapshot: SiteAuthority) -> Authority:
    """The authority as the row says now, in the request's session (one primary-key read);
    the snapshot only while the site is not bootstrapped yet."""
    row = await session.scalar(select(GeoSiteState).where(GeoSiteState.id == STATE_ROW))
    return snapshot.current if row is None else Authority.of(row)


async def lock_for_update(session: AsyncSession) -> GeoSiteState:
    return await _row(session, "update")


async def lock_for_write(session: AsyncSession, *, during_maintenance: bool = False) -> int:
    """The epoch an event written in this transaction carries, or `WriteRefused`.

    The shared row lock makes entering maintenance (which updates the row) wait for writers
    already past this check, and later writers see it."""
    row = await _row(session, "share")
    if row.role != "primary":
        raise WriteRefused(503, not_primary_message(row.primary_site, row.primary_url))
    if row.maintenance_target and not during_maintenance:
        raise WriteRefused(503, maintenance_message(row.maintenance_target))
    return row.epoch


Listener = Callable[[Authority, Authority], Awaitable[None]]


class SiteAuthority:
    """The snapshot requests read, refreshed in the background; listeners hear of changes."""

    def __init__(self, sessions: SessionMaker, settings: InternalApiSettings) -> None:
        self._sessions = sessions
        self.site_name = settings.site_name
        primary = not settings.is_secondary
        self.current = Authority(
            role=settings.site_role,
            epoch=BOOTSTRAP_EPOCH,
            primary_site=settings.site_name if primary else "",
            primary_url="" if primary else settings.primary_url,
        )
        self._bootstrap = (settings.site_role, settings.site_name, settings.primary_url)
        self.loaded = False
        self._listeners: list[Listener] = []
        self._lock = asyncio.Lock()
        self._loop = Background("site-authority", self._refresh_forever)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def epoch(self) -> int:
        return self.current.epoch

    async def refresh(self) -> Authority:
        async with self._lock:
            async with self._sessions() as session:
                if not self.loaded:
                    await bootstrap(session, *self._bootstrap)
                    await session.commit()
                fresh = Authority.of(await load(session))
                self.loaded = True
            before, self.current = self.current, fresh
            if fresh != before:
                log.info(
                    "site authority changed",
                    extra={"role": fresh.role, "epoch": fresh.epoch, "primary": fresh.primary_site},
                )
                for listener in self._listeners:
                    await listener(before, fresh)
        return fresh

    async def start(self) -> None:
        """A site whose database is away starts all the same (it answers 503s); its
        authority is the environment's until the database answers."""
        try:
            await self.refresh()
        except Exception as exc:
            log.warning("site authority not loaded yet", extra={"error": repr(exc)})
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except Exception as exc:  # the database may be away for a while
                log.debug("site authority refresh failed", extra={"error": repr(exc)})
