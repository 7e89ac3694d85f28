"""The streaming client of every relay: the /api/v4/ passthrough to the internal API, and on a
secondary everything proxied to the primary.

A relay streams arbitrary bodies and may idle for minutes between chunks, so it has a pool
and timeouts of its own, apart from the internal API client's small calls. It does not trust
proxy variables from the environment, follow redirects or keep cookies: the edge relays, it is
not a browser.
"""

from __future__ import annotations

import http.cookiejar
from collections.abc import AsyncIterator

import httpx

from geogit.common.internal_api_client import FailureKind, failure_kind
from geogit.edge_proxy.config import EdgeProxySettings

# The gateway status for each kind of failure, and how to say it to a client.
GATEWAY_ANSWERS: dict[FailureKind, tuple[int, str]] = {
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
        self.status, self.summary = GATEWAY_ANSWERS[kind]


_FAILURES: dict[FailureKind, str] = {
    "unavailable": "cannot reach {upstream}: {exc!r}",
    "timeout": "{upstream} timed out: {exc!r}",
    "bad_answer": "{upstream}: connection failed: {exc!r}",
}


def _failure(exc: httpx.HTTPError, upstream: str) -> UpstreamError:
    kind = failure_kind(exc)
    return UpstreamError(kind, _FAILURES[kind].format(upstream=upstream, exc=exc))


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
