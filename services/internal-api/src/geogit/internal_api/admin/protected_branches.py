"""Protected branches: GET/POST /projects/:id/protected_branches, GET/DELETE .../:name.

`name` is an exact branch or a wildcard (`release/*`); branch names with a slash are
URL-encoded in the path, as GitLab requires. Push levels: 0 no one, 30 developers and
maintainers, 40 maintainers, 60 admins. Only maintainers may change the rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.events import project_aggregate
from geogit.common.proto.events.v1 import domain_pb2
from geogit.common.text import StorableText
from geogit.internal_api.access.levels import LEVEL_NAMES, AccessLevel
from geogit.internal_api.access.projects import visible_project
from geogit.internal_api.deps import CurrentUser, OutboxDep, SessionDep
from geogit.internal_api.errors import conflict, field_error, not_found
from geogit.internal_api.models import Project, ProtectedBranch
from geogit.internal_api.pagination import PageDep
from geogit.internal_api.params import BranchName, ProjectRef
from geogit.internal_api.repositories.refnames import check_branch_name

router = APIRouter(
    prefix="/api/v4/projects/{project_id}/protected_branches", tags=["protected branches"]
)


class ProtectedBranchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StorableText = Field(min_length=1, max_length=255)
    push_access_level: Literal[0, 30, 40, 60] = 40
    allow_force_push: bool = False


class AccessLevelOut(BaseModel):
    access_level: int
    access_level_description: str


class ProtectedBranchOut(BaseModel):
    id: int
    name: str
    push_access_levels: list[AccessLevelOut]
    allow_force_push: bool
    created_at: datetime

    @classmethod
    def of(cls, rule: ProtectedBranch) -> ProtectedBranchOut:
        level = rule.push_access_level
        return cls(
            id=rule.id,
            name=rule.name,
            push_access_levels=[
                AccessLevelOut(access_level=level, access_level_description=LEVEL_NAMES[level])
            ],
            allow_force_push=rule.allow_force_push,
            created_at=rule.created_at,
        )


async def _rule(session: AsyncSession, project: Project, name: str) -> ProtectedBranch:
    rule = await session.scalar(
        select(ProtectedBranch).where(
            ProtectedBranch.project_id == project.id, ProtectedBranch.name == name
        )
    )
    if rule is None:
        raise not_found("Protected Branch")
    return rule


@router.get("", response_model=list[ProtectedBranchOut])
async def list_protected_branches(
    project_id: ProjectRef, user: CurrentUser, session: SessionDep, page: PageDep
) -> list[ProtectedBranchOut]:
    project = (await visible_project(session, project_id, user)).project
    rules = await page.fetch(
        session,
        select(ProtectedBranch)
        .where(ProtectedBranch.project_id == project.id)
        .order_by(ProtectedBranch.id),
    )
    return [ProtectedBranchOut.of(rule) for rule in rules]


@router.get("/{name}", response_model=ProtectedBranchOut)
async def show_protected_branch(
    project_id: ProjectRef, name: BranchName, user: CurrentUser, session: SessionDep
) -> ProtectedBranchOut:
    project = (await visible_project(session, project_id, user)).project
    return ProtectedBranchOut.of(await _rule(session, project, name))


@router.post("", response_model=ProtectedBranchOut, status_code=201)
async def protect_branch(
    project_id: ProjectRef,
    body: ProtectedBranchCreate,
    user: CurrentUser,
    session: SessionDep,
    outbox: OutboxDep,
) -> ProtectedBranchOut:
    access = await visible_project(session, project_id, user)
    access.require(AccessLevel.MAINTAINER)
    try:
        check_branch_name(body.name, wildcard=True)
    except ValueError as exc:
        raise field_error("name", str(exc)) from exc
    project = access.project
    existing = await session.scalar(
        select(ProtectedBranch.id).where(
            ProtectedBranch.project_id == project.id, ProtectedBranch.name == body.name
        )
    )
    if existing is not None:
        raise conflict(f"Protected branch '{body.name}' already exists")
    rule = ProtectedBranch(project_id=project.id, **body.model_dump())
    session.add(rule)
    await session.flush()
    await outbox.append(
        session,
        domain_pb2.ProtectedBranchSet(
            project_id=project.id,
            name=rule.name,
            push_access_level=rule.push_access_level,
            allow_force_push=rule.allow_force_push,
        ),
        aggregate_id=project_aggregate(project.id),
    )
    await session.commit()
    return ProtectedBranchOut.of(rule)


@router.delete("/{name}", status_code=204)
async def unprotect_branch(
    project_id: ProjectRef,
    name: BranchName,
    user: CurrentUser,
    session: SessionDep,
    outbox: OutboxDep,
) -> Response:
    access = await visible_project(session, project_id, user)
    access.require(AccessLevel.MAINTAINER)
    rule = await _rule(session, access.project, name)
    await session.delete(rule)
    await outbox.append(
        session,
        domain_pb2.ProtectedBranchRemoved(project_id=access.project.id, name=name),
        aggregate_id=project_aggregate(access.project.id),
    )
    await session.commit()
    return Response(status_code=204)
