"""Every entry point of the edge, in one ordered table (Workhorse's routes.go).

The first route whose pattern matches the (decoded) path and whose methods include the
request's answers it; a matching path with another method gets 405; anything unmatched
gets 404. Internal API endpoints are never reachable through the front door.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from geogit.common.geo_routes import SITE_LOCAL_GEO
from geogit.common.git_commands import HTTP_SERVICES
from geogit.common.internal_api import ErrorMessage
from geogit.edge_proxy.asgi import JSON, Request, Send, respond
from geogit.edge_proxy.git_http import GitHttp
from geogit.edge_proxy.ops import Ops
from geogit.edge_proxy.passthrough import ApiPassthrough
from geogit.edge_proxy.primary_proxy import PrimaryProxy

Handler = Callable[[Request, Send], Awaitable[None]]

GET = frozenset({"GET"})
POST = frozenset({"POST"})
ANY: frozenset[str] = frozenset()

# "namespace/project", with or without ".git"; validated further by the Git routes.
_PROJECT = r"/(?P<project>[^/]+/[^/]+?)(?:\.git)?"


@dataclass(frozen=True)
class Route:
    name: str
    methods: frozenset[str]  # empty: any method
    pattern: re.Pattern[str]
    handler: Handler


def route(name: str, methods: frozenset[str], pattern: str, handler: Handler) -> Route:
    return Route(name, methods, re.compile(pattern), handler)


def build_routes(
    git: GitHttp,
    api: ApiPassthrough,
    site_api: ApiPassthrough,
    primary: PrimaryProxy,
    ops: Ops,
) -> list[Route]:
    return [
        # GitLab's redirect mode; on a primary it 404s.
        route("from_secondary", ANY, r"\A/-/from_secondary/[0-9]+/", primary.from_secondary),
        route("git_info_refs", GET, rf"\A{_PROJECT}/info/refs\Z", git.info_refs),
        # git_upload_pack, git_receive_pack: one per smart HTTP service of the Git registry.
        *(
            route(service.replace("-", "_"), POST, rf"\A{_PROJECT}/{service}\Z", git.post(service))
            for service in HTTP_SERVICES
        ),
        route("api_internal", ANY, r"\A/api/v4/internal(?:/|\Z)", not_found_json),
        # Promotion's coordination: always this site's own API, whatever its role.
        Route("api_site_local", ANY, SITE_LOCAL_GEO, site_api.handle),
        route("api", ANY, r"\A/api/v4(?:/|\Z)", api.handle),
        # The Geo status page: every site's own view, whatever its role.
        route("geo_status_page", ANY, r"\A/-/geo(?:/|\Z)", site_api.handle),
        route("liveness", GET, r"\A/-/liveness\Z", ops.liveness),
        route("readiness", GET, r"\A/-/readiness\Z", ops.readiness),
        route("metrics", GET, r"\A/metrics\Z", ops.metrics_page),
    ]


async def not_found_json(request: Request, send: Send) -> None:
    await respond(send, 404, ErrorMessage(message="404 Not Found").model_dump_json(), JSON)


def answer(
    name: str, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> Route:
    """A route that only answers with a fixed text response (404, 405, refusals)."""

    async def fixed(request: Request, send: Send) -> None:
        await respond(send, status, message + "\n", headers=headers)

    return Route(name, ANY, re.compile(""), fixed)


NOT_FOUND = answer("not_found", 404, "404 Not Found")


def resolve(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route for a request and its path parameters; a 404 or 405 route if none fits."""
    allowed: set[str] = set()
    for candidate in routes:
        match = candidate.pattern.match(path)
        if match is None:
            continue
        if candidate.methods and method not in candidate.methods:
            allowed |= candidate.methods
            continue
        return candidate, match.groupdict()
    if not allowed:
        return NOT_FOUND, {}
    allow = ", ".join(sorted(allowed))
    message = f"Method {method} is not allowed here; use {allow}."
    return answer("method_not_allowed", 405, message, (("allow", allow),)), {}
