"""Who may use smart HTTP on this site: the decision behind `git_http/authorize`.

Credentials are the client's `Authorization` header as git sent it: Basic with a username and
a personal access token (the username is not checked, as on GitLab), or a Bearer token.
Anonymous clients may fetch public projects; for anything else they get a 401, which makes git
ask for credentials — also for projects that do not exist, so existence is not revealed. An
authenticated user who cannot see a project gets a 404.

On the primary a request relayed or made by a secondary carries its Geo token, verified
first: a replication token may fetch any project and do nothing else, an SSH-proxy token
stands for the user it names, a proxy token leaves the decision to the user's credentials.
"""

from __future__ import annotations

import base64
import binascii

from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.geo import GeoClaims
from geogit.common.git_commands import HTTP_COMMANDS
from geogit.common.internal_api import Denied, GitHttpAuthorizeRequest
from geogit.common.paths import InvalidPathError
from geogit.internal_api.access.git import (
    ACCOUNT_BLOCKED,
    PROJECT_NOT_FOUND,
    PUSH_DENIED,
    Access,
    access_for,
    check_download,
    check_push,
    resolve_actor,
)
from geogit.internal_api.accounts.credentials import READ_SCOPES, WRITE_SCOPES, active_token
from geogit.internal_api.deps import Services
from geogit.internal_api.geo.auth import verify_secondary
from geogit.internal_api.lookup import project_by_path
from geogit.internal_api.models import Project, User

ACCESS_DENIED = "HTTP Basic: Access denied"


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


async def _geo_access(
    session: AsyncSession, body: GitHttpAuthorizeRequest, claims: GeoClaims
) -> Access:
    """What a verified Geo token allows on the primary."""
    project = await _project(session, body.project)
    if claims.scope == "replication":
        if body.service != "git-upload-pack" or project is None:
            raise Denied(403 if project else 404, "Geo replication may only fetch projects.")
        return Access(project, None, 0)
    if claims.scope == "ssh_proxy":
        if claims.action != body.service or claims.project.lower() != body.project.lower():
            raise Denied(403, "Geo token refused: it was issued for another command.")
        access = await access_for(
            session, project, await resolve_actor(session, claims.gl_id, None, "")
        )
        check_download(access)
        if HTTP_COMMANDS[body.service].writes:
            check_push(access)
        return access
    return await _user_access(session, body, project)


async def _user_access(
    session: AsyncSession, body: GitHttpAuthorizeRequest, project: Project | None
) -> Access:
    user, may_write = await _authenticate(session, body.authorization)
    if user is None and (
        project is None or project.visibility != "public" or HTTP_COMMANDS[body.service].writes
    ):
        raise Denied(401, ACCESS_DENIED)
    access = await access_for(session, project, user)
    check_download(access)
    if HTTP_COMMANDS[body.service].writes:
        check_push(access)
        if not may_write:
            raise Denied(403, PUSH_DENIED)
    return access


async def git_http_access(
    session: AsyncSession, services: Services, body: GitHttpAuthorizeRequest
) -> Access:
    """This site's own decision from its own tables; raises Denied."""
    if body.geo_token:
        claims = await verify_secondary(session, services, body.geo_token)
        return await _geo_access(session, body, claims)
    return await _user_access(session, body, await _project(session, body.project))
