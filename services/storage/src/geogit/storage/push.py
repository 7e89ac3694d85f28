"""What every push needs from storage, whichever transport brought it: the hooks environment."""

from __future__ import annotations

from pathlib import Path

from geogit.common.logging import get_correlation_id
from geogit.common.proto.storage.v1 import shared_pb2
from geogit.common.tokens import HOOKS_AUDIENCE, issue_token
from geogit.storage.hooks import PAYLOAD_ENV, HookRepository, HooksPayload


def hooks_token(secret: str, ttl_seconds: float) -> str:
    """Valid for HookService only, and for as long as one push may run."""
    return issue_token(secret, "geogit-storage", HOOKS_AUDIENCE, ttl_seconds=int(ttl_seconds))


class PushEnvironment:
    def __init__(
        self, address: str, secret: str, storage_name: str, hooks_dir: Path, token_ttl: float
    ) -> None:
        self.address = address
        self.secret = secret
        self.storage_name = storage_name
        self.hooks_dir = hooks_dir
        self.token_ttl = token_ttl

    def hooks_env(self, repository: shared_pb2.Repository, user: shared_pb2.User) -> dict[str, str]:
        payload = HooksPayload(
            repository=HookRepository(
                storage_name=repository.storage_name or self.storage_name,
                relative_path=repository.relative_path,
                gl_repository=repository.gl_repository,
                gl_project_path=repository.gl_project_path,
            ),
            storage_address=self.address,
            storage_token=hooks_token(self.secret, self.token_ttl),
            gl_id=user.gl_id,
            gl_username=user.gl_username,
            protocol=user.protocol,
            correlation_id=get_correlation_id(),
        )
        return {PAYLOAD_ENV: payload.encode()}
