"""Edge-proxy settings, from GEOGIT_* environment variables (secrets also from *_FILE)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from geogit.common.http_listener import HttpListenerSettings
from geogit.common.net import split_address


class EdgeProxySettings(HttpListenerSettings):
    """Also the listener's bounds (head and body timeouts, keep-alive, connection cap)."""

    # Where git clients and API users connect ("host:port"; "[::]:8080" for IPv6).
    http_address: str = "127.0.0.1:8080"
    internal_api_url: str = "http://127.0.0.1:8081"
    # Signs the Geogit-Api-Request JWT on every call to the internal API (DESIGN §3.4).
    internal_api_secret: str = ""
    # After SIGTERM, in-flight requests (a long clone) get this long to finish.
    shutdown_grace_seconds: Annotated[float, Field(ge=0)] = 30.0

    # Request limits: anything bigger is refused with a 4xx before it is forwarded.
    max_header_bytes: Annotated[int, Field(ge=1024)] = 32 * 1024
    max_url_bytes: Annotated[int, Field(ge=256)] = 8 * 1024
    # Bodies passed to /api/v4/ (git bodies are packs and are not capped here).
    max_api_body_bytes: Annotated[int, Field(ge=0)] = 64 * 1024 * 1024
    # What a gzip-encoded Git request body may inflate to (413 beyond): a fetch negotiation
    # is wants and haves, tens of MiB for a mirror of a million refs.
    max_inflated_body_bytes: Annotated[int, Field(ge=1024 * 1024)] = 128 * 1024 * 1024

    # Timeouts towards the services behind the edge.
    connect_timeout_seconds: Annotated[float, Field(gt=0)] = 5.0
    # Longer than the internal API's own wait for a pooled database connection (30 s): under a
    # burst an authorization queues there, and the API answers 503 itself if it cannot serve.
    authorize_timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    # Idle time allowed between two chunks of a passed-through API request or response.
    api_timeout_seconds: Annotated[float, Field(gt=0)] = 300.0
    # Upper bound for one clone, fetch or push streamed to storage.
    git_timeout_seconds: Annotated[float, Field(gt=0)] = 3600.0
    api_max_connections: Annotated[int, Field(ge=1)] = 256
    # How often to ask the internal API whether this site proxies to a primary (DESIGN §3.4):
    # also how long after a promotion this edge may still send writes to the old primary.
    geo_poll_seconds: Annotated[float, Field(gt=0)] = 2.0

    @property
    def host_and_port(self) -> tuple[str, int]:
        return split_address(self.http_address)
