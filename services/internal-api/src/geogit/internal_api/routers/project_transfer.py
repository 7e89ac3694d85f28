"""PUT /projects/:id/transfer?namespace=<username>: move a project to another user (admins).

Only rows change: the repository stays at the hashed path of the id. The new owner becomes the
project's owner member and the old owner's membership goes, as with a personal namespace.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.text import StorableText
from geogit.internal_api import project_events
from geogit.internal_api.access import AccessLevel
from geogit.internal_api.deps import AdminUser, OutboxDep, SessionDep, SettingsDep
from geogit.internal_api.errors import not_found
from geogit.internal_api.lookup import user_by_username
from geogit.internal_api.models import Member, Project, User
from geogit.internal_api.outbox import Outbox
from geogit.internal_api.params import ProjectRef
from geogit.internal_api.project_access import check_free_path, visible_project
from geogit.internal_api.project_shapes import ProjectOut

router = APIRouter(prefix="/api/v4", tags=["projects"])


@router.put("/projects/{project_id}/transfer", response_model=ProjectOut)
async def transfer_project(
    project_id: ProjectRef,
    namespace: Annotated[StorableText, Query(min_length=1, max_length=255)],
    admin: AdminUser,
    session: SessionDep,
    outbox: OutboxDep,
    settings: SettingsDep,
) -> ProjectOut:
    project = (await visible_project(session, project_id, admin)).project
    owner = await user_by_username(session, namespace)
    if owner is None:
        raise not_found("Namespace")
    if owner.id != project.owner_id:
        await check_free_path(session, owner.username, project.path)
        await _transfer(session, outbox, project, owner)
        await session.commit()
    return ProjectOut.of(project, settings)


async def _transfer(session: AsyncSession, outbox: Outbox, project: Project, owner: User) -> None:
    old_namespace, old_owner = project.namespace, project.owner_id
    project.namespace, project.owner_id = owner.username, owner.id
    await session.merge(
        Member(project_id=project.id, user_id=owner.id, access_level=AccessLevel.OWNER)
    )
    old_member = await session.get(Member, (project.id, old_owner))
    if old_member is not None:
        await session.delete(old_member)
    await project_events.renamed(session, outbox, project, old_namespace, project.path)
    await project_events.member_set(session, outbox, project, owner.id, AccessLevel.OWNER)
    await project_events.member_removed(session, outbox, project, old_owner)
