"""What every push needs from storage, whichever transport brought it: the hooks environment."""

from __future__ import annotations

from pathlib import Path

from geogit.common.logging import get_correlation_id
from geogit.common.proto.storage.v1 import shared_pb2
from geogit.storage.hook_client import PAYLOAD_ENV
from geogit.storage.hooks import HookRepository, HooksPayload


class PushEnvironment:
    def __init__(self, socket_path: Path, token: str, storage_name: str, hooks_dir: Path) -> None:
        self.socket_path = socket_path
        self.token = token
        self.storage_name = storage_name
        self.hooks_dir = hooks_dir

    def hooks_env(self, repository: shared_pb2.Repository, user: shared_pb2.User) -> dict[str, str]:
        payload = HooksPayload(
            repository=HookRepository(
                storage_name=repository.storage_name or self.storage_name,
                relative_path=repository.relative_path,
                gl_repository=repository.gl_repository,
                gl_project_path=repository.gl_project_path,
            ),
            socket_path=str(self.socket_path),
            token=self.token,
            gl_id=user.gl_id,
            gl_username=user.gl_username,
            protocol=user.protocol,
            correlation_id=get_correlation_id(),
        )
        return {PAYLOAD_ENV: payload.encode()}
