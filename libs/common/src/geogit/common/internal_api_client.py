"""The one client of a site's internal API (DESIGN §3.3), for every service that calls it: the
edge-proxy, the SSH gateway, storage's hooks and the replicator.

Every call carries a fresh internal JWT naming the caller and the request's correlation id,
and is bounded by the caller's timeouts. What comes back is one of the contract's typed answers
(`geogit.common.internal_api`), a `Denied` carrying the message for the user, or a typed error:
only an answer of the expected shape counts (Workhorse's rule). The API's own 503 (its
database is down) is `ApiUnavailable`, whose message and Retry-After the gateways pass on, so a
user reads what is wrong instead of a gateway error. Proxy variables from the environment are
not trusted: these calls never leave the site.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import AsyncIterator, Mapping
from typing import Literal, TypeVar, cast

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from geogit.common.internal_api import (
    DENIAL_STATUSES,
    STATUS_CUSTOM_ACTION,
    UNKNOWN_KEY_STATUSES,
    AllowedRequest,
    AllowedResponse,
    AuthorizedKey,
    Denied,
    ErrorMessage,
    GeoProxyInfo,
    GeoProxyToPrimary,
    GeoSiteStatus,
    GitHttpAuthorizeRequest,
    GitHttpAuthorizeResponse,
    GitHttpProxy,
    GitHttpRedirect,
    GitHttpServe,
    PostReceiveRequest,
    PostReceiveResponse,
    ProxiedPush,
    RegistryEntry,
    Replicable,
    ReplicablePage,
    ReplicationReport,
    ReportType,
    Unavailable,
    unavailable_answer,
)
from geogit.common.logging import CORRELATION_HEADER, get_correlation_id
from geogit.common.tokens import (
    API_REQUEST_HEADER,
    INTERNAL_API_AUDIENCE,
    MAX_TTL_SECONDS,
    issue_token,
)

log = logging.getLogger(__name__)

REPLICABLES_PAGE = 500
LIVENESS_TIMEOUT_SECONDS = 2.0

FailureKind = Literal["unavailable", "timeout", "bad_answer"]
Model = TypeVar("Model", bound=BaseModel)

_AUTHORIZE_ANSWER: TypeAdapter[GitHttpServe | GitHttpRedirect | GitHttpProxy] = TypeAdapter(
    GitHttpAuthorizeResponse
)


class InternalApiError(Exception):
    """The internal API could not be asked, or answered outside the contract.

    `kind`: `unavailable` (cannot connect), `timeout`, or `bad_answer` (broken connection,
    unexpected status or body); `status` is the status it answered, if it answered. The message
    is safe to show a user.
    """

    def __init__(
        self, message: str, kind: FailureKind = "bad_answer", status: int | None = None
    ) -> None:
        super().__init__(message)
        self.kind: FailureKind = kind
        self.status = status


class ApiUnavailable(InternalApiError):
    """The API answered its own 503 (its database is down): the message is the API's, for the
    user to read instead of a refusal, with the Retry-After seconds it suggested, if any."""

    def __init__(self, answer: Unavailable) -> None:
        super().__init__(answer.message, "unavailable", 503)
        self.retry_after = answer.retry_after


AuthorizeOutcome = GitHttpServe | GitHttpRedirect | GitHttpProxy | Denied


def failure_kind(exc: httpx.HTTPError) -> FailureKind:
    """How a call that got no answer failed: for a gateway, its 503, 504 or 502."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return "unavailable"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    return "bad_answer"


class InternalApiClient:
    """The internal API as `issuer` (the calling service) sees it, one method per endpoint.

    `timeout` bounds each call; `connect_timeout` (default: `timeout`) bounds connecting and
    waiting for a pooled connection, so an API that is down fails fast.
    """

    def __init__(
        self,
        base_url: str,
        secret: str,
        issuer: str,
        timeout: float = 30.0,
        *,
        connect_timeout: float | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        self._secret = secret
        self._issuer = issuer
        # A call may wait at a busy API for most of its timeout before the token is checked;
        # the token outlives the call, or a slow answer would come back as "token expired".
        self._token_ttl = min(MAX_TTL_SECONDS, max(30, math.ceil(timeout)))
        connect = timeout if connect_timeout is None else connect_timeout
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout, connect=connect, pool=connect),
            limits=limits or httpx.Limits(max_connections=100, max_keepalive_connections=20),
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # Git access: the edge's smart-HTTP authorization, the SSH gateway's keys and commands,
    # and the pre-receive hook's policy check.

    async def authorize(self, request: GitHttpAuthorizeRequest) -> AuthorizeOutcome:
        """Whether to serve a smart-HTTP request (DESIGN §3.1): serve, redirect, proxy or not."""
        response = await self._send("POST", "/api/v4/internal/git_http/authorize", body=request)
        if response.status_code == 200 and _is_json(response):
            try:
                return _AUTHORIZE_ANSWER.validate_json(response.content)
            except ValidationError as exc:
                raise InternalApiError(f"authorize answer invalid: {exc}") from exc
        if response.status_code in DENIAL_STATUSES and _is_json(response):
            try:
                message = ErrorMessage.model_validate_json(response.content).message
            except ValidationError as exc:
                raise InternalApiError(f"authorize denial invalid: {exc}") from exc
            return Denied(response.status_code, message)
        raise _unexpected(response)

    async def authorized_key(self, public_blob: bytes) -> AuthorizedKey | None:
        """The key's id and user, or None for a key nobody registered."""
        key = base64.b64encode(public_blob).decode()
        response = await self._send("GET", "/api/v4/internal/authorized_keys", params={"key": key})
        if response.status_code in UNKNOWN_KEY_STATUSES:
            return None
        return _parsed(response, AuthorizedKey)

    async def allowed(
        self, request: AllowedRequest
    ) -> AllowedResponse | Denied | GeoProxyToPrimary:
        """May this Git command run: a grant, a refusal, or (SSH on a secondary, 300) the
        primary to serve it from."""
        response = await self._send("POST", "/api/v4/internal/allowed", body=request)
        if response.status_code == STATUS_CUSTOM_ACTION:
            try:
                return GeoProxyToPrimary.model_validate_json(response.content)
            except ValidationError as exc:
                raise InternalApiError("allowed answered 300 without a Geo proxy action") from exc
        status = response.status_code
        if status in DENIAL_STATUSES:
            return Denied(status, _message(response) or f"access denied ({status})")
        if status not in (200, 503):
            # A refusal in the answer's own shape (e.g. a 400 for changes it cannot read).
            try:
                refusal = AllowedResponse.model_validate_json(response.content)
            except ValidationError as exc:
                raise _unexpected(response) from exc
            if refusal.status:
                raise _unexpected(response)
            return Denied(status, refusal.message or f"access denied ({status})")
        answer = _parsed(response, AllowedResponse)
        if not answer.status:
            return Denied(status, answer.message or "access denied")
        return answer

    # Hooks: pre-receive is `allowed` with `count_push`; post-receive records the push.

    async def post_receive(self, request: PostReceiveRequest) -> PostReceiveResponse:
        response = await self._send("POST", "/api/v4/internal/post_receive", body=request)
        return _parsed(response, PostReceiveResponse)

    # Geo: the edge's proxy settings, relayed pushes, and the replicator's read model,
    # registry and reports.

    async def geo_proxy(self) -> GeoProxyInfo:
        """Whether this site proxies to a primary, where, and the token to send (DESIGN §3.4)."""
        return _parsed(await self._send("GET", "/api/v4/geo/proxy"), GeoProxyInfo)

    async def proxied_push(self, project: str) -> None:
        """Report a push relayed to the primary: this site's next read of the project must
        wait for a replica that has it (read-your-writes)."""
        body = ProxiedPush(project=project)
        _expect_no_content(await self._send("POST", "/api/v4/internal/geo/proxied_push", body=body))

    async def replicable(self, project_id: int) -> Replicable | None:
        """The project as the replica should be, or None once the project is gone."""
        response = await self._send("GET", f"/api/v4/internal/geo/replicables/{project_id}")
        if response.status_code == 404:
            return None
        return _parsed(response, Replicable)

    async def pages(self) -> AsyncIterator[ReplicablePage]:
        """Every replicable, a page at a time, in project id order."""
        after: int | None = 0
        while after is not None:
            params = {"after": after, "limit": REPLICABLES_PAGE}
            response = await self._send("GET", "/api/v4/internal/geo/replicables", params=params)
            page = _parsed(response, ReplicablePage)
            yield page
            after = page.next_after

    async def save(self, project_id: int, entry: RegistryEntry) -> None:
        path = f"/api/v4/internal/geo/registry/{project_id}"
        _expect_no_content(await self._send("PUT", path, body=entry))

    async def forget(self, project_id: int) -> None:
        path = f"/api/v4/internal/geo/registry/{project_id}"
        _expect_no_content(await self._send("DELETE", path))

    async def site_status(self) -> GeoSiteStatus:
        """The site's own Geo view: its role, epoch and primary (DESIGN §10), feed, replicas."""
        return _parsed(await self._send("GET", "/api/v4/internal/geo/status"), GeoSiteStatus)

    async def report(self, report_type: str, project_id: int, payload: str) -> None:
        """Hand a replication report (base64 protobuf) to the site's report outbox."""
        body = ReplicationReport(
            type=cast(ReportType, report_type), project_id=project_id, payload=payload
        )
        _expect_no_content(await self._send("POST", "/api/v4/internal/geo/reports", body=body))

    # Ops.

    async def reachable(self) -> bool:
        """Whether the API answers its liveness probe: a readiness check, never an error."""
        try:
            response = await self._http.get("/-/liveness", timeout=LIVENESS_TIMEOUT_SECONDS)
        except httpx.HTTPError as exc:
            log.warning("internal API unreachable", extra={"error": repr(exc)})
            return False
        return response.status_code == 200

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: BaseModel | None = None,
    ) -> httpx.Response:
        headers = {
            API_REQUEST_HEADER: issue_token(
                self._secret, self._issuer, INTERNAL_API_AUDIENCE, self._token_ttl
            )
        }
        if correlation_id := get_correlation_id():
            headers[CORRELATION_HEADER] = correlation_id
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            return await self._http.request(
                method,
                path,
                params=params,
                content=body.model_dump_json() if body is not None else None,
                headers=headers,
            )
        except httpx.HTTPError as exc:
            raise InternalApiError(f"internal API unreachable: {exc}", failure_kind(exc)) from exc


def _is_json(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _unexpected(response: httpx.Response) -> InternalApiError:
    """An answer outside the contract; the API's own 503 stays `ApiUnavailable`."""
    unavailable = unavailable_answer(response.status_code, response.headers, response.content)
    if unavailable is not None:
        return ApiUnavailable(unavailable)
    detail = _message(response) or response.text[:200]
    return InternalApiError(
        f"internal API answered {response.status_code}: {detail}", status=response.status_code
    )


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("message", "")) if isinstance(body, dict) else ""


def _parsed(response: httpx.Response, model: type[Model]) -> Model:
    if response.status_code != 200:
        raise _unexpected(response)
    if not _is_json(response):
        content_type = response.headers.get("content-type", "no content type")
        raise InternalApiError(f"internal API answered {content_type}", status=200)
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise InternalApiError(
            f"internal API sent an unexpected answer: {exc}", status=200
        ) from exc


def _expect_no_content(response: httpx.Response) -> None:
    if response.status_code != 204:
        raise _unexpected(response)
