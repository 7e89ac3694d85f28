"""Project members: GET/POST /projects/:id/members, GET/PUT/DELETE .../members/:user_id.

Levels are GitLab's: 10 guest, 20 reporter, 30 developer, 40 maintainer, 50 owner.
Maintainers manage members up to their own level; the namespace owner's own membership
cannot be changed or removed here (transfer the project instead).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.internal_api.access.levels import AccessLevel
from geogit.internal_api.access.projects import ProjectAccess, visible_project
from geogit.internal_api.deps import CurrentUser, OptionalUser, OutboxDep, SessionDep, SettingsDep
from geogit.internal_api.errors import conflict, forbidden, not_found
from geogit.internal_api.events import project_events
from geogit.internal_api.lookup import get_user
from geogit.internal_api.models import Member, Project, User
from geogit.internal_api.pagination import PageDep
from geogit.internal_api.params import Id, ProjectRef

router = APIRouter(prefix="/api/v4/projects/{project_id}/members", tags=["members"])

Level = Literal[10, 20, 30, 40, 50]


class MemberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[int, Field(ge=1, le=2**63 - 1)]
    access_level: Level


class MemberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    access_level: Level


class MemberOut(BaseModel):
    id: int
    username: str
    name: str
    state: str
    web_url: str
    access_level: int
    created_at: datetime
    expires_at: None = None

    @classmethod
    def of(cls, member: Member, user: User, external_url: str) -> MemberOut:
        return cls(
            id=user.id,
            username=user.username,
            name=user.name,
            state=user.state,
            web_url=f"{external_url.rstrip('/')}/{user.username}",
            access_level=member.access_level,
            created_at=member.created_at,
        )


async def _member(session: AsyncSession, project: Project, user_id: int) -> tuple[Member, User]:
    member = await session.get(Member, (project.id, user_id))
    user = await session.get(User, user_id)
    if member is None or user is None:
        raise not_found("Member")
    return member, user


def _check_manageable(access: ProjectAccess, user_id: int, level: int) -> None:
    access.require(AccessLevel.MAINTAINER)
    if level > access.level:
        raise forbidden("you cannot grant a level above your own")
    if user_id == access.project.owner_id:
        raise forbidden("the namespace owner's membership cannot be changed")


@router.get("", response_model=list[MemberOut])
async def list_members(
    project_id: ProjectRef,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
) -> list[MemberOut]:
    project = (await visible_project(session, project_id, user)).project
    rows = await page.fetch(
        session,
        select(Member).where(Member.project_id == project.id).order_by(Member.user_id),
    )
    ids = [member.user_id for member in rows]
    users = {u.id: u for u in await session.scalars(select(User).where(User.id.in_(ids)))}
    return [MemberOut.of(m, users[m.user_id], settings.external_url) for m in rows]


@router.get("/{user_id}", response_model=MemberOut)
async def show_member(
    project_id: ProjectRef,
    user_id: Id,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
) -> MemberOut:
    project = (await visible_project(session, project_id, user)).project
    member, member_user = await _member(session, project, user_id)
    return MemberOut.of(member, member_user, settings.external_url)


@router.post("", response_model=MemberOut, status_code=201)
async def add_member(
    project_id: ProjectRef,
    body: MemberCreate,
    user: CurrentUser,
    session: SessionDep,
    outbox: OutboxDep,
    settings: SettingsDep,
) -> MemberOut:
    access = await visible_project(session, project_id, user)
    _check_manageable(access, body.user_id, body.access_level)
    new_user = await get_user(session, body.user_id)
    if await session.get(Member, (access.project.id, new_user.id)):
        raise conflict("Member already exists")
    member = Member(
        project_id=access.project.id, user_id=new_user.id, access_level=body.access_level
    )
    session.add(member)
    await session.flush()
    await project_events.member_set(
        session, outbox, access.project, new_user.id, member.access_level
    )
    await session.commit()
    return MemberOut.of(member, new_user, settings.external_url)


@router.put("/{user_id}", response_model=MemberOut)
async def update_member(
    project_id: ProjectRef,
    user_id: Id,
    body: MemberUpdate,
    user: CurrentUser,
    session: SessionDep,
    outbox: OutboxDep,
    settings: SettingsDep,
) -> MemberOut:
    access = await visible_project(session, project_id, user)
    member, member_user = await _member(session, access.project, user_id)
    _check_manageable(access, user_id, max(body.access_level, member.access_level))
    if member.access_level != body.access_level:
        member.access_level = body.access_level
        await project_events.member_set(
            session, outbox, access.project, user_id, member.access_level
        )
        await session.commit()
    return MemberOut.of(member, member_user, settings.external_url)


@router.delete("/{user_id}", status_code=204)
async def remove_member(
    project_id: ProjectRef, user_id: Id, user: CurrentUser, session: SessionDep, outbox: OutboxDep
) -> Response:
    access = await visible_project(session, project_id, user)
    member, _ = await _member(session, access.project, user_id)
    _check_manageable(access, user_id, member.access_level)
    await session.delete(member)
    await project_events.member_removed(session, outbox, access.project, user_id)
    await session.commit()
    return Response(status_code=204)
