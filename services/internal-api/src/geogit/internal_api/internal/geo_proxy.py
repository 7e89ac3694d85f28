"""GET /api/v4/geo/proxy (internal JWT): the edge-proxy's question "is this site a secondary?".

On a primary the answer is only its epoch: there is nothing to proxy to. On a secondary it
names the primary (and its epoch, DESIGN §10) and carries a fresh Geo token (scope `proxy`) for
the edge to send with everything it relays (DESIGN §3.4).
"""

from __future__ import annotations

from fastapi import APIRouter

from geogit.common.internal_api import GeoProxyInfo
from geogit.internal_api.deps import InternalCaller, ServicesDep

router = APIRouter(prefix="/api/v4/geo", tags=["geo"])


@router.get(
    "/proxy",
    dependencies=[InternalCaller],
    response_model=GeoProxyInfo,
    response_model_exclude_defaults=True,
)
async def proxy(services: ServicesDep) -> GeoProxyInfo:
    authority = services.authority.current
    if not authority.is_secondary:
        return GeoProxyInfo(geo_epoch=authority.epoch)
    return GeoProxyInfo(
        geo_proxy_url=authority.primary_url,
        geo_proxy_extra_data=services.geo_signer.token("proxy"),
        geo_epoch=authority.epoch,
    )
