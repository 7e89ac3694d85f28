"""Projects: create (with its repository on storage), list, show, update or rename, delete.

A project's repository lives at the hashed path of its id, so renaming a project changes rows
and emits an event but never touches the disk. Creating one reserves the
id first, creates the repository, then commits the rows and events; deleting one commits first
and then removes the repository (an orphaned directory is harmless, ids are never reused).
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.paths import hashed_repository_path
from geogit.common.repository_client import StorageError
from geogit.common.storage_client import EMPTY_CHECKSUM
from geogit.common.text import StorableText
from geogit.internal_api.access.levels import AccessLevel
from geogit.internal_api.access.projects import check_free_path, visible_project
from geogit.internal_api.admin.project_shapes import ProjectOut
from geogit.internal_api.deps import (
    AdminUser,
    CurrentUser,
    OptionalUser,
    OutboxDep,
    Services,
    ServicesDep,
    SessionDep,
    SettingsDep,
    StorageDep,
)
from geogit.internal_api.errors import ApiError, field_error
from geogit.internal_api.events import project_events
from geogit.internal_api.events.outbox import Outbox
from geogit.internal_api.lookup import get_user
from geogit.internal_api.models import Member, Project, User
from geogit.internal_api.pagination import PageDep
from geogit.internal_api.params import Id, ProjectRef
from geogit.internal_api.repositories import placement
from geogit.internal_api.repositories.default_branch import move_head
from geogit.internal_api.repositories.location import storage_repository
from geogit.internal_api.repositories.refnames import check_branch_name

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v4", tags=["projects"])

Visibility = Literal["private", "internal", "public"]
_NOT_PATH_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StorableText | None = Field(None, min_length=1, max_length=255)
    path: StorableText | None = Field(None, min_length=1, max_length=255)
    description: StorableText = Field("", max_length=2000)
    visibility: Visibility = "private"
    default_branch: StorableText = Field("main", min_length=1, max_length=255)


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StorableText | None = Field(None, min_length=1, max_length=255)
    path: StorableText | None = Field(None, min_length=1, max_length=255)
    description: StorableText | None = Field(None, max_length=2000)
    visibility: Visibility | None = None
    default_branch: StorableText | None = Field(None, min_length=1, max_length=255)


def _path_from_name(name: str) -> str:
    """GitLab derives the path from the name when only a name is given: "My App" -> "my-app"."""
    return _NOT_PATH_CHARACTERS.sub("-", name.strip()).strip("-.").lower()


def _check_default_branch(branch: str) -> None:
    try:
        check_branch_name(branch)
    except ValueError as exc:
        raise field_error("default_branch", str(exc)) from exc


async def _create(
    services: Services, session: AsyncSession, owner: User, body: ProjectCreate
) -> Project:
    if body.name is None and body.path is None:
        raise ApiError(400, "400 Bad request - name or path is missing")
    path = body.path or _path_from_name(body.name or "")
    await check_free_path(session, owner.username, path)
    _check_default_branch(body.default_branch)
    # The id is reserved first: the repository's hashed path is derived from it.
    project_id = await session.scalar(
        select(func.nextval(func.pg_get_serial_sequence("projects", "id")))
    )
    assert project_id is not None
    project = Project(
        id=project_id,
        namespace=owner.username,
        path=path,
        name=body.name or path,
        description=body.description,
        visibility=body.visibility,
        default_branch=body.default_branch,
        owner_id=owner.id,
        storage_shard=placement.choose_shard(
            services.settings.storage_weights, services.settings.default_storage
        ),
        disk_path=hashed_repository_path(project_id),
        repository_seq=1,
        repository_checksum=EMPTY_CHECKSUM,
    )
    session.add(project)
    await session.flush()  # rows of different tables are flushed in no particular order
    session.add(Member(project_id=project_id, user_id=owner.id, access_level=AccessLevel.OWNER))
    await session.flush()
    await services.storage.create_repository(storage_repository(project), project.default_branch)
    await project_events.created(session, services.outbox, project)
    await session.commit()
    return project


@router.post("/projects", response_model=ProjectOut, status_code=201)
async def create_project(
    body: ProjectCreate, user: CurrentUser, session: SessionDep, services: ServicesDep
) -> ProjectOut:
    project = await _create(services, session, user, body)
    return ProjectOut.of(project, services.settings)


@router.post("/projects/user/{user_id}", response_model=ProjectOut, status_code=201)
async def create_project_for_user(
    user_id: Id,
    body: ProjectCreate,
    _: AdminUser,
    session: SessionDep,
    services: ServicesDep,
) -> ProjectOut:
    owner = await get_user(session, user_id)
    project = await _create(services, session, owner, body)
    return ProjectOut.of(project, services.settings)


def _visible_to(statement: Select[Project], user: User | None) -> Select[Project]:
    if user is not None and user.is_admin:
        return statement
    if user is None:
        return statement.where(Project.visibility == "public")
    member_of = select(Member.project_id).where(Member.user_id == user.id)
    return statement.where(
        or_(
            Project.visibility.in_(("public", "internal")),
            Project.owner_id == user.id,
            Project.id.in_(member_of),
        )
    )


@router.get("/projects", response_model=list[ProjectOut])
async def list_projects(
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
    membership: bool = False,
    owned: bool = False,
    visibility: Visibility | None = None,
    search: Annotated[StorableText | None, Query(max_length=255)] = None,
) -> list[ProjectOut]:
    statement = _visible_to(select(Project).order_by(Project.id.desc()), user)
    if user is not None and membership:
        statement = statement.where(
            Project.id.in_(select(Member.project_id).where(Member.user_id == user.id))
        )
    if user is not None and owned:
        statement = statement.where(Project.owner_id == user.id)
    if visibility is not None:
        statement = statement.where(Project.visibility == visibility)
    if search:
        # autoescape: `%` and `_` in the search match themselves, not every project.
        needle = search.lower()
        statement = statement.where(
            or_(
                func.lower(Project.name).contains(needle, autoescape=True),
                func.lower(Project.path).contains(needle, autoescape=True),
            )
        )
    projects = await page.fetch(session, statement)
    return [ProjectOut.of(project, settings) for project in projects]


@router.get("/projects/{project_id}", response_model=ProjectOut)
async def show_project(
    project_id: ProjectRef, user: OptionalUser, session: SessionDep, settings: SettingsDep
) -> ProjectOut:
    access = await visible_project(session, project_id, user)
    return ProjectOut.of(access.project, settings)


@router.put("/projects/{project_id}", response_model=ProjectOut)
async def update_project(
    project_id: ProjectRef,
    body: ProjectUpdate,
    user: CurrentUser,
    session: SessionDep,
    services: ServicesDep,
) -> ProjectOut:
    """Maintainers edit; renaming the path or changing visibility needs an owner. A new
    default branch moves the repository's HEAD too."""
    access = await visible_project(session, project_id, user)
    access.require(AccessLevel.MAINTAINER)
    project = access.project
    changes = body.model_dump(exclude_none=True)
    if {"path", "visibility"} & changes.keys():
        access.require(AccessLevel.OWNER)
    if "path" in changes and changes["path"].lower() != project.path.lower():
        await check_free_path(session, project.namespace, changes["path"])
    if changes.get("default_branch", project.default_branch) != project.default_branch:
        _check_default_branch(changes["default_branch"])
        await move_head(services.storage, project, changes["default_branch"])
    await _apply_update(session, services.outbox, project, changes)
    await session.commit()
    return ProjectOut.of(project, services.settings)


async def _apply_update(
    session: AsyncSession, outbox: Outbox, project: Project, changes: dict[str, str]
) -> None:
    old_path = project.path
    before = (project.visibility, project.default_branch)
    for field, value in changes.items():
        setattr(project, field, value)
    if project.path != old_path:
        await project_events.renamed(session, outbox, project, project.namespace, old_path)
    if (project.visibility, project.default_branch) != before:
        await project_events.updated(session, outbox, project)


@router.delete("/projects/{project_id}", status_code=202)
async def delete_project(
    project_id: ProjectRef,
    user: CurrentUser,
    session: SessionDep,
    storage: StorageDep,
    outbox: OutboxDep,
) -> dict[str, str]:
    access = await visible_project(session, project_id, user)
    access.require(AccessLevel.OWNER)
    project = access.project
    project.repository_seq += 1
    await session.delete(project)
    await project_events.deleted(session, outbox, project)
    await session.commit()
    try:
        await storage.remove_repository(storage_repository(project))
    except StorageError as exc:
        log.error(
            "project deleted but its repository was not removed",
            extra={"project_id": project.id, "disk_path": project.disk_path, "error": str(exc)},
        )
    return {"message": "202 Accepted"}
