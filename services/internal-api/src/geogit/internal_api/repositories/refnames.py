"""Branch and tag names: the one place that decides which names geogit accepts.

The rules are `git check-ref-format --branch`'s, plus the names git accepts but that make
later commands ambiguous, which GitLab refuses too: `HEAD` (`refname 'HEAD' is ambiguous`),
`@` (git's shorthand for HEAD), and a full object id (40 or 64 hex digits), which `git
checkout` and the API would read as a commit. A name given as `refs/heads/main` is refused:
the API takes branch names, and a rule named so could never match a branch.

Used by the API (default branch, protected branches) and by the push check, which refuses to
create such branches or tags but lets an existing one be deleted, so it can be cleaned up.

Protected branch rules may also use `*` as a wildcard; git forbids `*`, `?` and `[` in ref
names, so matching a real branch against a rule with fnmatch cannot misread either side.
"""

from __future__ import annotations

import re

MAX_BRANCH_BYTES = 255
BRANCH_PREFIX = "refs/heads/"
TAG_PREFIX = "refs/tags/"
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?\[\\]|\.\.|@\{|//")
_OBJECT_ID = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")


def check_branch_name(name: str, *, wildcard: bool = False) -> str:
    """Return `name` or raise ValueError saying what git would object to."""
    body = name.replace("*", "x") if wildcard else name
    if name.startswith("refs/"):
        raise ValueError(
            "must be a branch name, not a full ref: give 'main', not 'refs/heads/main'"
        )
    _check_name(body)
    return name


def _check_name(name: str) -> None:
    if not name or len(name.encode()) > MAX_BRANCH_BYTES:
        raise ValueError(f"must be 1-{MAX_BRANCH_BYTES} bytes")
    if _FORBIDDEN.search(name) or "*" in name:
        raise ValueError("contains characters git does not allow in branch names")
    if name.startswith("-"):
        raise ValueError("must not start with '-'")
    if name in ("HEAD", "@"):
        raise ValueError(f"'{name}' is reserved: git reads it as the current commit")
    if _OBJECT_ID.fullmatch(name):
        raise ValueError("looks like an object id: git would read it as a commit")
    if name.startswith("/") or name.endswith(("/", ".")):
        raise ValueError("is not a valid branch name")
    if any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
        raise ValueError("is not a valid branch name")


def check_created_ref(ref: str) -> None:
    """Raise ValueError ("refusing to create ...: why") for a new branch or tag so named."""
    for prefix in (BRANCH_PREFIX, TAG_PREFIX):
        if ref.startswith(prefix):
            try:
                _check_name(ref.removeprefix(prefix))
            except ValueError as exc:
                raise ValueError(f"refusing to create {ref}: the name {exc}") from exc
