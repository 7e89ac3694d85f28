"""The SSH gateway's client of its site's internal API (DESIGN §3.3): the calls are the common
client's; the gateway adds its identity and what it makes of `/allowed` for a command: the
grant it streams to storage under, a refusal, or the primary to serve it from."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from geogit.common import internal_api_client
from geogit.common.internal_api import (
    AllowedRequest,
    Denied,
    GeoProxyToPrimary,
    GitAction,
    RepositoryRef,
    StorageAccess,
)
from geogit.common.internal_api_client import InternalApiError

ISSUER = "geogit-ssh-gateway"


@dataclass(frozen=True)
class Grant:
    storage: StorageAccess
    repository: RepositoryRef
    gl_id: str
    gl_username: str


# An API that is down fails a session in seconds; one that is busy may take the whole timeout.
CONNECT_TIMEOUT_SECONDS = 5.0


class InternalApiClient(internal_api_client.InternalApiClient):
    def __init__(self, base_url: str, secret: str, timeout: float) -> None:
        super().__init__(
            base_url, secret, ISSUER, timeout, connect_timeout=min(timeout, CONNECT_TIMEOUT_SECONDS)
        )

    async def allowed_command(
        self, action: GitAction, key_id: int, project: str
    ) -> Grant | Denied | GeoProxyToPrimary:
        """May this key run `action` on `project`, and where the repository lives if so."""
        answer = await self.allowed(
            AllowedRequest(action=action, protocol="ssh", key_id=key_id, project=project)
        )
        if isinstance(answer, Denied | GeoProxyToPrimary):
            return answer
        extra = answer.model_extra or {}
        try:
            return Grant(
                storage=StorageAccess.model_validate(extra.get("storage")),
                repository=RepositoryRef.model_validate(extra.get("repository")),
                gl_id=answer.gl_id,
                gl_username=answer.gl_username,
            )
        except ValidationError as exc:
            # Only an answer of the expected type counts.
            raise InternalApiError("allowed answered without storage and repository") from exc
