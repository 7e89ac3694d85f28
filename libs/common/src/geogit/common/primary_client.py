"""A secondary's calls to the primary's Geo API, through its front door: the event store
(the internal API catching up) and repository states (read-your-writes; the replicator
settling a checksum that did not match).

Every call carries a fresh Geo token signed by this site; the primary verifies it against the
site's public key in its registry.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from geogit.common.events import Event, EventDecodeError, event_from_json
from geogit.common.geo import GEO_TOKEN_HEADER, GeoScope, GeoSigner
from geogit.common.internal_api import RepositoryState
from geogit.common.logging import CORRELATION_HEADER, get_correlation_id


class PrimaryUnavailable(Exception):
    """The primary could not be asked, or answered something other than the contract."""


class _EventPage(BaseModel):
    events: list[dict[str, Any]]
    last: int


class PrimaryClient:
    def __init__(
        self,
        primary_url: str,
        signer: GeoSigner,
        timeout: float,
        scope: GeoScope = "events",
    ) -> None:
        self._signer = signer
        self._scope: GeoScope = scope
        self._http = httpx.AsyncClient(
            base_url=primary_url.rstrip("/"), timeout=timeout, trust_env=False
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def retarget(self, primary_url: str) -> None:
        """Follow a promotion: later calls go to the new primary's front door."""
        self._http.base_url = httpx.URL(primary_url.rstrip("/"))

    def _headers(self) -> dict[str, str]:
        return {
            GEO_TOKEN_HEADER: self._signer.token(self._scope),
            CORRELATION_HEADER: get_correlation_id(),
        }

    async def _get(self, path: str, params: dict[str, int] | None = None) -> bytes:
        try:
            response = await self._http.get(path, params=params, headers=self._headers())
        except httpx.HTTPError as exc:
            raise PrimaryUnavailable(f"the primary is unreachable: {exc!r}") from exc
        if response.status_code != 200:
            raise PrimaryUnavailable(
                f"the primary answered {response.status_code} to {path}: {response.text[:200]!r}"
            )
        return response.content

    async def events_after(self, after: int, limit: int) -> list[Event]:
        """Events with a global sequence above `after`, in order."""
        body = await self._get("/api/v4/geo/events", {"after": after, "limit": limit})
        try:
            page = _EventPage.model_validate_json(body)
            return [event_from_json(item) for item in page.events]
        except (ValidationError, EventDecodeError) as exc:
            raise PrimaryUnavailable(f"the primary's event store answered nonsense: {exc}") from exc

    async def repository_state(self, project: int | str) -> RepositoryState:
        """By id, or by full path for a project this site has not heard of yet."""
        ref = quote(str(project), safe="")
        body = await self._get(f"/api/v4/geo/projects/{ref}/repository")
        try:
            return RepositoryState.model_validate_json(body)
        except ValidationError as exc:
            raise PrimaryUnavailable(f"the primary answered nonsense: {exc}") from exc
