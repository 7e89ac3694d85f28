"""Where a repository's HEAD points (DESIGN §6).

A new repository's HEAD names the project's default branch. If a push creates branches while
that branch does not exist — typically the first push, made from a clone whose branch is
called something else — the first branch it creates becomes the default, as on GitLab.
Changing the default later moves HEAD too, to a branch that exists (or anywhere while the
repository has no branches yet).
"""

from __future__ import annotations

from collections.abc import Sequence

from geogit.internal_api.clients.storage import StorageClient
from geogit.internal_api.errors import field_error
from geogit.internal_api.models import Project
from geogit.internal_api.repositories.changes import RefUpdate
from geogit.internal_api.repositories.location import storage_repository
from geogit.internal_api.repositories.refnames import BRANCH_PREFIX


async def adopt_pushed_branch(
    storage: StorageClient, project: Project, updates: Sequence[RefUpdate]
) -> str | None:
    """Point HEAD at the push's first new branch if the default is missing; returns it."""
    created = [u.branch for u in updates if u.created and u.branch is not None]
    if not created or project.default_branch in created:
        return None
    repo = storage_repository(project)
    if await storage.has_refs(repo, BRANCH_PREFIX + project.default_branch):
        return None
    await storage.set_head(repo, created[0])
    return created[0]


async def move_head(storage: StorageClient, project: Project, branch: str) -> None:
    """HEAD to `branch`, refused (400) if the repository has branches but not that one."""
    repo = storage_repository(project)
    exists = await storage.has_refs(repo, BRANCH_PREFIX + branch)
    if not exists and await storage.has_refs(repo, BRANCH_PREFIX):
        raise field_error("default_branch", f"branch {branch!r} does not exist")
    await storage.set_head(repo, branch)
