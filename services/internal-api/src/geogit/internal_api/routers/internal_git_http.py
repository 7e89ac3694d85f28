"""POST /api/v4/internal/git_http/authorize: the edge-proxy's question before smart HTTP.

Credentials are the client's `Authorization` header as git sent it: Basic with a username and
a personal access token (the username is not checked, as on GitLab), or a Bearer token.
Anonymous clients may fetch public projects; for anything else they get a 401, which makes git
ask for credentials — also for projects that do not exist, so existence is not revealed. An
authenticated user who cannot see a project gets a 404.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.internal_api import GitHttpAuthorizeRequest, GitHttpServe
from geogit.common.paths import InvalidPathError
from geogit.internal_api.credentials import READ_SCOPES, WRITE_SCOPES, active_token
from geogit.internal_api.deps import InternalCaller, SessionDep, StorageDep
from geogit.internal_api.errors import ApiError
from geogit.internal_api.git_access import (
    ACCOUNT_BLOCKED,
    PROJECT_NOT_FOUND,
    PUSH_DENIED,
    Denied,
    access_for,
    check_download,
    check_push,
    repository_ref,
    storage_access,
)
from geogit.internal_api.lookup import project_by_path
from geogit.internal_api.models import Project, User

ACCESS_DENIED = "HTTP Basic: Access denied"

router = APIRouter(prefix="/api/v4/internal", tags=["internal"], dependencies=[InternalCaller])


def _token(authorization: str) -> str | None:
    """The token in a Basic or Bearer header; None when there is no header at all."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Denied(401, ACCESS_DENIED) from None
        _, colon, password = decoded.partition(":")
        if colon and password:
            return password
    raise Denied(401, ACCESS_DENIED)


async def _authenticate(session: AsyncSession, authorization: str) -> tuple[User | None, bool]:
    """The user and whether their token may push; (None, False) for anonymous clients."""
    token = _token(authorization)
    if token is None:
        return None, False
    found = await active_token(session, token)
    if found is None or not READ_SCOPES.intersection(found[0].scopes):
        raise Denied(401, ACCESS_DENIED)
    pat, user = found
    if not user.active:
        raise Denied(403, ACCOUNT_BLOCKED)
    return user, bool(WRITE_SCOPES.intersection(pat.scopes))


async def _project(session: AsyncSession, path: str) -> Project | None:
    try:
        return await project_by_path(session, path.removesuffix(".git"))
    except InvalidPathError as exc:
        raise Denied(404, PROJECT_NOT_FOUND) from exc


@router.post(
    "/git_http/authorize",
    response_model=GitHttpServe,
    responses={401: {}, 403: {}, 404: {}},
    summary="Authorize a smart-HTTP Git request for the edge-proxy",
)
async def authorize(
    body: GitHttpAuthorizeRequest, session: SessionDep, storage: StorageDep
) -> GitHttpServe:
    try:
        user, may_write = await _authenticate(session, body.authorization)
        project = await _project(session, body.project)
        if user is None and (
            project is None or project.visibility != "public" or body.service == "git-receive-pack"
        ):
            raise Denied(401, ACCESS_DENIED)
        access = await access_for(session, project, user)
        check_download(access)
        if body.service == "git-receive-pack":
            check_push(access)
            if not may_write:
                raise Denied(403, PUSH_DENIED)
    except Denied as denial:
        raise ApiError(denial.status, denial.message) from denial
    return GitHttpServe(
        storage=storage_access(access.project, storage),
        repository=repository_ref(access.project),
        gl_id=access.gl_id,
        gl_username=access.gl_username,
        gl_repository=access.project.gl_repository,
    )
