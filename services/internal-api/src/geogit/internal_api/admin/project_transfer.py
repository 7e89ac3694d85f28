"""PUT /projects/:id/transfer: move a project to another user's namespace (admins).

The namespace comes as `?namespace=<username>` or, as python-gitlab sends it, in a JSON body
`{"namespace": ...}`; GitLab also takes the namespace's id, here the user's id.

Only rows change: the repository stays at the hashed path of the id. The new owner becomes the
project's owner member and the old owner's membership goes, as with a personal namespace.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.text import StorableText
from geogit.internal_api.access.levels import AccessLevel
from geogit.internal_api.access.projects import check_free_path, visible_project
from geogit.internal_api.admin.project_shapes import ProjectOut
from geogit.internal_api.deps import AdminUser, OutboxDep, SessionDep, SettingsDep
from geogit.internal_api.errors import ApiError, bad_request
from geogit.internal_api.events import project_events
from geogit.internal_api.events.outbox import Outbox
from geogit.internal_api.lookup import user_by_username
from geogit.internal_api.models import Member, Project, User
from geogit.internal_api.params import ProjectRef

router = APIRouter(prefix="/api/v4", tags=["projects"])
NamespaceParam = Annotated[StorableText, Field(min_length=1, max_length=255)]


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: NamespaceParam


async def _namespace_owner(session: AsyncSession, namespace: str) -> User:
    owner = await user_by_username(session, namespace)
    if owner is None and namespace.isdigit() and len(namespace) < 19:
        owner = await session.get(User, int(namespace))
    if owner is None:
        raise ApiError(404, f"404 Namespace Not Found - namespace '{namespace}' does not exist")
    return owner


@router.put("/projects/{project_id}/transfer", response_model=ProjectOut)
async def transfer_project(
    project_id: ProjectRef,
    admin: AdminUser,
    session: SessionDep,
    outbox: OutboxDep,
    settings: SettingsDep,
    namespace: Annotated[NamespaceParam | None, Query()] = None,
    body: Annotated[TransferIn | None, Body()] = None,
) -> ProjectOut:
    given = namespace or (body.namespace if body else None)
    if given is None:
        raise bad_request("400 Bad request - namespace is missing")
    project = (await visible_project(session, project_id, admin)).project
    owner = await _namespace_owner(session, given)
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
