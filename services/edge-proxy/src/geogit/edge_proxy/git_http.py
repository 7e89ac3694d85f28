"""Git smart HTTP routes: ask the internal API, then stream storage's RPC (DESIGN §3.1).

Nothing reaches storage before the internal API said `serve`, and nothing but one of the
contract's answers is acted on (Workhorse's rule): a 401/403/404 is passed to the client as
text git prints, a redirect becomes a 302, and anything else is a gateway error.

On a secondary (DESIGN §3.2) the answer may also be `proxy`: the request goes to the primary
as is. An upload-pack POST the secondary may serve still passes the wants check first, and a
secondary whose internal API cannot be asked sends its Git traffic to the primary rather than
failing it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qs

from geogit.common.geo import GEO_TOKEN_HEADER
from geogit.common.git_commands import HTTP_COMMANDS, HTTP_SERVICES, UPLOAD_PACK, HttpService
from geogit.common.internal_api import (
    Denied,
    GitHttpAuthorizeRequest,
    GitHttpProxy,
    GitHttpRedirect,
    GitHttpServe,
)
from geogit.common.internal_api_client import ApiUnavailable, InternalApiError
from geogit.common.logging import get_correlation_id
from geogit.common.paths import InvalidPathError, validate_project_full_path
from geogit.edge_proxy.asgi import TEXT, ClientDisconnected, Request, Send, media_type, respond
from geogit.edge_proxy.body import BodyError, Recorded, decoded, is_supported_encoding
from geogit.edge_proxy.clients.internal_api import InternalApiClient
from geogit.edge_proxy.clients.relay import GATEWAY_ANSWERS
from geogit.edge_proxy.clients.storage import StorageCallError, StorageClient
from geogit.edge_proxy.git_stream import NO_CACHE, relay
from geogit.edge_proxy.passthrough import ErrorWriter, raw_target
from geogit.edge_proxy.primary_proxy import PrimaryProxy, primary_error
from geogit.edge_proxy.wants import read_want_section, replayed

log = logging.getLogger(__name__)

# As storage accepts it ("version=2", "version=2:object-format=sha256").
_GIT_PROTOCOL = re.compile(r"[A-Za-z0-9=:._-]{0,256}")
_REDIRECT_PATH = re.compile(r"/(?!/)[\x21-\x7e]*")
BASIC_CHALLENGE = 'Basic realm="geogit"'


class GitHttp:
    def __init__(
        self,
        internal_api: InternalApiClient,
        storage: StorageClient,
        primary: PrimaryProxy,
        max_inflated_body_bytes: int,
    ) -> None:
        self.internal_api = internal_api
        self.storage = storage
        self.primary = primary
        self.max_inflated_body_bytes = max_inflated_body_bytes

    async def info_refs(self, request: Request, send: Send) -> None:
        services = parse_qs(request.scope["query_string"].decode("latin-1")).get("service")
        if not services:
            await respond(send, 403, "Dumb HTTP is not supported; use a smart git client.\n")
            return
        service = next((known for known in HTTP_SERVICES if known == services[0]), None)
        if service is None:
            await respond(send, 400, f"Unknown git service {services[0][:80]!r}.\n")
            return
        serve = await self._authorize(request, send, service)
        if isinstance(serve, GitHttpProxy):
            await self.primary.git(request, send, None, unreachable=self._fallback(serve))
        elif serve is not None:
            chunks = self.storage.info_refs(serve, service, request.header("git-protocol") or "")
            content_type = f"application/x-{service}-advertisement"
            await relay(request, send, chunks, content_type, after_body=False)

    def post(self, service: HttpService) -> Callable[[Request, Send], Awaitable[None]]:
        """The handler of `POST <project>/<service>`."""

        async def handle(request: Request, send: Send) -> None:
            await self._post(request, send, service)

        return handle

    async def _post(self, request: Request, send: Send, service: HttpService) -> None:
        expected = f"application/x-{service}-request"
        if media_type(request.header("content-type")) != expected:
            await respond(send, 415, f"Content-Type must be {expected}.\n")
            return
        encoding = (request.header("content-encoding") or "").strip().lower()
        if not is_supported_encoding(encoding):
            await respond(send, 415, f"Content-Encoding {encoding[:40]!r} is not supported.\n")
            return
        serve = await self._authorize(request, send, service)
        if isinstance(serve, GitHttpProxy):
            pushed = request.params["project"] if HTTP_COMMANDS[service].writes else None
            await self.primary.git(
                request,
                send,
                request.body(),
                pushed_project=pushed,
                unreachable=self._fallback(serve),
            )
            return
        if serve is None:
            return
        body: AsyncIterator[bytes] | None
        if service == UPLOAD_PACK.http_service and self.primary.geo.primary_url is not None:
            try:
                body = await self._checked_wants(request, send, serve, encoding)
            except (BodyError, StorageCallError) as exc:
                status = exc.status if isinstance(exc, BodyError) else 502
                await respond(send, status, f"{exc}\n")
                return
            except ClientDisconnected:
                return
        else:
            body = decoded(request.body(), encoding, self.max_inflated_body_bytes)
        if body is None:
            return  # relayed to the primary
        git_protocol = request.header("git-protocol") or ""
        chunks = self.storage.post(serve, service, git_protocol, body)
        content_type = f"application/x-{service}-result"
        await relay(request, send, chunks, content_type, after_body=True)

    @staticmethod
    def _fallback(answer: GitHttpProxy) -> ErrorWriter:
        """With the primary unreachable, a request this site refused gets its own refusal
        (a 401 challenge makes git retry with credentials, which this site may accept)."""
        if answer.denied_status is None:
            return primary_error
        status, message = answer.denied_status, answer.denied_message

        async def deny(send: Send, _status: int, _message: str) -> None:
            await _deny(send, Denied(status, message))

        return deny

    async def _checked_wants(
        self,
        request: Request,
        send: Send,
        serve: GitHttpServe,
        encoding: str,
    ) -> AsyncIterator[bytes] | None:
        """The body to serve locally, or None if the request had to go to the primary, which
        gets the body as the client sent it, not as decoded here."""
        raw = Recorded(request.body())
        body = decoded(raw.chunks(), encoding, self.max_inflated_body_bytes)
        section = await read_want_section(body)
        missing = await self.storage.missing_objects(serve, section.wants) if section.wants else []
        sent = raw.taken()
        if section.wants is not None and not missing:
            return replayed(section.prefix, body)
        request.log.update(wants_check="missing" if missing else "unchecked")
        await self.primary.git(request, send, replayed(sent, raw.rest()))
        return None

    async def _authorize(
        self, request: Request, send: Send, service: HttpService
    ) -> GitHttpServe | GitHttpProxy | None:
        """`serve` or `proxy`, or None once the client has had its answer."""
        project = request.params["project"]
        git_protocol = request.header("git-protocol") or ""
        request.log.update(project=project, git_service=service)
        try:
            validate_project_full_path(project)
        except InvalidPathError as exc:
            await respond(send, 400, f"{exc}\n")
            return None
        if not _GIT_PROTOCOL.fullmatch(git_protocol):
            await respond(send, 400, "Invalid Git-Protocol header.\n")
            return None
        question = GitHttpAuthorizeRequest(
            project=project,
            service=service,
            authorization=request.header("authorization") or "",
            git_protocol=git_protocol,
            geo_token=request.header(GEO_TOKEN_HEADER.lower()) or "",
            path=raw_target(request).decode("latin-1"),
            probe=request.method == "POST" and request.header("content-length") == "4",
        )
        # A secondary whose API cannot answer relays to the primary, which decides. Not a
        # request another site relayed here (it carries a Geo token): relaying it on would
        # swap that token for this site's and lose the user's identity (a 401 at the primary),
        # and the API's 503 may be its own refusal of the relay, which the caller must see.
        relay_on_failure = self.primary.geo.primary_url is not None and not question.geo_token
        try:
            answer = await self.internal_api.authorize(question)
        except ApiUnavailable as exc:
            request.log.update(outcome="internal_api_unavailable", error=str(exc))
            if relay_on_failure:
                return GitHttpProxy(reason=str(exc))
            retry = [("retry-after", exc.retry_after)] if exc.retry_after else []
            await respond(send, 503, f"{exc}\n", TEXT, [*NO_CACHE, *retry])
            return None
        except InternalApiError as exc:
            if relay_on_failure:
                request.log.update(internal_api_error=str(exc))
                return GitHttpProxy(reason="internal API unavailable")
            request.log.update(outcome="internal_api_error", error=str(exc))
            log.warning("authorization failed", extra={"kind": exc.kind, "error": str(exc)})
            status, summary = GATEWAY_ANSWERS[exc.kind]
            message = (
                f"The Git request could not be authorized: the internal API {summary}"
                f" (request id {get_correlation_id()}).\n"
            )
            await respond(send, status, message, TEXT, NO_CACHE)
            return None
        if isinstance(answer, Denied):
            request.log.update(outcome=f"denied_{answer.status}")
            await _deny(send, answer)
            return None
        if isinstance(answer, GitHttpRedirect):
            await self._redirect(request, send, answer)
            return None
        if isinstance(answer, GitHttpProxy):
            request.log.update(proxy_reason=answer.reason)
            return answer
        request.log.update(
            outcome="serve", gl_repository=answer.gl_repository, gl_id=answer.gl_id or None
        )
        return answer

    async def _redirect(self, request: Request, send: Send, answer: GitHttpRedirect) -> None:
        if not _REDIRECT_PATH.fullmatch(answer.location):
            request.log.update(outcome="internal_api_error", error="invalid redirect location")
            message = "The Git request could not be authorized: the internal API gave an invalid"
            reference = f"redirect (request id {get_correlation_id()}).\n"
            await respond(send, 502, f"{message} {reference}", TEXT, NO_CACHE)
            return
        request.log.update(outcome="redirect", location=answer.location)
        await respond(send, 302, "Redirecting.\n", TEXT, [*NO_CACHE, ("location", answer.location)])


async def _deny(send: Send, denial: Denied) -> None:
    challenge = [("www-authenticate", BASIC_CHALLENGE)] if denial.status == 401 else []
    await respond(send, denial.status, denial.message + "\n", TEXT, [*NO_CACHE, *challenge])
