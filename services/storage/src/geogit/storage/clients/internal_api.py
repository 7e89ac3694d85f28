"""Storage's client of its site's internal API: the three calls a push makes (`allowed`,
`pre_receive`, `post_receive`) are the common client's; storage adds its identity."""

from __future__ import annotations

from geogit.common import internal_api_client

ISSUER = "geogit-storage"


class InternalApiClient(internal_api_client.InternalApiClient):
    def __init__(self, base_url: str, secret: str, timeout: float = 30.0) -> None:
        super().__init__(base_url, secret, ISSUER, timeout)
