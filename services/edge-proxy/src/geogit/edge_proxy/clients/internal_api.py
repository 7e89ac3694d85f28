"""The edge's client of its site's internal API: the calls are the common client's; the edge
chooses its identity and its limits.

Small JSON calls that must fail fast (the relays to the API and the primary stream, and have
limits of their own in `relay.py`): a short connect timeout, and a pool sized for a burst of
Git requests each waiting for its authorization.
"""

from __future__ import annotations

import httpx

from geogit.common import internal_api_client
from geogit.edge_proxy.config import EdgeProxySettings

ISSUER = "geogit-edge-proxy"


class InternalApiClient(internal_api_client.InternalApiClient):
    def __init__(self, settings: EdgeProxySettings) -> None:
        super().__init__(
            settings.internal_api_url,
            settings.internal_api_secret,
            ISSUER,
            settings.authorize_timeout_seconds,
            connect_timeout=settings.connect_timeout_seconds,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )
