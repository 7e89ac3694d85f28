"""Loading a project for an admin-API request and checking the caller's level on it; and
whether a new project path may be used.

A project the caller cannot see is "404 Project Not Found", exactly like one that does not
exist; a visible project the caller may not change is "403 Forbidden".
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.paths import InvalidPathError, validate_project_full_path
from geogit.internal_api.access.levels import access_level, can_see
from geogit.internal_api.errors import ApiError, bad_request, field_error, forbidden, not_found
from geogit.internal_api.lookup import project_by_path, project_by_ref
from geogit.internal_api.models import Project, User


@dataclass(frozen=True)
class ProjectAccess:
    project: Project
    level: int

    def require(self, needed: int) -> None:
        if self.level < needed:
            raise forbidden()


async def visible_project(session: AsyncSession, ref: str, user: User | None) -> ProjectAccess:
    try:
        project = await project_by_ref(session, ref)
    except InvalidPathError as exc:
        raise bad_request(f"400 Bad request - {exc}") from exc
    if project is None:
        raise not_found("Project")
    level = await access_level(session, user, project)
    if not can_see(project, user, level):
        raise not_found("Project")
    return ProjectAccess(project, level)


async def check_free_path(session: AsyncSession, namespace: str, path: str) -> None:
    """`namespace/path` is a valid project path that no project uses yet (GitLab's 400s)."""
    try:
        validate_project_full_path(f"{namespace}/{path}")
    except InvalidPathError as exc:
        raise field_error("path", str(exc)) from exc
    if await project_by_path(session, f"{namespace}/{path}"):
        raise ApiError(400, {"path": ["has already been taken"]})
