"""The internal API's client for the other sites' front doors: the site-local Geo routes
through which sites agree on who is primary (DESIGN §10).

Every call carries this site's Geo token (scope `site`), which the other site verifies against
its registry. Failures are `SiteUnreachable`, saying which site and why: during a failover a
site that does not answer is expected, and the caller decides what that means.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from geogit.common.geo import GEO_TOKEN_HEADER
from geogit.common.geo_coordination import (
    DrainedOut,
    FollowIn,
    FollowOut,
    MaintenanceIn,
    SiteStateOut,
)
from geogit.common.logging import CORRELATION_HEADER, get_correlation_id
from geogit.internal_api.geo.site_health import SiteHealthOut

Answer = TypeVar("Answer", bound=BaseModel)


class SiteUnreachable(Exception):
    """The site could not be asked, or refused; `status` is its HTTP answer if it gave one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SitesClient:
    def __init__(self, token: Callable[[], str], timeout: float) -> None:
        self._token = token
        self._http = httpx.AsyncClient(timeout=timeout, trust_env=False)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def site_state(self, url: str, *, timeout: float | None = None) -> SiteStateOut:
        body = await self._call("GET", url, "/api/v4/geo/site_state", timeout=timeout)
        return _parse(SiteStateOut, url, body)

    async def site_health(self, url: str, *, timeout: float | None = None) -> SiteHealthOut:
        body = await self._call("GET", url, "/api/v4/geo/site_health", timeout=timeout)
        return _parse(SiteHealthOut, url, body)

    async def enter_maintenance(self, url: str, request: MaintenanceIn) -> DrainedOut:
        body = await self._call(
            "POST",
            url,
            "/api/v4/geo/maintenance",
            json=request.model_dump(),
            timeout=request.drain_timeout_seconds + 10,
        )
        return _parse(DrainedOut, url, body)

    async def leave_maintenance(self, url: str) -> None:
        await self._call("DELETE", url, "/api/v4/geo/maintenance")

    async def follow(self, url: str, request: FollowIn) -> FollowOut:
        body = await self._call(
            "POST", url, "/api/v4/geo/follow", json=request.model_dump(), timeout=60.0
        )
        return _parse(FollowOut, url, body)

    async def _call(
        self,
        method: str,
        url: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> bytes:
        headers = {GEO_TOKEN_HEADER: self._token(), CORRELATION_HEADER: get_correlation_id()}
        target = url.rstrip("/") + path
        try:
            response = await self._http.request(
                method,
                target,
                json=json,
                headers=headers,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.HTTPError as exc:
            raise SiteUnreachable(f"{target}: {exc!r}") from exc
        if response.status_code >= 300:
            raise SiteUnreachable(
                f"{target} answered {response.status_code}: {_message(response)}",
                response.status_code,
            )
        return response.content


def _parse(answer: type[Answer], url: str, body: bytes) -> Answer:
    try:
        return answer.model_validate_json(body)
    except ValidationError as exc:
        raise SiteUnreachable(f"{url} answered nonsense: {exc}") from exc


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    return str(body.get("message", body))[:300] if isinstance(body, dict) else str(body)[:300]
