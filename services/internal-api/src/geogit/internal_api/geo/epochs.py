"""The epoch history (DESIGN §10): which primary's authority each global sequence falls under.

Epoch n covers the events after its `after_seq` up to the next epoch's. An event is genuine
only if its epoch is the one its sequence falls under: an older epoch is a fenced primary's
late write, a newer one a promotion this site has not learnt of yet (or a forgery), and
neither is applied until the history says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.internal_api.models import GeoEpoch

EpochVerdict = Literal["current", "stale", "unknown"]


@dataclass(frozen=True)
class EpochStart:
    epoch: int
    after_seq: int
    # Who wrote the epoch's events; empty when not known (a secondary's bootstrap epoch).
    primary_site: str = ""


@dataclass(frozen=True)
class EpochHistory:
    epochs: Sequence[EpochStart]  # ascending

    @property
    def latest(self) -> int:
        return self.epochs[-1].epoch if self.epochs else 1

    def start_of(self, global_seq: int) -> EpochStart:
        current = EpochStart(1, 0)
        for start in self.epochs:
            if global_seq > start.after_seq:
                current = start
        return current

    def epoch_at(self, global_seq: int) -> int:
        return self.start_of(global_seq).epoch

    def judge(self, epoch: int, global_seq: int, origin_site: str = "") -> EpochVerdict:
        """An epoch this site never recorded (newer, or one it skipped while away) is unknown:
        the sites are asked. One that is not the epoch of the event's sequence, or an event
        not written by that epoch's primary, is stale."""
        known = {start.epoch for start in self.epochs} | {1}
        if epoch > self.latest or epoch not in known:
            return "unknown"
        start = self.start_of(global_seq)
        if epoch != start.epoch:
            return "stale"
        if start.primary_site and origin_site and origin_site != start.primary_site:
            return "stale"
        return "current"


async def history(session: AsyncSession) -> EpochHistory:
    rows = await session.execute(
        select(GeoEpoch.epoch, GeoEpoch.after_seq, GeoEpoch.primary_site).order_by(GeoEpoch.epoch)
    )
    return EpochHistory([EpochStart(e, after, site) for e, after, site in rows.all()])


async def record(session: AsyncSession, epoch: int, primary_site: str, after_seq: int) -> None:
    statement = insert(GeoEpoch).values(epoch=epoch, primary_site=primary_site, after_seq=after_seq)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["epoch"],
            set_={"primary_site": primary_site, "after_seq": after_seq},
        )
    )
