"""GET /api/v4/geo/events?after=N&limit=M: the event store, for consumers catching up.

A consumer that sees a gap in the global sequence, or a Kafka topic that lost its data, reads
from here until it is current, then resumes from Kafka (DESIGN §4). `last` is the global
sequence to pass as `after` next time (`after` itself when nothing newer exists yet).
Secondaries present a Geo token; this site's own tools its internal JWT.

GET /api/v4/geo/projects/:id/repository: a repository's latest sequence and refs checksum, which
a secondary asks for after relaying a push (read-your-writes) and replicators compare with.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from geogit.common.events import event_to_json
from geogit.common.internal_api import RepositoryState
from geogit.common.paths import InvalidPathError
from geogit.internal_api.deps import SessionDep
from geogit.internal_api.errors import bad_request, not_found
from geogit.internal_api.events.outbox import events_after, to_event
from geogit.internal_api.geo.auth import GeoReader
from geogit.internal_api.lookup import project_by_ref
from geogit.internal_api.params import ProjectRef

MAX_LIMIT = 1000

router = APIRouter(prefix="/api/v4/geo", tags=["geo"])


class EventPage(BaseModel):
    events: list[dict[str, Any]]
    last: int


@router.get("/events", response_model=EventPage)
async def events(
    _: GeoReader,
    session: SessionDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> EventPage:
    rows = await events_after(session, after, limit)
    return EventPage(
        events=[event_to_json(to_event(row)) for row in rows],
        last=rows[-1].id if rows else after,
    )


@router.get("/projects/{project_id}/repository", response_model=RepositoryState)
async def repository_state(
    project_id: ProjectRef, _: GeoReader, session: SessionDep
) -> RepositoryState:
    """`:id` is the number or the URL-encoded path, as everywhere in GitLab's API: a secondary
    asks by path for a project its read model has not got yet."""
    try:
        project = await project_by_ref(session, project_id)
    except InvalidPathError as exc:
        raise bad_request(f"400 Bad request - {exc}") from exc
    if project is None:
        raise not_found("Project")
    return RepositoryState(
        project_id=project.id,
        seq=project.repository_seq,
        checksum=project.repository_checksum,
        pushed_at=project.repository_pushed_at,
    )
