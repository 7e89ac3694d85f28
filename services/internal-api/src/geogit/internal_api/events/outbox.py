"""The transactional outbox: the only way events leave the internal API (DESIGN §4).

A change and its event are written in one transaction. Before inserting, `append` takes a
transaction-scoped advisory lock that every writer of the outbox shares, so outbox ids are
assigned in commit order: a row with a lower id can never become visible after a higher one.
Without that, the relay (or a reader of `/geo/events?after=N`) could pass id 11 while id 10 was
still uncommitted, and a consumer that dedupes by global sequence would then skip 10 forever.
The lock is held only from the insert to the commit, so callers append last, after any slow
call (storage RPCs) is done.

The same statement issues `pg_notify` on the table's channel: PostgreSQL delivers it at commit
(never for a rolled-back writer), and the relay, LISTENing, publishes at once instead of on its
next poll (events/listener.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from google.protobuf.message import Message
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.events import EVENT_TYPES, Event, Topics, new_event
from geogit.common.proto.events.v1 import replication_pb2, repository_pb2
from geogit.internal_api.geo.site_state import lock_for_write
from geogit.internal_api.models import OutboxEvent, ReportOutboxEvent

Stream = Literal["domain", "repository", "replication"]
Row = TypeVar("Row", OutboxEvent, ReportOutboxEvent)
# Any constant shared by every writer; pg_advisory_xact_lock takes a bigint key.
OUTBOX_LOCK_KEY = 0x6765_6F67_6974_01  # "geogit" 1
REPORT_OUTBOX_LOCK_KEY = 0x6765_6F67_6974_03  # "geogit" 3
# The NOTIFY channel of each outbox table, shared by the writers and the relay's listener.
OUTBOX_CHANNEL = "geogit_outbox"
REPORT_OUTBOX_CHANNEL = "geogit_report_outbox"


def stream_of(payload: Message) -> Stream:
    if payload.DESCRIPTOR.file is repository_pb2.DESCRIPTOR:
        return "repository"
    if payload.DESCRIPTOR.file is replication_pb2.DESCRIPTOR:
        return "replication"  # a secondary's own replicator reports
    return "domain"


def topic_of(stream: str, topics: Topics) -> str:
    if stream == "replication":
        return topics.replication
    return topics.repository if stream == "repository" else topics.domain


def user_aggregate(user_id: int) -> str:
    return f"user-{user_id}"


def site_aggregate(site_id: int) -> str:
    return f"site-{site_id}"


class Outbox:
    """Appends the site's events; `origin_site` goes into every envelope.

    Only a primary writes events, and not while it is failing over: `append` checks the site's
    authority in the writer's own transaction (geo/site_state.py) and stamps the epoch.
    """

    def __init__(self, origin_site: str) -> None:
        self.origin_site = origin_site

    async def append(
        self,
        session: AsyncSession,
        payload: Message,
        *,
        aggregate_id: str,
        aggregate_seq: int | None = None,
        during_maintenance: bool = False,
    ) -> OutboxEvent:
        """Add the event to the session's transaction; the caller commits.

        Repository events pass the project's `repository_seq`; domain events get the next
        sequence of their aggregate, which the lock makes race-free. `during_maintenance` is
        for the end of a push that began before a planned failover (post-receive): it must
        land, and the failover waits for it.
        """
        await _lock_and_notify(session, OUTBOX_LOCK_KEY, OUTBOX_CHANNEL)
        epoch = await lock_for_write(session, during_maintenance=during_maintenance)
        return await _add(
            session, OutboxEvent, payload, aggregate_id, aggregate_seq, epoch, self.origin_site
        )


class ReportOutbox:
    """The site's replicator reports, in their own table: on any role, in maintenance too."""

    def __init__(self, origin_site: str) -> None:
        self.origin_site = origin_site

    async def append(
        self, session: AsyncSession, payload: Message, *, aggregate_id: str
    ) -> ReportOutboxEvent:
        await _lock_and_notify(session, REPORT_OUTBOX_LOCK_KEY, REPORT_OUTBOX_CHANNEL)
        return await _add(
            session, ReportOutboxEvent, payload, aggregate_id, None, 1, self.origin_site
        )


async def _lock_and_notify(session: AsyncSession, lock_key: int, channel: str) -> None:
    """One round trip: the writers' shared lock, and the relay's wake-up (sent at commit)."""
    await session.execute(select(func.pg_advisory_xact_lock(lock_key), func.pg_notify(channel, "")))


async def _add(
    session: AsyncSession,
    model: type[Row],
    payload: Message,
    aggregate_id: str,
    aggregate_seq: int | None,
    epoch: int,
    origin_site: str,
) -> Row:
    stream = stream_of(payload)
    if aggregate_seq is None:
        aggregate_seq = await _next_aggregate_seq(session, model, stream, aggregate_id)
    event = new_event(
        payload,
        aggregate_id=aggregate_id,
        aggregate_seq=aggregate_seq,
        origin_site=origin_site,
        epoch=epoch,
    )
    row = model(**columns(event))
    session.add(row)
    await session.flush()
    return row


def columns(event: Event) -> dict[str, Any]:
    """An event as an outbox row (without `id`, the global sequence, and `sent_at`)."""
    return {
        "event_id": event.event_id,
        "stream": stream_of(event.payload),
        "type": event.type,
        "schema_version": event.schema_version,
        "aggregate_id": event.aggregate_id,
        "aggregate_seq": event.aggregate_seq,
        "payload": event.payload.SerializeToString(),
        "occurred_at": event.occurred_at,
        "origin_site": event.origin_site,
        "correlation_id": event.correlation_id,
        "epoch": event.epoch,
    }


async def _next_aggregate_seq(
    session: AsyncSession,
    model: type[OutboxEvent | ReportOutboxEvent],
    stream: str,
    aggregate_id: str,
) -> int:
    last = await session.scalar(
        select(func.max(model.aggregate_seq)).where(
            model.stream == stream, model.aggregate_id == aggregate_id
        )
    )
    return (last or 0) + 1


def to_event(row: OutboxEvent | ReportOutboxEvent) -> Event:
    """The stored row as the event consumers see, its outbox id as the global sequence."""
    payload = EVENT_TYPES[row.type].FromString(row.payload)
    return Event(
        event_id=row.event_id,
        type=row.type,
        schema_version=row.schema_version,
        aggregate_id=row.aggregate_id,
        aggregate_seq=row.aggregate_seq,
        global_seq=row.id,
        occurred_at=row.occurred_at,
        origin_site=row.origin_site,
        payload=payload,
        correlation_id=row.correlation_id,
        epoch=row.epoch,
    )


async def events_after(session: AsyncSession, after: int, limit: int) -> Sequence[OutboxEvent]:
    rows = await session.scalars(
        select(OutboxEvent).where(OutboxEvent.id > after).order_by(OutboxEvent.id).limit(limit)
    )
    return rows.all()
