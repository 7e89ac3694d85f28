"""`/-/liveness`, `/-/readiness` and `/metrics`: what Kubernetes and Prometheus ask."""

from __future__ import annotations

from geogit.edge_proxy.asgi import JSON, Request, Send, respond
from geogit.edge_proxy.clients.internal_api import InternalApiClient
from geogit.edge_proxy.metrics import CONTENT_TYPE, Metrics


class Ops:
    def __init__(self, internal_api: InternalApiClient, metrics: Metrics) -> None:
        self.internal_api = internal_api
        self.metrics = metrics

    async def liveness(self, request: Request, send: Send) -> None:
        await respond(send, 200, '{"status": "ok"}', JSON)

    async def readiness(self, request: Request, send: Send) -> None:
        """Ready when the internal API answers: without it no Git request can be authorized."""
        if await self.internal_api.reachable():
            await respond(send, 200, '{"status": "ok"}', JSON)
        else:
            await respond(send, 503, '{"status": "internal API unreachable"}', JSON)

    async def metrics_page(self, request: Request, send: Send) -> None:
        await respond(send, 200, self.metrics.render(), CONTENT_TYPE)
