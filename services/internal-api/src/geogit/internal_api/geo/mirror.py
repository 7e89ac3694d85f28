"""A secondary applies the primary's events and keeps them: the read model, and a mirror of
the primary's event store in its own `outbox` (same ids, already sent), so that when it is
promoted its event store holds the whole history and its outbox continues the sequence."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.events import Event
from geogit.internal_api.events.outbox import columns
from geogit.internal_api.geo import read_model
from geogit.internal_api.models import GeoEventFeed, OutboxEvent, utcnow

FEED_ROW = 1


async def lock_feed(session: AsyncSession) -> GeoEventFeed:
    """The feed's position, locked for this transaction (created on first use)."""
    await session.execute(insert(GeoEventFeed).values(id=FEED_ROW).on_conflict_do_nothing())
    feed = await session.scalar(
        select(GeoEventFeed).where(GeoEventFeed.id == FEED_ROW).with_for_update()
    )
    assert feed is not None
    return feed


async def feed_position(session: AsyncSession) -> int:
    """The last global sequence this site applied as a secondary."""
    last = await session.scalar(
        select(GeoEventFeed.last_global_seq).where(GeoEventFeed.id == FEED_ROW)
    )
    return int(last or 0)


async def last_event_id(session: AsyncSession) -> int:
    """The newest event in this site's store: its own as a primary, the mirror's otherwise."""
    return int(await session.scalar(select(func.max(OutboxEvent.id))) or 0)


async def apply_and_mirror(session: AsyncSession, event: Event) -> None:
    await read_model.apply(session, event)
    await session.execute(
        insert(OutboxEvent)
        .values(id=event.global_seq, sent_at=utcnow(), **columns(event))
        .on_conflict_do_nothing()
    )
