"""A stand-in for a site's front door in the `geogit` command's own tests: a real HTTP server on
127.0.0.1 that answers the Geo and admin paths the command calls with canned JSON, and records
what it was asked. The real internal API has its own tests; these check the command's side of
the contract (DESIGN §10) without starting a site.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from geogit.common.net import free_port
from geogit.devstack.stack import Stack, StackSite, StackUser, write_stack

TOKEN = "glpat-admin"
Reply = tuple[int, Any]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeSite:
    """One site's front door: `routes[(method, path)]` is a reply or makes one."""

    name: str
    server: ThreadingHTTPServer
    routes: dict[tuple[str, str], Reply | Callable[[Request], Reply]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, request: Request) -> Reply:
        self.requests.append(request)
        route = self.routes.get((request.method, request.path))
        if route is None:
            return 404, {"message": "404 Not Found"}
        return route(request) if callable(route) else route

    def asked(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]


def _handler(site: FakeSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Request(
                self.command,
                parts.path,
                parse_qs(parts.query),
                dict(self.headers.items()),
                json.loads(raw) if raw else None,
            )
            status, body = site.answer(request)
            content = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def fake_sites(*names: str) -> Iterator[dict[str, FakeSite]]:
    """One running fake per name, stopped after the block."""
    sites: dict[str, FakeSite] = {}
    try:
        for name in names:
            site = FakeSite(name, ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler))
            site.server.RequestHandlerClass = _handler(site)
            serve = threading.Thread(target=site.server.serve_forever, args=(0.05,), daemon=True)
            serve.start()
            sites[name] = site
        yield sites
    finally:
        for site in sites.values():
            site.server.shutdown()
            site.server.server_close()


def site_state(site_id: int, name: str, role: str, seq: int, **extra: Any) -> dict[str, Any]:
    """A `GET /api/v4/geo/site_state` answer, with an unknown field the command must ignore."""
    return {
        "site_id": site_id,
        "site": name,
        "role": role,
        "epoch": 1,
        "epoch_after_seq": 0,
        "primary_site": "primary",
        "primary_url": "http://127.0.0.1:8080",
        "maintenance": None,
        "fenced": False,
        "last_global_seq": seq,
        "added_later": {"ignored": True},
        **extra,
    }


def dead_url() -> str:
    """A loopback URL nothing listens on: a site that is down."""
    return f"http://127.0.0.1:{free_port()}"


def stack_of(urls: dict[str, str], roles: dict[str, str]) -> Stack:
    """stack.json for sites at `urls`; each site's internal API is its fake front door too."""
    return Stack(
        sites=[
            StackSite(
                name=name,
                role=roles[name],
                http_url=url,
                ssh_host="127.0.0.1",
                ssh_port=2222,
                internal_api_url=url,
            )
            for name, url in urls.items()
        ],
        admin=StackUser(username="root", token=TOKEN),
        kafka_bootstrap="127.0.0.1:19092",
    )


def write_stack_of(run_dir: Path, urls: dict[str, str], roles: dict[str, str]) -> Stack:
    stack = stack_of(urls, roles)
    write_stack(run_dir / "stack.json", stack)
    return stack
