"""The replicator's calls to its own site's internal API (internal JWT): what each replica
should be (`replicables`, from the read model), and the registry it keeps there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar, cast

import httpx
from pydantic import BaseModel, ValidationError

from geogit.common.internal_api import (
    RegistryEntry,
    Replicable,
    ReplicablePage,
    ReplicationReport,
    ReportType,
)
from geogit.common.logging import CORRELATION_HEADER, get_correlation_id
from geogit.common.tokens import API_REQUEST_HEADER, INTERNAL_API_AUDIENCE, issue_token

ISSUER = "geogit-replicator"
PAGE = 500
Model = TypeVar("Model", bound=BaseModel)


class InternalApiError(Exception):
    """The internal API could not be asked (`status` None), or answered outside the contract."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InternalApiClient:
    def __init__(self, base_url: str, secret: str, timeout: float) -> None:
        self._secret = secret
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, trust_env=False)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        params: dict[str, int] | None = None,
        body: BaseModel | None = None,
    ) -> httpx.Response:
        headers = {
            API_REQUEST_HEADER: issue_token(self._secret, ISSUER, INTERNAL_API_AUDIENCE),
            CORRELATION_HEADER: get_correlation_id(),
        }
        if body is not None:
            headers["content-type"] = "application/json"
        try:
            return await self._http.request(
                method,
                path,
                params=params,
                content=body.model_dump_json() if body is not None else None,
                headers=headers,
            )
        except httpx.HTTPError as exc:
            raise InternalApiError(f"internal API unreachable: {exc!r}") from exc

    async def replicable(self, project_id: int) -> Replicable | None:
        """The project as the replica should be, or None once the project is gone."""
        response = await self._send("GET", f"/api/v4/internal/geo/replicables/{project_id}")
        if response.status_code == 404:
            return None
        return _parsed(response, Replicable)

    async def pages(self) -> AsyncIterator[ReplicablePage]:
        after: int | None = 0
        while after is not None:
            response = await self._send(
                "GET", "/api/v4/internal/geo/replicables", params={"after": after, "limit": PAGE}
            )
            page = _parsed(response, ReplicablePage)
            yield page
            after = page.next_after

    async def save(self, project_id: int, entry: RegistryEntry) -> None:
        path = f"/api/v4/internal/geo/registry/{project_id}"
        _expect_no_content(await self._send("PUT", path, body=entry))

    async def report(self, report_type: str, project_id: int, payload: str) -> None:
        """Hand a replication report (base64 protobuf) to the site's outbox."""
        body = ReplicationReport(
            type=cast(ReportType, report_type), project_id=project_id, payload=payload
        )
        _expect_no_content(await self._send("POST", "/api/v4/internal/geo/reports", body=body))

    async def forget(self, project_id: int) -> None:
        path = f"/api/v4/internal/geo/registry/{project_id}"
        _expect_no_content(await self._send("DELETE", path))


def _unexpected(response: httpx.Response) -> InternalApiError:
    return InternalApiError(
        f"internal API answered {response.status_code}: {response.text[:200]!r}",
        response.status_code,
    )


def _parsed(response: httpx.Response, model: type[Model]) -> Model:
    if response.status_code != 200:
        raise _unexpected(response)
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise InternalApiError(f"internal API answered an unexpected body: {exc}") from exc


def _expect_no_content(response: httpx.Response) -> None:
    if response.status_code != 204:
        raise _unexpected(response)
