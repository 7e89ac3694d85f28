"""POST /api/v4/internal/git_http/authorize: the edge-proxy's question before smart HTTP.

The decision is `access/git_http.py`'s (credentials, Geo tokens, GitLab's answers). On a
secondary the answer may be `proxy` (or `redirect`) instead of `serve` (DESIGN §3.2, §3.4) —
see geo/routing.py.
"""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.git_commands import HTTP_COMMANDS
from geogit.common.internal_api import (
    Denied,
    GitHttpAuthorizeRequest,
    GitHttpProxy,
    GitHttpRedirect,
    GitHttpServe,
)
from geogit.internal_api.access.git_http import git_http_access
from geogit.internal_api.clients.storage import StorageClient
from geogit.internal_api.deps import InternalCaller, Services, ServicesDep, SessionDep, StorageDep
from geogit.internal_api.errors import ApiError
from geogit.internal_api.geo import routing, site_state
from geogit.internal_api.repositories import push_hold

router = APIRouter(prefix="/api/v4/internal", tags=["internal"], dependencies=[InternalCaller])


async def local_serve(
    session: AsyncSession,
    services: Services,
    storage: StorageClient,
    body: GitHttpAuthorizeRequest,
) -> GitHttpServe:
    """This site's own answer from its own tables; raises Denied."""
    return routing.serve_answer(await git_http_access(session, services, body), storage)


@router.post(
    "/git_http/authorize",
    response_model=GitHttpServe | GitHttpProxy | GitHttpRedirect,
    responses={401: {}, 403: {}, 404: {}},
    summary="Authorize a smart-HTTP Git request for the edge-proxy",
)
async def authorize(
    body: GitHttpAuthorizeRequest, session: SessionDep, storage: StorageDep, services: ServicesDep
) -> GitHttpServe | GitHttpProxy | GitHttpRedirect:
    authority = await site_state.read(session, services.authority)
    try:
        if authority.is_secondary:
            routing.refuse_relays_from_other_sites(authority, body)
            return await routing.git_http_answer(
                session, services, body, lambda: local_serve(session, services, storage, body)
            )
        # A push already past its advertisement goes on: the pre-receive hook refuses it with
        # the failover message, which git prints.
        pushes = HTTP_COMMANDS[body.service].writes
        routing.refuse_writes_while_failing_over(authority, pushes and routing.advertisement(body))
        access = await git_http_access(session, services, body)
        if pushes:  # a storage move's switch: wait for it, then push to the project's shard
            settings = services.settings
            await push_hold.route_push(
                session,
                access.project,
                settings.storage_move_push_wait_seconds,
                settings.storage_move_drain_seconds,
                count=not (routing.advertisement(body) or body.probe),
            )
        return routing.serve_answer(access, storage)
    except Denied as denial:
        raise ApiError(denial.status, denial.message) from denial
