"""Branch names as git accepts them (git check-ref-format), checked before they are stored.

Protected branch rules may also use `*` as a wildcard; git forbids `*`, `?` and `[` in ref
names, so matching a real branch against a rule with fnmatch cannot misread either side.
"""

from __future__ import annotations

import re

MAX_BRANCH_BYTES = 255
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?\[\\]|\.\.|@\{|//")


def check_branch_name(name: str, *, wildcard: bool = False) -> str:
    """Return `name` or raise ValueError saying what git would object to."""
    body = name.replace("*", "x") if wildcard else name
    if not name or len(name.encode()) > MAX_BRANCH_BYTES:
        raise ValueError(f"must be 1-{MAX_BRANCH_BYTES} bytes")
    if _FORBIDDEN.search(body) or "*" in body:
        raise ValueError("contains characters git does not allow in branch names")
    if body.startswith(("-", "/")) or body.endswith(("/", ".")) or body == "@":
        raise ValueError("is not a valid branch name")
    if any(part.startswith(".") or part.endswith(".lock") for part in body.split("/")):
        raise ValueError("is not a valid branch name")
    return name
