"""Git smart HTTP routes: ask the internal API, then stream storage's RPC (DESIGN §3.1).

Nothing reaches storage before the internal API said `serve`, and nothing but one of the
contract's answers is acted on (Workhorse's rule): a 401/403/404 is passed to the client as
text git prints, a redirect becomes a 302, and anything else is a gateway error.
"""

from __future__ import annotations

import logging
import re
from typing import get_args
from urllib.parse import parse_qs

from geogit.common.internal_api import GitHttpAuthorizeRequest, GitHttpRedirect, GitHttpServe
from geogit.common.logging import get_correlation_id
from geogit.common.paths import InvalidPathError, validate_project_full_path
from geogit.edge_proxy.asgi import TEXT, Request, Send, media_type, respond
from geogit.edge_proxy.body import decoded, is_supported_encoding
from geogit.edge_proxy.clients.internal_api import Denied, InternalApiClient, InternalApiError
from geogit.edge_proxy.clients.storage import GitService, StorageClient
from geogit.edge_proxy.git_stream import NO_CACHE, relay

log = logging.getLogger(__name__)

SERVICES: tuple[GitService, ...] = get_args(GitService)
# As storage accepts it ("version=2", "version=2:object-format=sha256").
_GIT_PROTOCOL = re.compile(r"[A-Za-z0-9=:._-]{0,256}")
_REDIRECT_PATH = re.compile(r"/(?!/)[\x21-\x7e]*")
BASIC_CHALLENGE = 'Basic realm="geogit"'


class GitHttp:
    def __init__(self, internal_api: InternalApiClient, storage: StorageClient) -> None:
        self.internal_api = internal_api
        self.storage = storage

    async def info_refs(self, request: Request, send: Send) -> None:
        services = parse_qs(request.scope["query_string"].decode("latin-1")).get("service")
        if not services:
            await respond(send, 403, "Dumb HTTP is not supported; use a smart git client.\n")
            return
        service = next((known for known in SERVICES if known == services[0]), None)
        if service is None:
            await respond(send, 400, f"Unknown git service {services[0][:80]!r}.\n")
            return
        serve = await self._authorize(request, send, service)
        if serve is not None:
            chunks = self.storage.info_refs(serve, service, request.header("git-protocol") or "")
            content_type = f"application/x-{service}-advertisement"
            await relay(request, send, chunks, content_type, after_body=False)

    async def upload_pack(self, request: Request, send: Send) -> None:
        await self._post(request, send, "git-upload-pack")

    async def receive_pack(self, request: Request, send: Send) -> None:
        await self._post(request, send, "git-receive-pack")

    async def _post(self, request: Request, send: Send, service: GitService) -> None:
        expected = f"application/x-{service}-request"
        if media_type(request.header("content-type")) != expected:
            await respond(send, 415, f"Content-Type must be {expected}.\n")
            return
        encoding = (request.header("content-encoding") or "").strip().lower()
        if not is_supported_encoding(encoding):
            await respond(send, 415, f"Content-Encoding {encoding[:40]!r} is not supported.\n")
            return
        serve = await self._authorize(request, send, service)
        if serve is not None:
            body = decoded(request.body(), encoding)
            git_protocol = request.header("git-protocol") or ""
            chunks = self.storage.post(serve, service, git_protocol, body)
            content_type = f"application/x-{service}-result"
            await relay(request, send, chunks, content_type, after_body=True)

    async def _authorize(
        self, request: Request, send: Send, service: GitService
    ) -> GitHttpServe | None:
        """The internal API's `serve` answer, or None once the client has had its answer."""
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
        )
        try:
            answer = await self.internal_api.authorize(question)
        except InternalApiError as exc:
            request.log.update(outcome="internal_api_error", error=str(exc))
            log.warning("authorization failed", extra={"kind": exc.kind, "error": str(exc)})
            message = (
                f"The Git request could not be authorized: the internal API {exc.summary}"
                f" (request id {get_correlation_id()}).\n"
            )
            await respond(send, exc.status, message, TEXT, NO_CACHE)
            return None
        if isinstance(answer, Denied):
            request.log.update(outcome=f"denied_{answer.status}")
            challenge = [("www-authenticate", BASIC_CHALLENGE)] if answer.status == 401 else []
            await respond(send, answer.status, answer.message + "\n", TEXT, [*NO_CACHE, *challenge])
            return None
        if isinstance(answer, GitHttpRedirect):
            await self._redirect(request, send, answer)
            return None
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
