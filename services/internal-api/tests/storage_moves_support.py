"""Two real storage shards behind an internal API of their own, and Git clients that reach
them as the SSH gateway does: ask `/internal/allowed` where the repository is, then run git
against the storage it names (so a push meets the move's hold exactly where a gateway's would).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from internal_api_support import Api, Database, Person, make_settings

from geogit.common.paths import hashed_repository_path
from geogit.common.proto.storage.v1 import shared_pb2
from geogit.internal_api.config import InternalApiSettings
from geogit.storage.testing import StorageProcess, git


class Shards:
    """The storage processes by shard name; their hooks call the internal API at `api_port`."""

    def __init__(self, root: Path, api_port: int) -> None:
        url = f"http://127.0.0.1:{api_port}"
        self.by_name = {
            name: StorageProcess(root / name / "repositories", url, name=name)
            for name in ("default", "second")
        }

    def start(self) -> None:
        for shard in self.by_name.values():
            shard.start()

    def stop(self) -> None:
        for shard in self.by_name.values():
            shard.stop()

    def __getitem__(self, name: str) -> StorageProcess:
        return self.by_name[name]

    @property
    def storages(self) -> dict[str, str]:
        return {name: shard.address for name, shard in self.by_name.items()}

    def repo(self, project: dict[str, Any], name: str) -> shared_pb2.Repository:
        return shared_pb2.Repository(
            storage_name=name,
            relative_path=hashed_repository_path(project["id"]),
            gl_repository=f"project-{project['id']}",
            gl_project_path=project["path_with_namespace"],
        )

    def has_copy(self, project: dict[str, Any], name: str) -> bool:
        return (self[name].root / hashed_repository_path(project["id"]) / "HEAD").is_file()


def settings_for(
    database: Database, shards: Shards, port: int, **overrides: object
) -> InternalApiSettings:
    values: dict[str, object] = {
        # Longer than a clone routed just before the switch needs to reach the old copy, on a
        # loaded machine too (production: 300 s).
        "storage_move_removal_delay_seconds": 5.0,
        **overrides,
    }
    return make_settings(
        database,
        shards["default"],
        http_address=f"127.0.0.1:{port}",
        storages=shards.storages,
        **values,
    )


class GitClient:
    """Git as a user behind the SSH gateway: routed by `/internal/allowed`, then straight to the
    shard the answer names."""

    def __init__(self, api: Api, shards: Shards, person: Person, project: dict[str, Any]) -> None:
        self.api, self.shards, self.person, self.project = api, shards, person, project
        self.pushed_to: list[str] = []  # the shard each push went to

    async def route(self, action: str) -> StorageProcess:
        response = await self.api.internal(
            "allowed",
            {
                "action": action,
                "protocol": "ssh",
                "gl_id": self.person.gl_id,
                "project": self.project["path_with_namespace"],
                "changes": "_any",
            },
        )
        assert response.status_code == 200, response.text
        return self.shards[response.json()["storage"]["name"]]

    def _env(self, shard: StorageProcess) -> dict[str, str]:
        repo = self.shards.repo(self.project, shard.name)
        return shard.git_env(repo, gl_id=self.person.gl_id, username=self.person.username)

    async def push(self, tree: Path, *refspecs: str) -> None:
        shard = await self.route("git-receive-pack")
        url = StorageProcess.url(self.shards.repo(self.project, shard.name))
        await asyncio.to_thread(git, "push", url, *refspecs, cwd=tree, env=self._env(shard))
        self.pushed_to.append(shard.name)

    async def clone(self, into: Path) -> None:
        shard = await self.route("git-upload-pack")
        url = StorageProcess.url(self.shards.repo(self.project, shard.name))
        await asyncio.to_thread(git, "clone", "-q", url, str(into), env=self._env(shard))


async def move(api: Api, project: dict[str, Any], destination: str) -> httpx.Response:
    return await api.client.post(
        f"/api/v4/projects/{project['id']}/repository_storage_moves",
        headers=api.admin,
        json={"destination_storage_name": destination},
    )


async def follow(
    api: Api, project: dict[str, Any], move_id: int, until: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """GET the move until `until` holds (or fail after 60 s, showing the last answer)."""
    deadline = time.monotonic() + 60
    while True:
        response = await api.client.get(
            f"/api/v4/projects/{project['id']}/repository_storage_moves/{move_id}",
            headers=api.admin,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if until(body):
            return body
        assert time.monotonic() < deadline, f"move never got there: {body}"
        await asyncio.sleep(0.05)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 60
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
