"""What a push may do to protected branches, checked against its real ref changes.

A branch is protected by every rule whose name matches it exactly or as a wildcard
(`release/*`). As on GitLab, the most permissive rule decides who may push, while a force push
needs every matching rule to allow it. Deleting a protected branch over Git is refused. A
force push is detected by asking storage whether the old tip is an ancestor of the new one,
looking into the push's quarantine, where the new objects still wait.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.proto.events.v1 import repository_pb2
from geogit.internal_api.access import AccessLevel
from geogit.internal_api.clients.storage import StorageClient
from geogit.internal_api.git_access import Access, Denied, storage_repository
from geogit.internal_api.models import ProtectedBranch
from geogit.internal_api.refnames import BRANCH_PREFIX, check_created_ref

PROTECTED_PUSH_DENIED = "You are not allowed to push code to protected branches on this project."
FORCE_PUSH_DENIED = "You are not allowed to force push code to a protected branch on this project."
DELETE_DENIED = (
    "You are not allowed to delete protected branches from this project. "
    "Only a project maintainer or owner can delete a protected branch."
)
DELETE_OVER_GIT_DENIED = "You can only delete protected branches using the API."
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass(frozen=True)
class RefUpdate:
    old: str
    new: str
    ref: str

    @property
    def created(self) -> bool:
        return set(self.old) == {"0"}

    @property
    def deleted(self) -> bool:
        return set(self.new) == {"0"}

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix(BRANCH_PREFIX) if self.ref.startswith(BRANCH_PREFIX) else None

    def to_proto(self) -> repository_pb2.RefChange:
        return repository_pb2.RefChange(old_oid=self.old, new_oid=self.new, ref=self.ref)


def parse_changes(text: str) -> list[RefUpdate]:
    """`<old> <new> <ref>` lines as git's hooks read them; raises ValueError on anything else."""
    updates = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if (
            len(parts) != 3
            or not all(_OBJECT_ID.fullmatch(oid) for oid in parts[:2])
            or not parts[2].startswith("refs/")
        ):
            raise ValueError(f"line {number} of changes is not '<old> <new> <ref>'")
        updates.append(RefUpdate(*parts))
    return updates


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
