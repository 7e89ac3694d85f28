"""Where repositories live on disk, and which names may reach the disk at all.

Storage keeps repositories under GitLab's hashed layout (`@hashed/ab/cd/<sha256>.git`), so a
rename never moves a directory and a project's name never becomes a file name. Relative paths
still arrive over the wire (storage RPCs, replication), so they are checked component by
component and, after symlinks are followed, must stay under the storage root.
"""

import hashlib
import pathlib
import re
import unicodedata

MAX_RELATIVE_PATH_BYTES = 4096
_PROJECT_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")
_FORBIDDEN_SEGMENT_SUFFIXES = (".git", ".atom")


class InvalidPathError(ValueError):
    """A repository path or project path that must not be used; the message says why."""


def hashed_repository_path(project_id: int) -> str:
    if isinstance(project_id, bool) or project_id <= 0:
        raise ValueError(f"project id must be a positive integer, got {project_id!r}")
    digest = hashlib.sha256(str(project_id).encode("ascii")).hexdigest()
    return f"@hashed/{digest[:2]}/{digest[2:4]}/{digest}.git"


def validate_relative_path(path: str) -> str:
    """Return `path` without a trailing slash, or raise if it could name anything unexpected.

    Refused outright rather than normalised: a caller sending `a/../b` or `a//b` is buggy or
    hostile, and silently mapping it to another repository would hide that.
    """
    if not path:
        raise InvalidPathError("repository path must not be empty")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidPathError(f"repository path is not valid UTF-8: {path!r}") from exc
    if size > MAX_RELATIVE_PATH_BYTES:
        raise InvalidPathError(
            f"repository path is {size} bytes long (max {MAX_RELATIVE_PATH_BYTES})"
        )
    if any(unicodedata.category(char) == "Cc" for char in path):
        raise InvalidPathError(f"repository path must not contain control characters: {path!r}")
    if "\\" in path:
        raise InvalidPathError(f"repository path must not contain backslashes: {path!r}")
    if path.startswith("/"):
        raise InvalidPathError(f"repository path must be relative: {path!r}")
    normalized = path.removesuffix("/")
    for component in normalized.split("/"):
        if component == "..":
            raise InvalidPathError(f"repository path must not contain '..': {path!r}")
        if component == ".":
            raise InvalidPathError(f"repository path must not contain '.': {path!r}")
        if not component:
            raise InvalidPathError(f"repository path must not contain empty components: {path!r}")
    return normalized


def resolve_repository_path(root: pathlib.Path, relative: str) -> pathlib.Path:
    """The real path of `relative` under `root`, refused if a symlink leads it elsewhere.

    The returned path is the resolved one, so what was checked is what the caller opens.
    """
    relative = validate_relative_path(relative)
    base = root.resolve()
    try:
        resolved = (base / relative).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop (Python < 3.13)
        raise InvalidPathError(f"repository path cannot be resolved: {relative!r}") from exc
    if resolved == base or not resolved.is_relative_to(base):
        raise InvalidPathError("repository path escapes the storage root")
    return resolved


def validate_project_full_path(full_path: str) -> tuple[str, str]:
    """Split `namespace/project`, accepting the names GitLab accepts for both."""
    segments = full_path.split("/")
    if len(segments) != 2:
        raise InvalidPathError(
            f"project path must be 'namespace/project' (exactly two segments): {full_path!r}"
        )
    for segment in segments:
        if not _PROJECT_SEGMENT.fullmatch(segment):
            raise InvalidPathError(
                f"project path segment {segment!r} must be 1-255 characters of letters, digits,"
                " '_', '-' and '.', not starting with '-' or '.'"
            )
        if ".." in segment:
            raise InvalidPathError(f"project path segment {segment!r} must not contain '..'")
        if segment.endswith(_FORBIDDEN_SEGMENT_SUFFIXES):
            raise InvalidPathError(
                f"project path segment {segment!r} must not end in '.git' or '.atom'"
            )
    namespace, project = segments
    return namespace, project
