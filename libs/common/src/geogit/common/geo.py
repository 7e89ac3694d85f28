"""Geo tokens: how one site proves who it is to another (DESIGN §3.4, §10).

Every site has an Ed25519 key pair of its own. It signs short-lived EdDSA JWTs with the private
key, which never leaves the site; its public key is in the site registry (`geo_sites`), which
every site holds, so any site — a secondary promoted to primary included — can verify any
other's tokens without a secret travelling. A token names its site, so the verifier picks the
right public key; the epoch of the primary the signer follows (DESIGN §10); and a scope, so a
token minted for one purpose cannot be replayed for another:

- `proxy`: the secondary's edge-proxy relays a user's request; the user's own credentials
  still decide what they may do.
- `replication`: the replicator fetches a repository; allows `git-upload-pack` of any project
  and nothing else.
- `ssh_proxy`: the SSH gateway relays a user it authenticated by key; `gl_id` names the user,
  and `project` and `action` the one command it may be used for.
- `events`: the internal API reads the primary's event store.
- `site`: sites coordinating with each other during a promotion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, get_args

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from geogit.common.tokens import TokenError, decode_token, encode_token

GEO_TOKEN_HEADER = "Geogit-Geo-Token"
GEO_AUDIENCE = "geogit-geo"
ALGORITHM = "EdDSA"
# Long enough to outlive the edge's 10 s poll with room to spare, short enough to be worthless
# soon after a leak; the verifier refuses anything longer than 60 s.
GEO_TOKEN_TTL_SECONDS = 60
# The epoch every deployment starts at (DESIGN §10); +1 at each promotion.
BOOTSTRAP_EPOCH = 1
GeoScope = Literal["proxy", "replication", "ssh_proxy", "events", "site"]
GEO_SCOPES: tuple[str, ...] = get_args(GeoScope)
_ISSUER_PREFIX = "geogit-site/"


@dataclass(frozen=True)
class GeoClaims:
    site: str
    scope: GeoScope
    epoch: int
    gl_id: str = ""
    project: str = ""
    action: str = ""


# Keys -------------------------------------------------------------------------------------


def generate_site_key() -> tuple[str, str]:
    """A new key pair: (private key, PEM PKCS8; public key, PEM SubjectPublicKeyInfo)."""
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return private_pem, _public_pem(private_key.public_key())


def public_key_of(private_pem: str) -> str:
    """The public key (PEM) of an Ed25519 private key; `ValueError` says what it is not."""
    return _public_pem(_load_private(private_pem).public_key())


def check_public_key(pem: str) -> str:
    """`pem` normalised, if it is an Ed25519 public key; `ValueError` says why not.

    The messages never quote the key: a private key pasted by mistake must not end up in a log.
    """
    return _public_pem(_load_public(pem))


def _public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _load_private(pem: str) -> Ed25519PrivateKey:
    if "-----BEGIN" not in pem:
        raise ValueError("not a PEM private key (expected -----BEGIN PRIVATE KEY-----)")
    try:
        key = serialization.load_pem_private_key(pem.strip().encode(), password=None)
    except TypeError as exc:  # the key is encrypted
        raise ValueError("the private key is encrypted; give it unencrypted") from exc
    except ValueError as exc:
        raise ValueError("not a readable PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"not an Ed25519 private key (got {_kind(key)})")
    return key


@lru_cache(maxsize=256)
def _load_public(pem: str) -> Ed25519PublicKey:
    if "PRIVATE KEY-----" in pem:
        raise ValueError("this is a private key; give the site's public key")
    if "-----BEGIN PUBLIC KEY-----" not in pem:
        raise ValueError("not a PEM public key (expected -----BEGIN PUBLIC KEY-----)")
    try:
        key = serialization.load_pem_public_key(pem.strip().encode())
    except ValueError as exc:
        raise ValueError("not a readable PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"not an Ed25519 public key (got {_kind(key)})")
    return key


def _kind(key: object) -> str:
    # RSAPublicKey, ECPrivateKey, Ed448PublicKey, ... → "RSA", "EC", "Ed448"
    name = type(key).__name__
    for suffix in ("PublicKey", "PrivateKey"):
        name = name.removesuffix(suffix)
    return name or "unknown"


# Tokens -----------------------------------------------------------------------------------


class GeoSigner:
    """One site's Geo tokens, signed with its private key; the epoch is read at each signing,
    because the site's epoch changes at runtime (a promotion)."""

    def __init__(self, private_key_pem: str, site: str, epoch: Callable[[], int]) -> None:
        if not site:
            raise ValueError("a Geo signer needs the site's name")
        self._key = _load_private(private_key_pem)
        self.site = site
        self._epoch = epoch

    def token(
        self,
        scope: GeoScope,
        *,
        gl_id: str = "",
        project: str = "",
        action: str = "",
        ttl_seconds: int = GEO_TOKEN_TTL_SECONDS,
    ) -> str:
        epoch = self._epoch()
        if not _is_epoch(epoch):
            raise ValueError(f"epoch must be an integer ≥ 1, got {epoch!r}")
        claims: dict[str, object] = {"site": self.site, "scope": scope, "epoch": epoch}
        optional = {"gl_id": gl_id, "project": project, "action": action}
        claims |= {name: value for name, value in optional.items() if value}
        issuer = _ISSUER_PREFIX + self.site
        return encode_token(self._key, ALGORITHM, issuer, GEO_AUDIENCE, ttl_seconds, **claims)


def claimed_site(token: str) -> str:
    """The site a token says it comes from, before it is verified (to pick the public key)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise TokenError("malformed token") from exc
    site = claims.get("site")
    if not isinstance(site, str) or not site:
        raise TokenError("token names no site")
    return site


def claimed_scope(token: str) -> str:
    """The scope a token says it has, unverified: only ever used to refuse more, never to allow."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return ""
    scope = claims.get("scope")
    return scope if isinstance(scope, str) else ""


def verify_geo_token(token: str, public_key_pem: str, site: str) -> GeoClaims:
    """Claims of a token signed by `site`'s private key; `TokenError` says why not."""
    try:
        public_key = _load_public(public_key_pem)
    except ValueError as exc:
        raise TokenError(f"the public key of site {site!r} is unusable: {exc}") from exc
    claims = decode_token(
        token,
        public_key,
        ALGORITHM,
        GEO_AUDIENCE,
        issuers={_ISSUER_PREFIX + site},
        required=("epoch",),
    )
    scope, epoch = claims.get("scope"), claims["epoch"]
    if claims.get("site") != site:
        raise TokenError("token site does not match its issuer")
    if scope not in GEO_SCOPES:
        raise TokenError(f"token scope {scope!r} not accepted")
    if not _is_epoch(epoch):
        raise TokenError(f"token missing claim 'epoch' (an integer ≥ 1, got {epoch!r})")
    optional = {name: claims.get(name, "") for name in ("gl_id", "project", "action")}
    if not all(isinstance(value, str) for value in optional.values()):
        raise TokenError("malformed token")
    return GeoClaims(site=site, scope=scope, epoch=epoch, **optional)


def _is_epoch(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
