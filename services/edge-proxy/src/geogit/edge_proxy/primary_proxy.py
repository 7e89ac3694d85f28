"""A secondary's relay to the primary's front door (DESIGN §3.2).

Everything goes out with this site's Geo token (the client cannot supply its own), streamed
both ways, and comes back with `Geogit-Route: proxy`; the primary's answers, its 401s
included, reach the client unchanged. `/-/from_secondary/<site-id>/...` (GitLab's redirect
mode) is relayed with the prefix stripped. A push relayed to the primary is reported to this
site's internal API before the response ends, so the pusher's next read through this site is
not served from a replica that lacks the push — and afterwards too when the answer broke off,
since the push may have landed all the same.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterable

from geogit.common.geo import GEO_TOKEN_HEADER
from geogit.common.internal_api_client import InternalApiError
from geogit.edge_proxy.asgi import Request, Send, respond
from geogit.edge_proxy.clients.internal_api import InternalApiClient
from geogit.edge_proxy.geo_state import GeoState
from geogit.edge_proxy.passthrough import (
    ErrorWriter,
    HttpRelay,
    Upstream,
    has_body,
    raw_target,
    text_error,
)

log = logging.getLogger(__name__)

GEO_HEADER = GEO_TOKEN_HEADER.lower().encode()
PRIMARY = "the primary site"
UNREACHABLE = (
    "The primary site is unreachable ({reason}). This secondary serves reads of the projects"
    " it holds current copies of; pushes and everything else need the primary. Try again later."
)


async def primary_error(send: Send, status: int, message: str) -> None:
    """What git prints (as `remote: ...`) when the primary cannot be reached."""
    await text_error(send, status, UNREACHABLE.format(reason=message))


_FROM_SECONDARY = re.compile(rb"\A/-/from_secondary/[0-9]+(?=/)")
_PUSH = re.compile(
    r"\A/-/from_secondary/[0-9]+/(?P<project>[^/]+/[^/]+?)(?:\.git)?/git-receive-pack\Z"
)


class PrimaryProxy:
    def __init__(self, relay: HttpRelay, geo: GeoState, internal_api: InternalApiClient) -> None:
        self.relay = relay
        self.geo = geo
        self.internal_api = internal_api

    def upstream(self) -> Upstream | None:
        primary = self.geo.primary_url
        if primary is None:
            return None
        return Upstream(primary, PRIMARY, [(GEO_HEADER, self.geo.token.encode())], b"proxy")

    async def git(
        self,
        request: Request,
        send: Send,
        body: AsyncIterator[bytes] | None,
        *,
        pushed_project: str | None = None,
        dropped_headers: Iterable[bytes] = (),
        target: bytes | None = None,
        unreachable: ErrorWriter = primary_error,
    ) -> None:
        """Relay a Git request; `body` is None for a GET, or what is left of a POST's body.
        `unreachable` answers the client when the primary cannot be asked."""
        upstream = self.upstream()
        if upstream is None:
            # The internal API says proxy before this edge's poll has heard of the primary:
            # the site has just become a secondary (DESIGN §10). Ask now rather than refuse.
            await self.geo.poll()
            upstream = self.upstream()
        if upstream is None:
            await text_error(send, 503, "This secondary site does not know its primary yet.")
            return
        request.log.update(outcome="proxy")
        reported = False

        async def report_push(status: int) -> None:
            nonlocal reported
            reported = True
            await self._report(pushed_project)

        await self.relay.relay(
            request,
            send,
            upstream,
            raw_target(request) if target is None else target,
            body,
            error=unreachable,
            dropped_headers=[GEO_HEADER, *dropped_headers],
            before_end=report_push if pushed_project else None,
        )
        if pushed_project is not None and not reported:
            await self._report(pushed_project)

    async def _report(self, project: str | None) -> None:
        if project is None:
            return
        try:
            await self.internal_api.proxied_push(project)
        except InternalApiError as exc:
            log.warning("could not report a relayed push", extra={"error": str(exc)})

    async def from_secondary(self, request: Request, send: Send) -> None:
        """`/-/from_secondary/<id>/<path>`: the path, relayed to the primary."""
        if self.geo.primary_url is None:
            await respond(send, 404, "404 Not Found\n")
            return
        target = _FROM_SECONDARY.sub(b"", raw_target(request), count=1)
        push = _PUSH.match(request.path) if request.method == "POST" else None
        pushed = push["project"] if push else None
        body = request.body() if has_body(request) else None
        await self.git(request, send, body, pushed_project=pushed, target=target)
