"""Geo tokens: how a secondary site proves who it is to the primary (DESIGN §3.4).

A secondary signs short-lived JWTs with its own Geo secret, which the primary also holds (it is
given when the site is registered). The token names the site, so the primary picks the right
secret to verify it, and a scope, so a token minted for one purpose cannot be replayed for
another:

- `proxy`: the secondary's edge-proxy relays a user's request; the user's own credentials
  still decide what they may do.
- `replication`: the replicator fetches a repository; allows `git-upload-pack` of any project
  and nothing else.
- `ssh_proxy`: the SSH gateway relays a user it authenticated by key; `gl_id` names the user,
  and `project` and `action` the one command it may be used for.
- `events`: the internal API reads the primary's event store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import jwt

from geogit.common.tokens import TokenError, issue_token, verify_token

GEO_TOKEN_HEADER = "Geogit-Geo-Token"
GEO_AUDIENCE = "geogit-geo"
# Long enough to outlive the edge's 10 s poll with room to spare, short enough to be worthless
# soon after a leak; verify_token refuses anything longer than 60 s.
GEO_TOKEN_TTL_SECONDS = 60
GeoScope = Literal["proxy", "replication", "ssh_proxy", "events"]
GEO_SCOPES: tuple[str, ...] = get_args(GeoScope)
_ISSUER_PREFIX = "geogit-site/"


@dataclass(frozen=True)
class GeoClaims:
    site: str
    scope: GeoScope
    gl_id: str = ""
    project: str = ""
    action: str = ""


def issue_geo_token(
    secret: str,
    site: str,
    scope: GeoScope,
    *,
    gl_id: str = "",
    project: str = "",
    action: str = "",
    ttl_seconds: int = GEO_TOKEN_TTL_SECONDS,
) -> str:
    claims = {"site": site, "scope": scope}
    optional = {"gl_id": gl_id, "project": project, "action": action}
    claims |= {name: value for name, value in optional.items() if value}
    return issue_token(secret, _ISSUER_PREFIX + site, GEO_AUDIENCE, ttl_seconds, **claims)


def claimed_site(token: str) -> str:
    """The site a token says it comes from, before it is verified (to pick the secret)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise TokenError("malformed token") from exc
    site = claims.get("site")
    if not isinstance(site, str) or not site:
        raise TokenError("token names no site")
    return site


def verify_geo_token(token: str, secret: str, site: str) -> GeoClaims:
    """Claims of a token signed by `site`'s secret; `TokenError` says why not."""
    claims = verify_token(token, secret, GEO_AUDIENCE, issuers={_ISSUER_PREFIX + site})
    scope = claims.get("scope")
    if claims.get("site") != site:
        raise TokenError("token site does not match its issuer")
    if scope not in GEO_SCOPES:
        raise TokenError(f"token scope {scope!r} not accepted")
    optional = {name: claims.get(name, "") for name in ("gl_id", "project", "action")}
    if not all(isinstance(value, str) for value in optional.values()):
        raise TokenError("malformed token")
    return GeoClaims(site=site, scope=scope, **optional)
