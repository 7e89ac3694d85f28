"""The one wrapper around every route: correlation id, limits, routing, headers, metrics, log.

Every response leaves through here, so every response carries `Geogit-Served-By`,
`Geogit-Route` and `X-Request-Id` (DESIGN §3.2), and every request gets exactly one access
log line and one count, whatever the route did.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from geogit.common.logging import CORRELATION_HEADER, bound_correlation_id
from geogit.edge_proxy.asgi import Headers, Message, Receive, Request, Scope, Send, respond
from geogit.edge_proxy.config import EdgeProxySettings
from geogit.edge_proxy.limits import refusal
from geogit.edge_proxy.metrics import Metrics
from geogit.edge_proxy.routes import Route, answer, resolve

log = logging.getLogger("geogit.edge_proxy.access")

SERVED_BY = b"geogit-served-by"
ROUTE = b"geogit-route"
REQUEST_ID = CORRELATION_HEADER.lower().encode()


@dataclass
class _Response:
    status: int = 0
    bytes_sent: int = 0
    complete: bool = False


class Instrumented:
    def __init__(self, routes: list[Route], settings: EdgeProxySettings, metrics: Metrics) -> None:
        self.routes = routes
        self.settings = settings
        self.metrics = metrics
        self._site = settings.site_name.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        with bound_correlation_id(request.header("x-request-id")) as request_id:
            response = _Response()

            async def tracked(message: Message) -> None:
                if message["type"] == "http.response.start":
                    response.status = message["status"]
                    message["headers"] = self._stamped(message.get("headers", []), request_id)
                elif message["type"] == "http.response.body":
                    response.bytes_sent += len(message.get("body", b""))
                    response.complete = not message.get("more_body", False)
                await send(message)

            await self._serve(request, tracked, response)

    async def _serve(self, request: Request, send: Send, response: _Response) -> None:
        started = time.monotonic()
        problem = refusal(request, self.settings)
        if problem is None:
            route, request.params = resolve(self.routes, request.method, request.path)
        else:
            route = answer("refused", *problem)
        name = route.name
        in_flight = self.metrics.in_flight.labels(name)
        in_flight.inc()
        try:
            await route.handler(request, send)
        except Exception:
            log.exception("request failed", extra={"route": name})
            if response.status == 0:
                await respond(send, 500, "Internal error in the edge proxy.\n")
        finally:
            in_flight.dec()
            self._record(request, name, response, time.monotonic() - started)

    def _stamped(self, headers: Headers, request_id: str) -> Headers:
        names = {name.lower() for name, _ in headers}
        stamped = [
            (name, value) for name, value in headers if name.lower() not in (SERVED_BY, REQUEST_ID)
        ]
        stamped.append((SERVED_BY, self._site))
        if ROUTE not in names:  # a proxying route says `proxy` itself
            stamped.append((ROUTE, b"local"))
        stamped.append((REQUEST_ID, request_id.encode()))
        return stamped

    def _record(self, request: Request, route: str, response: _Response, seconds: float) -> None:
        status = str(response.status) if response.status else "none"
        self.metrics.requests.labels(route, status).inc()
        self.metrics.duration.labels(route).observe(seconds)
        aborted = response.status != 0 and not response.complete
        if aborted:
            self.metrics.aborted.labels(route).inc()
        client = request.scope.get("client")
        log.log(
            logging.WARNING if aborted or response.status >= 500 else logging.INFO,
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": response.status,
                "duration_ms": round(seconds * 1000, 1),
                "bytes_sent": response.bytes_sent,
                "aborted": aborted,
                "client": client[0] if client else None,
                "user_agent": request.header("user-agent"),
                **request.log,
            },
        )
