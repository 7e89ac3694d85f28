"""The replicator's client of its own site's internal API (internal JWT): what each replica
should be (`replicables`, from the read model), the registry it keeps there and its reports.
The calls are the common client's; the replicator adds its identity."""

from __future__ import annotations

from geogit.common import internal_api_client

ISSUER = "geogit-replicator"


class InternalApiClient(internal_api_client.InternalApiClient):
    def __init__(self, base_url: str, secret: str, timeout: float) -> None:
        super().__init__(base_url, secret, ISSUER, timeout)
