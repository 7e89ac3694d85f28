"""The edge-proxy ASGI application: clients, routes and the wrapper, built from settings.

Built by `create_app` (never at import time), so tests and the dev stack can run several
edges with their own settings; ASGI lifespan shutdown closes the pooled connections.
"""

from __future__ import annotations

from geogit.edge_proxy.asgi import Receive, Scope, Send
from geogit.edge_proxy.clients.internal_api import InternalApiClient
from geogit.edge_proxy.clients.relay import RelayClient
from geogit.edge_proxy.clients.storage import StorageClient
from geogit.edge_proxy.config import EdgeProxySettings
from geogit.edge_proxy.geo_state import GeoState
from geogit.edge_proxy.git_http import GitHttp
from geogit.edge_proxy.instrument import Instrumented
from geogit.edge_proxy.metrics import Metrics
from geogit.edge_proxy.ops import Ops
from geogit.edge_proxy.passthrough import ApiPassthrough, HttpRelay, Upstream
from geogit.edge_proxy.primary_proxy import PrimaryProxy
from geogit.edge_proxy.routes import build_routes


class EdgeProxyApp:
    def __init__(self, settings: EdgeProxySettings) -> None:
        self.metrics = Metrics()
        self.internal_api = InternalApiClient(settings)
        self.relay_client = RelayClient(settings)
        self.storage = StorageClient(settings.git_timeout_seconds)
        self.geo = GeoState(self.internal_api, settings.geo_poll_seconds)
        relay = HttpRelay(self.relay_client)
        primary = PrimaryProxy(relay, self.geo, self.internal_api)
        own_api = Upstream(settings.internal_api_url, "the internal API")
        routes = build_routes(
            GitHttp(self.internal_api, self.storage, primary, settings.max_inflated_body_bytes),
            # On a secondary the whole API is the primary's (DESIGN §3.2)...
            ApiPassthrough(
                relay, lambda: primary.upstream() or own_api, settings.max_api_body_bytes
            ),
            # ...but for the routes through which sites agree on the primary (DESIGN §10).
            ApiPassthrough(relay, lambda: own_api, settings.max_api_body_bytes),
            primary,
            Ops(self.internal_api, self.metrics),
        )
        self._http = Instrumented(routes, settings, self.metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.geo.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        await self.geo.stop()
        await self.internal_api.aclose()
        await self.relay_client.aclose()
        await self.storage.aclose()


def create_app(settings: EdgeProxySettings) -> EdgeProxyApp:
    if not settings.internal_api_secret:
        raise ValueError("GEOGIT_INTERNAL_API_SECRET must be set: every Git request needs it")
    settings.check_secrets("internal_api_secret")
    return EdgeProxyApp(settings)
