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
class EpochHistory:
    # (epoch, after_seq), ascending.
    epochs: Sequence[tuple[int, int]]

    @property
    def latest(self) -> int:
        return self.epochs[-1][0] if self.epochs else 1

    def epoch_at(self, global_seq: int) -> int:
        current = 1
        for epoch, after_seq in self.epochs:
            if global_seq > after_seq:
                current = epoch
        return current

    def judge(self, epoch: int, global_seq: int) -> EpochVerdict:
        if epoch > self.latest:
            return "unknown"
        return "current" if epoch == self.epoch_at(global_seq) else "stale"


async def history(session: AsyncSession) -> EpochHistory:
    rows = await session.execute(
        select(GeoEpoch.epoch, GeoEpoch.after_seq).order_by(GeoEpoch.epoch)
    )
    return EpochHistory([(epoch, after_seq) for epoch, after_seq in rows.all()])


async def record(session: AsyncSession, epoch: int, primary_site: str, after_seq: int) -> None:
    statement = insert(GeoEpoch).values(epoch=epoch, primary_site=primary_site, after_seq=after_seq)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["epoch"],
            set_={"primary_site": primary_site, "after_seq": after_seq},
        )
    )
