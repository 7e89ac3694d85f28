"""Calls to this site's internal API: Git HTTP authorization and the /api/v4/ passthrough.

Two pooled clients, because the two uses want different limits: authorization is a small
JSON call on every Git request and must fail fast; the passthrough streams arbitrary API
bodies and may idle for minutes between chunks. Neither trusts proxy variables from the
environment, follows redirects or keeps cookies: the edge relays, it is not a browser.
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
    GitHttpAuthorizeRequest,
    GitHttpAuthorizeResponse,
    GitHttpRedirect,
    GitHttpServe,
)
from geogit.common.logging import CORRELATION_HEADER, get_correlation_id
from geogit.common.tokens import API_REQUEST_HEADER, INTERNAL_API_AUDIENCE, issue_token
from geogit.edge_proxy.config import EdgeProxySettings

log = logging.getLogger(__name__)

ISSUER = "geogit-edge-proxy"
AUTHORIZE_PATH = "/api/v4/internal/git_http/authorize"
LIVENESS_PATH = "/-/liveness"
DENIAL_STATUSES = frozenset({401, 403, 404})

_AUTHORIZE_ANSWER: TypeAdapter[GitHttpServe | GitHttpRedirect] = TypeAdapter(
    GitHttpAuthorizeResponse
)


@dataclass(frozen=True)
class Denied:
    """The internal API refused the request (401, 403 or 404) with a message for the user."""

    status: int
    message: str


AuthorizeOutcome = GitHttpServe | GitHttpRedirect | Denied


FailureKind = Literal["unavailable", "timeout", "bad_answer"]
# The gateway status for each kind of failure, and how to say it to a client.
_GATEWAY_ANSWERS: dict[FailureKind, tuple[int, str]] = {
    "unavailable": (503, "is unavailable"),
    "timeout": (504, "did not answer in time"),
    "bad_answer": (502, "gave an invalid answer"),
}


class InternalApiError(Exception):
    """The internal API could not be asked, or did not answer as the contract says.

    `kind`: `unavailable` (cannot connect), `timeout`, `bad_answer` (broken connection,
    unexpected status or body). The detail is for the log; clients get `status` and `summary`.
    """

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.status, self.summary = _GATEWAY_ANSWERS[kind]


def _failure(exc: httpx.HTTPError) -> InternalApiError:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return InternalApiError("unavailable", f"cannot reach the internal API: {exc!r}")
    if isinstance(exc, httpx.TimeoutException):
        return InternalApiError("timeout", f"internal API timed out: {exc!r}")
    return InternalApiError("bad_answer", f"internal API connection failed: {exc!r}")


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

    async def authorize(self, request: GitHttpAuthorizeRequest) -> AuthorizeOutcome:
        """Ask whether to serve a Git request; only an answer of the contract's shape counts."""
        headers = {
            API_REQUEST_HEADER: issue_token(self._secret, ISSUER, INTERNAL_API_AUDIENCE),
            CORRELATION_HEADER: get_correlation_id(),
            "content-type": "application/json",
        }
        try:
            response = await self._client.post(
                AUTHORIZE_PATH, content=request.model_dump_json(), headers=headers
            )
        except httpx.HTTPError as exc:
            raise _failure(exc) from exc
        if response.status_code == 200 and _is_json(response):
            try:
                return _AUTHORIZE_ANSWER.validate_json(response.content)
            except ValidationError as exc:
                raise InternalApiError("bad_answer", f"authorize answer invalid: {exc}") from exc
        if response.status_code in DENIAL_STATUSES and _is_json(response):
            try:
                message = ErrorMessage.model_validate_json(response.content).message
            except ValidationError as exc:
                raise InternalApiError("bad_answer", f"authorize denial invalid: {exc}") from exc
            return Denied(response.status_code, message)
        raise InternalApiError(
            "bad_answer",
            f"authorize answered {response.status_code}"
            f" ({response.headers.get('content-type', 'no content type')}):"
            f" {response.text[:200]!r}",
        )

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


class ApiPassthroughClient:
    """Streams one request to the internal API and its response back, bytes untouched."""

    def __init__(self, settings: EdgeProxySettings) -> None:
        self._base = httpx.URL(settings.internal_api_url)
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
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None,
    ) -> httpx.Response:
        """Send the request; the caller reads the streamed response and must close it.

        `target` is the client's raw path and query, so percent-encoding such as GitLab's
        `namespace%2Fproject` reaches the internal API as the client wrote it.
        """
        url = self._base.copy_with(raw_path=self._base.raw_path.rstrip(b"/") + target)
        request = self._client.build_request(method, url, headers=headers, content=body)
        try:
            return await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _failure(exc) from exc
