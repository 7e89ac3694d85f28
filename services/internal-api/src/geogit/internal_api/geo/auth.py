"""Who another site is: Geo tokens verified against the sites in this site's registry.

A token names its site; the site must be registered here (every site holds the registry: the
primary writes it, secondaries follow it), enabled, not this site itself, and have a public
key, and the token must verify with that key. A site that was removed or disabled is refused at
once, whatever tokens it still holds (DESIGN §3.4). The primary's routes take only secondaries'
tokens.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.geo import GEO_TOKEN_HEADER, GeoClaims, GeoScope, claimed_site, verify_geo_token
from geogit.common.geo_routes import SITE_LOCAL_GEO
from geogit.common.internal_api import Denied
from geogit.common.tokens import API_REQUEST_HEADER, TokenError
from geogit.internal_api.deps import Services, ServicesDep, internal_caller
from geogit.internal_api.errors import ApiError, forbidden, unauthorized
from geogit.internal_api.geo.site_state import Authority
from geogit.internal_api.models import GeoSite

log = logging.getLogger(__name__)
GEO_REFUSED = "Geo token refused"


async def verify_geo(
    session: AsyncSession, token: str, this_site: str, *, secondaries_only: bool
) -> GeoClaims:
    """The claims of a token another registered site signed; `Denied(403)` naming the reason
    for anything else. `secondaries_only`: a site registered as the primary is refused too."""
    try:
        name = claimed_site(token)
        if name == this_site:
            raise TokenError(f"site {name!r} is this site")
        site = await session.scalar(select(GeoSite).where(GeoSite.name == name))
        if site is None:
            raise TokenError(f"site {name!r} is not registered")
        if not site.enabled:
            raise TokenError(f"site {name!r} is disabled")
        if secondaries_only and site.primary:
            raise TokenError(f"site {name!r} is not a secondary")
        if not site.public_key:
            raise TokenError(f"site {name!r} has no public key")
        return verify_geo_token(token, site.public_key, name)
    except TokenError as exc:
        raise Denied(403, f"{GEO_REFUSED}: {exc}") from exc


async def verify_secondary(session: AsyncSession, services: Services, token: str) -> GeoClaims:
    """What the primary's routes accept: a secondary's token. A secondary takes none."""
    authority = services.authority.current
    if authority.is_secondary:
        raise Denied(403, f"{GEO_REFUSED}: this site is not the primary")
    claims = await verify_geo(session, token, services.settings.site_name, secondaries_only=True)
    check_epoch(claims, authority, services, site_local=False)
    return claims


async def geo_gate(request: Request, services: ServicesDep) -> GeoClaims | None:
    """Every request that carries a Geo token is checked, whatever the route: a forged,
    expired or revoked site's token is refused even where the user's own credentials would do.
    A secondary takes Geo tokens only on the site-local routes (promotion's coordination)."""
    token = request.headers.get(GEO_TOKEN_HEADER)
    if token is None:
        return None
    authority = services.authority.current
    site_local = SITE_LOCAL_GEO.match(request.url.path) is not None
    if authority.is_secondary and not site_local:
        raise ApiError(403, f"403 Forbidden - {GEO_REFUSED}: this site is not the primary")
    try:
        async with services.sessions() as session:
            # Coordination comes from any registered site, the one flagged primary included.
            claims = await verify_geo(
                session, token, services.settings.site_name, secondaries_only=not site_local
            )
        check_epoch(claims, authority, services, site_local=site_local)
    except Denied as denial:
        phrase = HTTPStatus(denial.status).phrase
        raise ApiError(denial.status, f"{denial.status} {phrase} - {denial.message}") from denial
    return claims


def check_epoch(
    claims: GeoClaims, authority: Authority, services: Services, *, site_local: bool
) -> None:
    """A token from an older epoch is a fenced site's; one from a newer epoch means this site
    missed a promotion: it asks the other sites at once and, meanwhile, takes no relayed
    request (it may no longer be the primary). The site-local routes take both: a stale site
    must be able to ask who the primary is now, and each route judges the epoch it is told.
    A refusal is `Denied`."""
    if claims.epoch < authority.epoch and not site_local:
        raise Denied(
            403,
            f"{GEO_REFUSED}: it is from epoch {claims.epoch}; this site is at"
            f" epoch {authority.epoch} (primary: {authority.primary_site})",
        )
    if claims.epoch > authority.epoch:
        services.geo.peers.check_soon()
        if not site_local:
            raise Denied(
                503,
                f"{GEO_REFUSED}: it is from epoch {claims.epoch}, newer than this site's"
                f" {authority.epoch}; this site is checking for the new primary",
            )


GeoGate = Annotated[GeoClaims | None, Depends(geo_gate)]
# Not `proxy`: that token rides on every request a secondary relays for its users, who must
# not read the event store through it. Nor `site`: sites coordinating a promotion.
_READER_SCOPES: frozenset[GeoScope] = frozenset({"events", "replication"})


async def geo_reader(request: Request, services: ServicesDep, claims: GeoGate) -> str:
    """The calling site's name: a Geo token for routes other sites read, or this site's own
    internal JWT (its gateways and tools)."""
    if claims is not None:
        if claims.scope not in _READER_SCOPES:
            # Typically a user's request a secondary relayed: the user never saw that token,
            # so the answer is the plain refusal they would get here, naming no scope.
            log.info("geo reader refused", extra={"site": claims.site, "scope": claims.scope})
            raise forbidden()
        return claims.site
    if API_REQUEST_HEADER not in request.headers:
        # Reachable through the edge: a user, who sent neither token, is not told of either.
        raise unauthorized()
    await internal_caller(request, services.settings)
    return services.settings.site_name


GeoReader = Annotated[str, Depends(geo_reader)]
