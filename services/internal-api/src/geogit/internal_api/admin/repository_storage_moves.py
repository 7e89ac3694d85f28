"""/projects/:id/repository_storage_moves: move a project's repository to another storage
shard of this site (administrators; GitLab's project repository storage moves API).

`POST` schedules a move (201, the move in `scheduled`) that runs in the background
(repositories/storage_moves.py); `GET` lists the project's moves, newest first, and
`GET .../:move_id` follows one. States are GitLab's, less `initial` (a move is scheduled as
it is created): scheduled, started, replicated (switched; the old copy not yet removed),
finished, failed, cleanup_failed (switched; the old copy could not be removed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from geogit.common.text import StorableText
from geogit.internal_api.access.projects import visible_project
from geogit.internal_api.deps import AdminUser, ServicesDep, SessionDep
from geogit.internal_api.errors import ApiError, bad_request, conflict, not_found
from geogit.internal_api.models import (
    RUNNING_MOVE_STATES,
    Project,
    RepositoryStorageMove,
)
from geogit.internal_api.pagination import PageDep
from geogit.internal_api.params import ProjectRef

router = APIRouter(prefix="/api/v4", tags=["projects"])
MoveId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class StorageMoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    destination_storage_name: Annotated[StorableText, Field(min_length=1, max_length=255)]


class MovedProjectOut(BaseModel):
    id: int
    name: str
    name_with_namespace: str
    path: str
    path_with_namespace: str
    created_at: datetime


class StorageMoveOut(BaseModel):
    id: int
    created_at: datetime
    state: str
    source_storage_name: str
    destination_storage_name: str
    # Not in GitLab's entity: why a move failed.
    error_message: str
    project: MovedProjectOut

    @classmethod
    def of(cls, move: RepositoryStorageMove, project: Project) -> StorageMoveOut:
        return cls(
            id=move.id,
            created_at=move.created_at,
            state=move.state,
            source_storage_name=move.source_storage_name,
            destination_storage_name=move.destination_storage_name,
            error_message=move.error_message,
            project=MovedProjectOut(
                id=project.id,
                name=project.name,
                name_with_namespace=f"{project.namespace} / {project.name}",
                path=project.path,
                path_with_namespace=project.full_path,
                created_at=project.created_at,
            ),
        )


def _check_destination(project: Project, destination: str, shards: list[str]) -> None:
    if destination not in shards:
        raise bad_request(
            f"400 Bad request - destination_storage_name {destination!r} is not a storage"
            f" shard of this site (configured: {', '.join(sorted(shards))})"
        )
    if destination == project.storage_shard:
        raise bad_request(f"400 Bad request - the repository is already on storage {destination!r}")


async def _running_move(session: SessionDep, project: Project) -> RepositoryStorageMove | None:
    return await session.scalar(
        select(RepositoryStorageMove).where(
            RepositoryStorageMove.project_id == project.id,
            RepositoryStorageMove.state.in_(RUNNING_MOVE_STATES),
        )
    )


def _already_running(move: RepositoryStorageMove) -> ApiError:
    return conflict(
        f"409 Conflict - a repository storage move of this project is already running"
        f" (move {move.id}, {move.state})"
    )


@router.post(
    "/projects/{project_id}/repository_storage_moves",
    response_model=StorageMoveOut,
    status_code=201,
    responses={400: {}, 403: {}, 404: {}, 409: {}},
)
async def schedule_move(
    project_id: ProjectRef,
    body: StorageMoveIn,
    admin: AdminUser,
    session: SessionDep,
    services: ServicesDep,
) -> StorageMoveOut:
    project = (await visible_project(session, project_id, admin)).project
    _check_destination(project, body.destination_storage_name, services.storage.shards)
    running = await _running_move(session, project)
    if running is not None:
        raise _already_running(running)
    move = RepositoryStorageMove(
        project_id=project.id,
        state="scheduled",
        source_storage_name=project.storage_shard,
        destination_storage_name=body.destination_storage_name,
    )
    session.add(move)
    try:
        await session.commit()
    except IntegrityError as exc:  # another request's move committed first
        await session.rollback()
        raise conflict(
            "409 Conflict - a repository storage move of this project is already running"
        ) from exc
    await session.refresh(project)
    services.storage_moves.schedule(move.id)
    return StorageMoveOut.of(move, project)


@router.get(
    "/projects/{project_id}/repository_storage_moves",
    response_model=list[StorageMoveOut],
    responses={403: {}, 404: {}},
)
async def list_moves(
    project_id: ProjectRef, admin: AdminUser, session: SessionDep, page: PageDep
) -> list[StorageMoveOut]:
    project = (await visible_project(session, project_id, admin)).project
    moves = await page.fetch(
        session,
        select(RepositoryStorageMove)
        .where(RepositoryStorageMove.project_id == project.id)
        .order_by(RepositoryStorageMove.id.desc()),
    )
    return [StorageMoveOut.of(move, project) for move in moves]


@router.get(
    "/projects/{project_id}/repository_storage_moves/{move_id}",
    response_model=StorageMoveOut,
    responses={403: {}, 404: {}},
)
async def get_move(
    project_id: ProjectRef, move_id: MoveId, admin: AdminUser, session: SessionDep
) -> StorageMoveOut:
    project = (await visible_project(session, project_id, admin)).project
    move = await session.get(RepositoryStorageMove, move_id)
    if move is None or move.project_id != project.id:
        raise not_found("Repository Storage Move")
    return StorageMoveOut.of(move, project)
