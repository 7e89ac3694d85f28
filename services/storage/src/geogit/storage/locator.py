"""Maps a Repository message to a directory under the storage root, refusing anything else."""

from __future__ import annotations

import re
from pathlib import Path

from geogit.common.paths import InvalidPathError, resolve_repository_path, validate_relative_path
from geogit.common.proto.storage.v1 import shared_pb2
from geogit.storage.errors import InvalidArgument, NotFound

_OBJECT_ID = re.compile(r"\A(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")


def check_object_id(value: str, what: str = "object id") -> str:
    if not _OBJECT_ID.match(value):
        raise InvalidArgument(f"invalid {what}: {value[:80]!r}")
    return value


class RepositoryLocator:
    def __init__(self, root: Path, storage_name: str) -> None:
        self.root = root.resolve()
        self.storage_name = storage_name

    def path(self, repository: shared_pb2.Repository) -> Path:
        """Where the repository lives or would live; it need not exist."""
        if repository.storage_name and repository.storage_name != self.storage_name:
            raise InvalidArgument(f"unknown storage {repository.storage_name!r}")
        relative = repository.relative_path
        if not relative:
            raise InvalidArgument("repository relative_path is empty")
        try:
            relative = validate_relative_path(relative)
            if relative.startswith("+") or not relative.endswith(".git"):
                raise InvalidPathError(f"not a repository path: {relative!r}")
            return resolve_repository_path(self.root, relative)
        except InvalidPathError as exc:
            raise InvalidArgument(str(exc)) from exc

    def existing(self, repository: shared_pb2.Repository) -> Path:
        path = self.path(repository)
        if not (path / "HEAD").is_file():
            raise NotFound(f"repository not found: {repository.relative_path}")
        return path

    def quarantine_env(self, repository: shared_pb2.Repository, path: Path) -> dict[str, str]:
        """Git environment that lets an RPC see the objects of a push still in quarantine."""
        if not repository.git_object_directory:
            return {}
        directories = [
            repository.git_object_directory,
            *repository.git_alternate_object_directories,
        ]
        resolved = [self._inside(path, d) for d in directories]
        return {
            "GIT_OBJECT_DIRECTORY": str(resolved[0]),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": ":".join(str(d) for d in resolved[1:]),
        }

    @staticmethod
    def _inside(repo_path: Path, directory: str) -> Path:
        candidate = (repo_path / directory).resolve()
        if not candidate.is_relative_to(repo_path):
            raise InvalidArgument(f"object directory outside the repository: {directory!r}")
        return candidate
