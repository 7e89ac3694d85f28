"""Helpers for the edge-proxy tests: authorization policies for the fake internal API and a
git client isolated from the machine's configuration."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fake_internal_api import GitHttpAnswer
from fastapi.responses import JSONResponse

from geogit.common.internal_api import (
    GitHttpAuthorizeRequest,
    GitHttpServe,
    RepositoryRef,
    StorageAccess,
)
from geogit.common.proto.storage.v1 import shared_pb2
from geogit.storage.testing import StorageProcess

Policy = Callable[[GitHttpAuthorizeRequest], GitHttpAnswer]
API_BODY_LIMIT = 24 * 1024 * 1024  # the session edge's max_api_body_bytes


@dataclass
class Project:
    path: str  # "namespace/project", as in the URL
    repo: shared_pb2.Repository
    url: str  # what git clones, through the edge


def new_project(storage: StorageProcess, edge_url: str) -> Project:
    path = f"group-{uuid.uuid4().hex[:6]}/project"
    return Project(path, storage.create(), f"{edge_url}/{path}.git")


def serve_answer(storage: StorageProcess, repo: shared_pb2.Repository) -> GitHttpServe:
    return GitHttpServe(
        storage=StorageAccess(name=storage.name, address=storage.address, token=storage.token()),
        repository=RepositoryRef(
            storage_name=repo.storage_name,
            relative_path=repo.relative_path,
            gl_repository=repo.gl_repository,
            gl_project_path=repo.gl_project_path,
        ),
        gl_id="user-1",
        gl_username="alice",
        gl_repository=repo.gl_repository,
    )


def serving(storage: StorageProcess, *projects: Project) -> Policy:
    """Serve the given projects to anyone; any other project is not found."""
    by_path = {project.path: project.repo for project in projects}

    def answer(request: GitHttpAuthorizeRequest) -> GitHttpAnswer:
        repo = by_path.get(request.project)
        if repo is None:
            return message(404, "The project you were looking for could not be found.")
        return serve_answer(storage, repo)

    return answer


def message(status: int, text: str) -> JSONResponse:
    return JSONResponse({"message": text}, status)


def git_env(tmp: Path, **extra: str) -> dict[str, str]:
    """No prompts, no credential helpers or settings from the machine."""
    config = tmp / "empty-gitconfig"
    config.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SSH_ASKPASS"))}
    return {
        **env,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(config),
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        **extra,
    }


def git(
    *args: str, cwd: Path | None = None, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result
