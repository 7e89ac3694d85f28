"""What a push may do to protected branches, checked against its real ref changes.

A branch is protected by every rule whose name matches it exactly or as a wildcard
(`release/*`). As on GitLab, the most permissive rule decides who may push, while a force push
needs every matching rule to allow it. Deleting a protected branch over Git is refused. A
force push is detected by asking storage whether the old tip is an ancestor of the new one,
looking into the push's quarantine, where the new objects still wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.internal_api import Denied
from geogit.internal_api.access.git import Access
from geogit.internal_api.access.levels import AccessLevel
from geogit.internal_api.clients.storage import StorageClient
from geogit.internal_api.models import ProtectedBranch
from geogit.internal_api.repositories.changes import RefUpdate
from geogit.internal_api.repositories.location import storage_repository
from geogit.internal_api.repositories.refnames import check_created_ref

PROTECTED_PUSH_DENIED = "You are not allowed to push code to protected branches on this project."
FORCE_PUSH_DENIED = "You are not allowed to force push code to a protected branch on this project."
DELETE_DENIED = (
    "You are not allowed to delete protected branches from this project. "
    "Only a project maintainer or owner can delete a protected branch."
)
DELETE_OVER_GIT_DENIED = "You can only delete protected branches using the API."


def matching_rules(rules: Sequence[ProtectedBranch], branch: str) -> list[ProtectedBranch]:
    return [rule for rule in rules if fnmatchcase(branch, rule.name)]


def may_push(rules: Sequence[ProtectedBranch], level: int) -> bool:
    return any(rule.push_access_level and level >= rule.push_access_level for rule in rules)


async def check_updates(
    session: AsyncSession,
    storage: StorageClient,
    access: Access,
    updates: Sequence[RefUpdate],
    quarantine: list[str],
) -> None:
    """Raise `Denied` for the first update the pusher may not make."""
    for update in updates:
        if update.created and not update.deleted:
            _check_created(update.ref)
    rules = (
        await session.scalars(
            select(ProtectedBranch).where(ProtectedBranch.project_id == access.project.id)
        )
    ).all()
    for update in updates:
        branch = update.branch
        matching = matching_rules(rules, branch) if branch is not None and rules else []
        if matching:
            await _check_protected(storage, access, update, matching, quarantine)


def _check_created(ref: str) -> None:
    try:
        check_created_ref(ref)
    except ValueError as exc:
        raise Denied(403, str(exc)) from exc


async def _check_protected(
    storage: StorageClient,
    access: Access,
    update: RefUpdate,
    rules: Sequence[ProtectedBranch],
    quarantine: list[str],
) -> None:
    if update.deleted:
        if access.level < AccessLevel.MAINTAINER:
            raise Denied(403, DELETE_DENIED)
        raise Denied(403, DELETE_OVER_GIT_DENIED)
    if not may_push(rules, access.level):
        raise Denied(403, PROTECTED_PUSH_DENIED)
    if update.created or all(rule.allow_force_push for rule in rules):
        return
    repo = storage_repository(access.project, quarantine)
    if not await storage.commit_is_ancestor(repo, update.old, update.new):
        raise Denied(403, FORCE_PUSH_DENIED)
