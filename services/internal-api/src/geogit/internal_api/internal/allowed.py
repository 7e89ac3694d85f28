"""POST /api/v4/internal/allowed: may this user run this Git command on this project?

Asked by the SSH gateway before it runs a command (changes "_any") and by storage's
pre-receive hook with the push's real ref changes; the hook also has the push counted
(`count_push`, what /pre_receive does) in the same round trip. For SSH the answer also says
where the repository lives and carries a storage token, so the gateway can stream to it directly.

On a secondary the SSH gateway may instead get GitLab's `300` custom action
`geo_proxy_to_primary` (DESIGN §3.3): every push, and every fetch the freshness rule or the
read model does not allow here. An archive cannot travel over smart HTTP, so a stale replica
refuses `git-upload-archive` with a message pointing at the primary.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.git_commands import SSH_COMMANDS
from geogit.common.internal_api import (
    ANY_CHANGES,
    STATUS_CUSTOM_ACTION,
    AllowedRequest,
    AllowedResponse,
    Denied,
)
from geogit.common.paths import InvalidPathError
from geogit.internal_api.access.git import (
    PROJECT_NOT_FOUND,
    Access,
    access_for,
    check_download,
    check_push,
    resolve_actor,
)
from geogit.internal_api.access.push_rules import check_updates
from geogit.internal_api.deps import InternalCaller, Services, ServicesDep, SessionDep, StorageDep
from geogit.internal_api.geo import maintenance, routing, site_state
from geogit.internal_api.geo.site_state import Refused
from geogit.internal_api.lookup import project_by_gl_repository, project_by_path
from geogit.internal_api.models import Project, User
from geogit.internal_api.repositories import push_hold
from geogit.internal_api.repositories.changes import parse_changes
from geogit.internal_api.repositories.location import repository_ref, storage_access

router = APIRouter(prefix="/api/v4/internal", tags=["internal"], dependencies=[InternalCaller])


def _ssh_project_path(path: str) -> str:
    """`'/alice/demo.git'` as a client typed it in `git clone git@host:/alice/demo.git`."""
    return path.strip("/").removesuffix(".git")


async def _project(session: AsyncSession, body: AllowedRequest) -> Project | None:
    if body.gl_repository:
        return await project_by_gl_repository(session, body.gl_repository)
    try:
        return await project_by_path(session, _ssh_project_path(body.project))
    except InvalidPathError as exc:
        raise Denied(404, PROJECT_NOT_FOUND) from exc


@router.post(
    "/allowed",
    response_model=AllowedResponse,
    responses={401: {}, 403: {}, 404: {}},
    summary="Git access check for the SSH gateway and the pre-receive hook",
)
async def allowed(
    body: AllowedRequest, session: SessionDep, storage: StorageDep, services: ServicesDep
) -> AllowedResponse | JSONResponse:
    try:
        user = await resolve_actor(session, body.gl_id, body.key_id, body.username)
        authority = await site_state.read(session, services.authority)
        if authority.is_secondary and body.protocol == "ssh":
            return await _on_secondary(session, services, body, user)
        routing.refuse_writes_while_failing_over(authority, SSH_COMMANDS[body.action].writes)
        access = await access_for(session, await _project(session, body), user)
        if body.count_push:  # before the checks that ask the shard about the pushed objects
            push_hold.check_shard(access.project, body.storage_name)
        await _check_action(session, storage, access, body)
        await _wait_for_switch(session, services, access, body)
        counted = await _count_push(session, access, body)
    except (Denied, Refused) as denial:
        return JSONResponse({"status": False, "message": denial.message}, denial.status)
    except ValueError as exc:
        return JSONResponse({"status": False, "message": str(exc)}, 400)
    return _answer(access, body, storage).model_copy(
        update={"reference_counter_increased": counted}
    )


async def _wait_for_switch(
    session: AsyncSession, services: Services, access: Access, body: AllowedRequest
) -> None:
    """The SSH gateway's push, before it is routed to a shard: a storage move's switch is
    waited for (repositories/push_hold.py)."""
    if SSH_COMMANDS[body.action].writes and body.changes == ANY_CHANGES and not body.count_push:
        settings = services.settings
        await push_hold.route_push(
            session,
            access.project,
            settings.storage_move_push_wait_seconds,
            settings.storage_move_drain_seconds,
            count=True,
        )


async def _count_push(session: AsyncSession, access: Access, body: AllowedRequest) -> bool:
    """pre-receive's bookkeeping, once the push is allowed: a planned failover and a storage
    move's switch wait for it; a switch under way refuses it."""
    if not (body.count_push and SSH_COMMANDS[body.action].writes):
        return False
    await push_hold.admit_at_pre_receive(session, access.project.id, body.storage_name)
    await maintenance.push_started(session, access.project.id)
    await session.commit()
    return True


async def _check_action(
    session: AsyncSession, storage: StorageDep, access: Access, body: AllowedRequest
) -> None:
    if not SSH_COMMANDS[body.action].writes:
        check_download(access)
        return
    check_push(access)
    if body.changes != ANY_CHANGES:
        quarantine = (
            [body.git_object_directory, *body.git_alternate_object_directories]
            if body.git_object_directory
            else []
        )
        await check_updates(session, storage, access, parse_changes(body.changes), quarantine)


# For a command without an HTTP form (git-upload-archive).
NOT_RELAYED = (
    "This secondary's copy of the project is not current and {action} cannot be"
    " relayed to the primary; run it against the primary site."
)


async def _on_secondary(
    session: AsyncSession, services: Services, body: AllowedRequest, user: User | None
) -> AllowedResponse | JSONResponse:
    if user is None:
        raise Denied(401, "Access denied: unknown user or key.")
    command = SSH_COMMANDS[body.action]
    if not command.writes:
        try:
            access = await access_for(session, await _project(session, body), user)
            check_download(access)
            if await routing.ssh_read_is_local(session, services, access):
                return _answer(access, body, services.storage)
        except Denied:
            if command.http_service is None:
                raise
        if command.http_service is None:
            raise Denied(503, NOT_RELAYED.format(action=command.ssh_name))
    answer = await routing.ssh_proxy_answer(
        session,
        services,
        _ssh_project_path(body.project),
        body.action,
        f"user-{user.id}",
    )
    return JSONResponse(answer.model_dump(), STATUS_CUSTOM_ACTION)


def _answer(access: Access, body: AllowedRequest, storage: StorageDep) -> AllowedResponse:
    project = access.project
    answer = AllowedResponse(
        status=True,
        gl_repository=project.gl_repository,
        gl_project_path=project.full_path,
        gl_id=access.gl_id,
        gl_username=access.gl_username,
    )
    if body.protocol == "ssh":
        answer = AllowedResponse.model_validate(
            {
                **answer.model_dump(),
                "storage": storage_access(project, storage).model_dump(),
                "repository": repository_ref(project).model_dump(),
            }
        )
    return answer
