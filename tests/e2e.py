"""Helpers for end-to-end tests: the admin API through a site's front door, and the git CLI.

Work trees come from geogit.storage.testing (make_work_tree, commit_all).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ALL_SCOPES = ["api", "read_repository", "write_repository"]


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    token: str


class Api:
    """Just the admin calls the tests need, with GitLab's paths and fields."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(
            base_url=f"{base_url}/api/v4", timeout=30, headers={"PRIVATE-TOKEN": token}
        )

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = {"PRIVATE-TOKEN": token} if token else None
        response = self.http.request(method, path, headers=headers, **kwargs)
        assert response.status_code < 300, (
            f"{method} {path}: {response.status_code} {response.text}"
        )
        return response.json() if response.content else None

    def account(self, scopes: list[str] | None = None) -> Account:
        name = f"u{uuid.uuid4().hex[:10]}"
        user = self.call(
            "POST",
            "/users",
            json={
                "username": name,
                "email": f"{name}@example.com",
                "name": name.title(),
                "password": uuid.uuid4().hex,
            },
        )
        token = self.call(
            "POST",
            f"/users/{user['id']}/personal_access_tokens",
            json={"name": "tests", "scopes": scopes or ALL_SCOPES},
        )
        return Account(user["id"], name, token["token"])

    def project(self, owner: Account, visibility: str = "private", **fields: Any) -> dict[str, Any]:
        path = f"p{uuid.uuid4().hex[:10]}"
        return dict(
            self.call(
                "POST",
                "/projects",
                token=owner.token,
                json={"path": path, "visibility": visibility, **fields},
            )
        )

    def member(self, project: dict[str, Any], account: Account, level: int) -> None:
        self.call(
            "POST",
            f"/projects/{project['id']}/members",
            json={"user_id": account.id, "access_level": level},
        )

    def protect(
        self, project: dict[str, Any], branch: str, push_level: int, allow_force_push: bool = False
    ) -> None:
        self.call(
            "POST",
            f"/projects/{project['id']}/protected_branches",
            json={
                "name": branch,
                "push_access_level": push_level,
                "allow_force_push": allow_force_push,
            },
        )


def clone_url(base_url: str, project: dict[str, Any], account: Account | None = None) -> str:
    scheme, rest = base_url.split("://", 1)
    auth = f"{account.username}:{account.token}@" if account else ""
    return f"{scheme}://{auth}{rest}/{project['path_with_namespace']}.git"


def git(
    *args: str, cwd: Path | None = None, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {result.returncode}\n{result.stderr}")
    return result
