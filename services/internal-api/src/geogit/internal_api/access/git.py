"""Git access decisions shared by `/internal/allowed` (SSH, hooks) and `/git_http/authorize`.

Refusals are `Denied(status, message)` with GitLab's wording, so the message a user sees on
their terminal reads as it would on GitLab. Existence is hidden as GitLab hides it: a project
the user may not see is "not found", never "forbidden".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.internal_api import Denied
from geogit.internal_api.access.levels import access_level, can_download, can_push, can_see
from geogit.internal_api.lookup import user_by_username
from geogit.internal_api.models import Project, SshKey, User
from geogit.internal_api.params import MAX_ID

PROJECT_NOT_FOUND = "The project you were looking for could not be found."
DOWNLOAD_DENIED = "You are not allowed to download code from this project."
PUSH_DENIED = "You are not allowed to push code to this project."
ACCOUNT_BLOCKED = "Your account has been blocked."
UNKNOWN_ACTOR = "Access denied: unknown user or key."
KEY_EXPIRED = "Your SSH key has expired."


@dataclass(frozen=True)
class Access:
    """A project as one user may use it: their level decides every later check."""

    project: Project
    user: User | None
    level: int

    @property
    def gl_id(self) -> str:
        return f"user-{self.user.id}" if self.user else ""

    @property
    def gl_username(self) -> str:
        return self.user.username if self.user else ""


async def resolve_actor(
    session: AsyncSession, gl_id: str, key_id: int | None, username: str
) -> User | None:
    """The user behind gl_id ("user-N"/"key-N"), a key id or a username; None if none given."""
    kind, _, number = gl_id.partition("-")
    if gl_id and not (kind in ("user", "key") and number.isdigit() and len(number) < 19):
        raise Denied(401, UNKNOWN_ACTOR)
    if kind == "key" or key_id is not None:
        identifier = int(number) if kind == "key" else key_id
        key = await session.get(SshKey, identifier) if 0 < (identifier or 0) <= MAX_ID else None
        if key is None:
            raise Denied(401, UNKNOWN_ACTOR)
        if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
            raise Denied(401, KEY_EXPIRED)
        return _active(await session.get(User, key.user_id))
    if kind == "user":
        return _active(await session.get(User, int(number)))
    if username:
        return _active(await user_by_username(session, username))
    return None


def _active(user: User | None) -> User:
    if user is None:
        raise Denied(401, UNKNOWN_ACTOR)
    if not user.active:
        raise Denied(403, ACCOUNT_BLOCKED)
    return user


async def access_for(session: AsyncSession, project: Project | None, user: User | None) -> Access:
    """The user's access to a project they can see; everything else is "not found"."""
    if project is None:
        raise Denied(404, PROJECT_NOT_FOUND)
    level = await access_level(session, user, project)
    if not can_see(project, user, level):
        raise Denied(404, PROJECT_NOT_FOUND)
    return Access(project, user, level)


def check_download(access: Access) -> None:
    if not can_download(access.project, access.user, access.level):
        raise Denied(403, DOWNLOAD_DENIED)


def check_push(access: Access) -> None:
    if not can_push(access.level):
        raise Denied(403, PUSH_DENIED)
