"""POST /api/v4/internal/pre_receive and /post_receive: the hooks' calls around a push.

post_receive records the push: the project's next repository sequence number and a
`RepositoryUpdated` event (changes and refs checksum) are committed together, so the event
exists if and only if the sequence moved. A first push that creates only branches other than
the default makes the first of them the default (repositories/default_branch.py). Nothing is
published from here; the outbox relay does that, so a Kafka outage never fails or slows a push.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.events import project_aggregate, timestamp
from geogit.common.internal_api import (
    PostReceiveRequest,
    PostReceiveResponse,
    PreReceiveRequest,
    PreReceiveResponse,
)
from geogit.common.proto.events.v1 import repository_pb2
from geogit.internal_api.access.git import PROJECT_NOT_FOUND
from geogit.internal_api.clients.storage import StorageClient
from geogit.internal_api.deps import (
    InternalCaller,
    OutboxDep,
    ServicesDep,
    SessionDep,
    StorageDep,
)
from geogit.internal_api.errors import ApiError, bad_request
from geogit.internal_api.events import project_events
from geogit.internal_api.events.outbox import Outbox
from geogit.internal_api.geo import maintenance
from geogit.internal_api.lookup import project_by_gl_repository
from geogit.internal_api.models import Project
from geogit.internal_api.repositories.changes import parse_changes
from geogit.internal_api.repositories.default_branch import adopt_pushed_branch
from geogit.internal_api.repositories.location import storage_repository

router = APIRouter(prefix="/api/v4/internal", tags=["internal"], dependencies=[InternalCaller])


async def _project(session: AsyncSession, gl_repository: str) -> Project:
    project = await project_by_gl_repository(session, gl_repository)
    if project is None:
        raise ApiError(404, PROJECT_NOT_FOUND)
    return project


@router.post("/pre_receive", response_model=PreReceiveResponse)
async def pre_receive(body: PreReceiveRequest, session: SessionDep) -> PreReceiveResponse:
    """The push is counted until post-receive: a planned failover waits for it to land."""
    project = await _project(session, body.gl_repository)
    await maintenance.push_started(session, project.id)
    await session.commit()
    return PreReceiveResponse(reference_counter_increased=True)


@router.post("/post_receive", response_model=PostReceiveResponse)
async def post_receive(
    body: PostReceiveRequest,
    session: SessionDep,
    storage: StorageDep,
    outbox: OutboxDep,
    services: ServicesDep,
) -> PostReceiveResponse:
    # The session connects at its first query, which comes after this push's turn.
    async with services.push_queue.turn(body.gl_repository):
        await _record_push(session, storage, outbox, body)
    return PostReceiveResponse()


async def _record_push(
    session: AsyncSession, storage: StorageClient, outbox: Outbox, body: PostReceiveRequest
) -> None:
    project = await _project(session, body.gl_repository)
    try:
        updates = parse_changes(body.changes)
    except ValueError as exc:
        raise bad_request(f"400 Bad request - {exc}") from exc
    pushed_at = datetime.now(UTC)
    seq = await session.scalar(
        update(Project)
        .where(Project.id == project.id)
        .values(repository_seq=Project.repository_seq + 1, last_activity_at=pushed_at)
        .returning(Project.repository_seq)
    )
    assert seq is not None
    # Storage is asked while this transaction holds the project's row lock: of two concurrent
    # pushes, the one with the higher sequence carries the checksum computed later. The outbox
    # lock is taken only after these slow calls, from the first append to the commit.
    new_default = await adopt_pushed_branch(storage, project, updates)
    if new_default is not None:
        project.default_branch = new_default
    checksum = await storage.checksum(storage_repository(project))
    project.repository_checksum, project.repository_pushed_at = checksum, pushed_at
    event = repository_pb2.RepositoryUpdated(
        project_id=project.id,
        seq=seq,
        changes=[u.to_proto() for u in updates],
        checksum=checksum,
        pushed_at=timestamp(pushed_at),
    )
    await outbox.append(
        session,
        event,
        aggregate_id=project_aggregate(project.id),
        aggregate_seq=seq,
        during_maintenance=True,
    )
    if new_default is not None:
        await project_events.updated(session, outbox, project, during_maintenance=True)
    await maintenance.push_finished(session, project.id)
    await session.commit()
    # No "create a merge request" hint: geogit has no merge request page to point at, and
    # GitLab's one line per new branch made a 3000-branch push print 6000 lines.
