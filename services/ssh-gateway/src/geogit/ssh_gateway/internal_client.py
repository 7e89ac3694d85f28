"""The internal API calls the gateway makes: authorized_keys and allowed (DESIGN §3.3)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import httpx
from pydantic import ValidationError

from geogit.common.internal_api import (
    AllowedRequest,
    AllowedResponse,
    AuthorizedKey,
    GeoProxyToPrimary,
    GitAction,
    ProxiedPush,
    RepositoryRef,
    StorageAccess,
    unavailable_answer,
)
from geogit.common.logging import CORRELATION_HEADER, get_correlation_id
from geogit.common.tokens import API_REQUEST_HEADER, INTERNAL_API_AUDIENCE, issue_token

ISSUER = "geogit-ssh-gateway"
# GitLab's status for a "custom action": on a secondary, serve the command from the primary.
STATUS_CUSTOM_ACTION = 300


class InternalApiError(Exception):
    """The API could not be asked or answered nonsense; the message is safe for the client."""


class ApiUnavailable(InternalApiError):
    """The API answered its own 503 (its database is down); the message is the API's, for the
    user to read instead of a refusal."""


def _raise_if_unavailable(response: httpx.Response) -> None:
    unavailable = unavailable_answer(response.status_code, response.headers, response.content)
    if unavailable is not None:
        raise ApiUnavailable(unavailable.message)


@dataclass(frozen=True)
class Denial:
    status: int
    message: str


@dataclass(frozen=True)
class Grant:
    storage: StorageAccess
    repository: RepositoryRef
    gl_id: str
    gl_username: str


class InternalApiClient:
    def __init__(self, base_url: str, secret: str, timeout: float) -> None:
        self._secret = secret
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    def _headers(self) -> dict[str, str]:
        headers = {API_REQUEST_HEADER: issue_token(self._secret, ISSUER, INTERNAL_API_AUDIENCE)}
        if correlation_id := get_correlation_id():
            headers[CORRELATION_HEADER] = correlation_id
        return headers

    async def authorized_key(self, public_blob: bytes) -> AuthorizedKey | None:
        """The key's id and user, or None for a key nobody registered."""
        try:
            response = await self._http.get(
                "/api/v4/internal/authorized_keys",
                params={"key": base64.b64encode(public_blob).decode()},
                headers=self._headers(),
            )
        except httpx.HTTPError as exc:
            raise InternalApiError(f"internal API unreachable: {exc}") from exc
        _raise_if_unavailable(response)
        if response.status_code in (403, 404):
            return None
        if response.status_code != 200:
            raise InternalApiError(f"authorized_keys answered {response.status_code}")
        try:
            return AuthorizedKey.model_validate_json(response.content)
        except ValidationError as exc:
            raise InternalApiError("authorized_keys answered an unexpected body") from exc

    async def allowed(
        self, action: GitAction, key_id: int, project: str
    ) -> Grant | Denial | GeoProxyToPrimary:
        body = AllowedRequest(action=action, protocol="ssh", key_id=key_id, project=project)
        try:
            response = await self._http.post(
                "/api/v4/internal/allowed",
                content=body.model_dump_json(),
                headers={**self._headers(), "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise InternalApiError(f"internal API unreachable: {exc}") from exc
        _raise_if_unavailable(response)
        if response.status_code == STATUS_CUSTOM_ACTION:
            try:
                return GeoProxyToPrimary.model_validate_json(response.content)
            except ValidationError as exc:
                raise InternalApiError("allowed answered 300 without a Geo proxy action") from exc
        try:
            answer = AllowedResponse.model_validate_json(response.content)
        except ValidationError as exc:
            raise InternalApiError(f"allowed answered {response.status_code}") from exc
        if response.status_code != 200 or not answer.status:
            return Denial(response.status_code, answer.message or "access denied")
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

    async def proxied_push(self, project: str) -> None:
        """Report a push relayed to the primary: this site's next read of the project must
        wait for a replica that has it (read-your-writes)."""
        try:
            response = await self._http.post(
                "/api/v4/internal/geo/proxied_push",
                content=ProxiedPush(project=project).model_dump_json(),
                headers={**self._headers(), "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise InternalApiError(f"internal API unreachable: {exc}") from exc
        if response.status_code != 204:
            raise InternalApiError(f"proxied_push answered {response.status_code}")
