"""Who may see, fetch and push a project: GitLab's access levels and visibility rules.

The namespace owner has owner access to their projects; an admin has every access (level 60,
which also satisfies a protected branch that only admins may push); everyone else has their
membership's level, or none.
"""

from __future__ import annotations

from enum import IntEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.internal_api.models import Member, Project, User


class AccessLevel(IntEnum):
    NONE = 0
    GUEST = 10
    REPORTER = 20
    DEVELOPER = 30
    MAINTAINER = 40
    OWNER = 50
    ADMIN = 60


# Protected branch push levels, as GitLab describes them.
LEVEL_NAMES = {0: "No one", 30: "Developers + Maintainers", 40: "Maintainers", 60: "Admins"}


async def access_level(session: AsyncSession, user: User | None, project: Project) -> int:
    if user is None:
        return AccessLevel.NONE
    if user.is_admin:
        return AccessLevel.ADMIN
    if project.owner_id == user.id:
        return AccessLevel.OWNER
    level = await session.scalar(
        select(Member.access_level).where(
            Member.project_id == project.id, Member.user_id == user.id
        )
    )
    return level or AccessLevel.NONE


def can_see(project: Project, user: User | None, level: int) -> bool:
    """Whether the project exists as far as this user can tell (GitLab hides the rest)."""
    if project.visibility == "public":
        return True
    if project.visibility == "internal":
        return user is not None
    return level >= AccessLevel.GUEST


def can_download(project: Project, user: User | None, level: int) -> bool:
    if project.visibility == "private":
        return level >= AccessLevel.REPORTER
    return can_see(project, user, level)


def can_push(level: int) -> bool:
    return level >= AccessLevel.DEVELOPER
