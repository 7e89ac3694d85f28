"""Calls to this site's internal API (Git HTTP authorization, Geo proxy detection, relayed
push reports) and the streaming client of every relay (the /api/v4/ passthrough, and on a
secondary everything proxied to the primary).

Two pooled clients, because the two uses want different limits: the internal calls are small
JSON calls that must fail fast; a relay streams arbitrary bodies and may idle for minutes
between chunks. Neither trusts proxy variables from the environment, follows redirects or
keeps cookies: the edge relays, it is not a browser.
"""

from __future__ import annotations

import http.cookiejar
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import httpx
from pydantic import TypeAdapter, ValidationError

from geogit.common.internal_api import (
    ErrorMessage,
    GeoProxyInfo,
    GitHttpAuthorizeRequest,
    GitHttpAuthorizeResponse,
    GitHttpProxy,
    GitHttpRedirect,
    GitHttpServe,
    ProxiedPush,
    Unavailable,
    unavailable_answer,
)
from geogit.common.logging import CORRELATION_HEADER, get_correlation_id
from geogit.common.tokens import API_REQUEST_HEADER, INTERNAL_API_AUDIENCE, issue_token
from geogit.edge_proxy.config import EdgeProxySettings

log = logging.getLogger(__name__)

ISSUER = "geogit-edge-proxy"
AUTHORIZE_PATH = "/api/v4/internal/git_http/authorize"
GEO_PROXY_PATH = "/api/v4/geo/proxy"
PROXIED_PUSH_PATH = "/api/v4/internal/geo/proxied_push"
LIVENESS_PATH = "/-/liveness"
DENIAL_STATUSES = frozenset({401, 403, 404})

_AUTHORIZE_ANSWER: TypeAdapter[GitHttpServe | GitHttpRedirect | GitHttpProxy] = TypeAdapter(
    GitHttpAuthorizeResponse
)


@dataclass(frozen=True)
class Denied:
    """The internal API refused the request (401, 403 or 404) with a message for the user."""

    status: int
    message: str


AuthorizeOutcome = GitHttpServe | GitHttpRedirect | GitHttpProxy | Denied | Unavailable


FailureKind = Literal["unavailable", "timeout", "bad_answer"]
# The gateway status for each kind of failure, and how to say it to a client.
_GATEWAY_ANSWERS: dict[FailureKind, tuple[int, str]] = {
    "unavailable": (503, "is unavailable"),
    "timeout": (504, "did not answer in time"),
    "bad_answer": (502, "gave an invalid answer"),
}


class UpstreamError(Exception):
    """An upstream (the internal API; on a secondary also the primary) could not be asked, or
    did not answer as the contract says.

    `kind`: `unavailable` (cannot connect), `timeout`, `bad_answer` (broken connection,
    unexpected status or body). The detail is for the log; clients get `status` and `summary`.
    """

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.status, self.summary = _GATEWAY_ANSWERS[kind]


def _failure(exc: httpx.HTTPError, upstream: str = "the internal API") -> UpstreamError:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return UpstreamError("unavailable", f"cannot reach {upstream}: {exc!r}")
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamError("timeout", f"{upstream} timed out: {exc!r}")
    return UpstreamError("bad_answer", f"{upstream}: connection failed: {exc!r}")


def _is_json(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


class InternalApiClient:
    def __init__(self, settings: EdgeProxySettings) -> None:
        self._secret = settings.internal_api_secret
        self._client = httpx.AsyncClient(
            base_url=settings.internal_api_url,
            timeout=httpx.Timeout(
                settings.authorize_timeout_seconds,
                connect=settings.connect_timeout_seconds,
                pool=settings.connect_timeout_seconds,
            ),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _headers(self) -> dict[str, str]:
        return {
            API_REQUEST_HEADER: issue_token(self._secret, ISSUER, INTERNAL_API_AUDIENCE),
            CORRELATION_HEADER: get_correlation_id(),
            "content-type": "application/json",
        }

    async def authorize(self, request: GitHttpAuthorizeRequest) -> AuthorizeOutcome:
        """Ask whether to serve a Git request; only an answer of the contract's shape counts."""
        try:
            response = await self._client.post(
                AUTHORIZE_PATH, content=request.model_dump_json(), headers=self._headers()
            )
        except httpx.HTTPError as exc:
            raise _failure(exc) from exc
        if response.status_code == 200 and _is_json(response):
            try:
                return _AUTHORIZE_ANSWER.validate_json(response.content)
            except ValidationError as exc:
                raise UpstreamError("bad_answer", f"authorize answer invalid: {exc}") from exc
        if response.status_code in DENIAL_STATUSES and _is_json(response):
            try:
                message = ErrorMessage.model_validate_json(response.content).message
            except ValidationError as exc:
                raise UpstreamError("bad_answer", f"authorize denial invalid: {exc}") from exc
            return Denied(response.status_code, message)
        unavailable = unavailable_answer(response.status_code, response.headers, response.content)
        if unavailable is not None:
            return unavailable
        raise UpstreamError(
            "bad_answer",
            f"authorize answered {response.status_code}"
            f" ({response.headers.get('content-type', 'no content type')}):"
            f" {response.text[:200]!r}",
        )

    async def geo_proxy(self) -> GeoProxyInfo:
        """Whether this site proxies to a primary, where, and the token to send (DESIGN §3.4)."""
        try:
            response = await self._client.get(GEO_PROXY_PATH, headers=self._headers())
        except httpx.HTTPError as exc:
            raise _failure(exc) from exc
        if response.status_code != 200 or not _is_json(response):
            raise UpstreamError("bad_answer", f"geo/proxy answered {response.status_code}")
        try:
            return GeoProxyInfo.model_validate_json(response.content)
        except ValidationError as exc:
            raise UpstreamError("bad_answer", f"geo/proxy answer invalid: {exc}") from exc

    async def proxied_push(self, project: str) -> None:
        """Report a push relayed to the primary, so the next read waits for its replica."""
        body = ProxiedPush(project=project).model_dump_json()
        try:
            response = await self._client.post(
                PROXIED_PUSH_PATH, content=body, headers=self._headers()
            )
        except httpx.HTTPError as exc:
            raise _failure(exc) from exc
        if response.status_code != 204:
            raise UpstreamError("bad_answer", f"proxied_push answered {response.status_code}")

    async def reachable(self) -> bool:
        try:
            response = await self._client.get(LIVENESS_PATH, timeout=2.0)
        except httpx.HTTPError as exc:
            log.warning("internal API unreachable", extra={"error": repr(exc)})
            return False
        return response.status_code == 200


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Refuses every cookie: a shared client must never carry one user's cookie to another."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False


class RelayClient:
    """Streams one request to an upstream (the internal API, or the primary's front door) and
    its response back, bytes untouched."""

    def __init__(self, settings: EdgeProxySettings) -> None:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                settings.api_timeout_seconds,
                connect=settings.connect_timeout_seconds,
                pool=settings.connect_timeout_seconds,
            ),
            limits=httpx.Limits(
                max_connections=settings.api_max_connections, max_keepalive_connections=64
            ),
            cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
            trust_env=False,
            follow_redirects=False,
        )
        # httpx adds Accept, Accept-Encoding and User-Agent of its own; a relay adds none.
        self._client.headers.clear()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def open(
        self,
        method: str,
        base_url: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None,
        upstream: str = "the internal API",
    ) -> httpx.Response:
        """Send the request; the caller reads the streamed response and must close it.

        `target` is the client's raw path and query, so percent-encoding such as GitLab's
        `namespace%2Fproject` reaches the upstream as the client wrote it.
        """
        base = httpx.URL(base_url)
        url = base.copy_with(raw_path=base.raw_path.rstrip(b"/") + target)
        request = self._client.build_request(method, url, headers=headers, content=body)
        try:
            return await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _failure(exc, upstream) from exc
