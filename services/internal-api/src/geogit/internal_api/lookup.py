"""Finding users and projects the ways callers name them (GitLab's `:id` is an id or a path)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.paths import validate_project_full_path
from geogit.internal_api.errors import not_found
from geogit.internal_api.models import Project, User


async def user_by_username(session: AsyncSession, username: str) -> User | None:
    result = await session.scalars(
        select(User).where(func.lower(User.username) == username.lower())
    )
    return result.first()


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise not_found("User")
    return user


async def project_by_path(session: AsyncSession, full_path: str) -> Project | None:
    """Case-insensitive, like GitLab; raises InvalidPathError for names no project can have."""
    namespace, path = validate_project_full_path(full_path)
    result = await session.scalars(
        select(Project).where(
            func.lower(Project.namespace) == namespace.lower(),
            func.lower(Project.path) == path.lower(),
        )
    )
    return result.first()


async def project_by_ref(session: AsyncSession, ref: str) -> Project | None:
    """`ref` is a numeric id or a "namespace/project" path (already URL-decoded)."""
    if ref.isdigit():
        return await session.get(Project, int(ref)) if len(ref) < 19 else None
    return await project_by_path(session, ref)


async def project_by_gl_repository(session: AsyncSession, gl_repository: str) -> Project | None:
    prefix, _, number = gl_repository.partition("-")
    if prefix != "project" or not number.isdigit() or len(number) >= 19:
        return None
    return await session.get(Project, int(number))
