"""GET /api/v4/geo/events?after=N&limit=M: the event store, for consumers catching up.

A consumer that sees a gap in the global sequence, or a Kafka topic that lost its data, reads
from here until it is current, then resumes from Kafka (DESIGN §4). `last` is the global
sequence to pass as `after` next time (`after` itself when nothing newer exists yet).
Authenticated with the internal JWT for now; secondaries will present a Geo JWT.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from geogit.common.events import event_to_json
from geogit.internal_api.deps import InternalCaller, SessionDep
from geogit.internal_api.outbox import events_after, to_event

MAX_LIMIT = 1000

router = APIRouter(prefix="/api/v4/geo", tags=["geo"], dependencies=[InternalCaller])


class EventPage(BaseModel):
    events: list[dict[str, Any]]
    last: int


@router.get("/events", response_model=EventPage)
async def events(
    session: SessionDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> EventPage:
    rows = await events_after(session, after, limit)
    return EventPage(
        events=[event_to_json(to_event(row)) for row in rows],
        last=rows[-1].id if rows else after,
    )
