"""Storage's narrow client for the internal API: the three calls a push makes."""

from __future__ import annotations

from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from geogit.common.internal_api import (
    AllowedRequest,
    AllowedResponse,
    PostReceiveRequest,
    PostReceiveResponse,
    PreReceiveRequest,
    PreReceiveResponse,
)
from geogit.common.logging import CORRELATION_HEADER, get_correlation_id
from geogit.common.tokens import API_REQUEST_HEADER, INTERNAL_API_AUDIENCE, issue_token

M = TypeVar("M", bound=BaseModel)


class InternalApiError(Exception):
    """The internal API could not be reached or answered nonsense."""


class InternalApiClient:
    def __init__(self, base_url: str, secret: str, timeout: float = 30.0) -> None:
        self._secret = secret
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def allowed(self, request: AllowedRequest) -> AllowedResponse:
        """A refusal (401/403/404 with a message) is an answer, not an error."""
        response = await self._post("/api/v4/internal/allowed", request)
        if response.status_code in (401, 403, 404):
            message = _message(response) or f"access denied ({response.status_code})"
            return AllowedResponse(status=False, message=message)
        return _parse(response, AllowedResponse)

    async def pre_receive(self, request: PreReceiveRequest) -> PreReceiveResponse:
        return _parse(await self._post("/api/v4/internal/pre_receive", request), PreReceiveResponse)

    async def post_receive(self, request: PostReceiveRequest) -> PostReceiveResponse:
        response = await self._post("/api/v4/internal/post_receive", request)
        return _parse(response, PostReceiveResponse)

    async def _post(self, path: str, body: BaseModel) -> httpx.Response:
        headers = {
            API_REQUEST_HEADER: issue_token(self._secret, "geogit-storage", INTERNAL_API_AUDIENCE)
        }
        if correlation_id := get_correlation_id():
            headers[CORRELATION_HEADER] = correlation_id
        try:
            return await self._http.post(
                path,
                content=body.model_dump_json(),
                headers={**headers, "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise InternalApiError(f"internal API unreachable: {exc}") from exc


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("message", "")) if isinstance(body, dict) else ""


def _parse(response: httpx.Response, model: type[M]) -> M:
    if response.status_code != 200:
        detail = _message(response) or response.text[:200]
        raise InternalApiError(f"internal API answered {response.status_code}: {detail}")
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise InternalApiError(f"internal API sent an unexpected answer: {exc}") from exc
