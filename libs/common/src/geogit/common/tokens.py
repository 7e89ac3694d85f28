"""Short-lived HS256 tokens between geogit services.

Every internal call carries one: the gateways and storage to the internal API
(`Geogit-Api-Request`), anyone to storage (gRPC metadata). Tokens live seconds, not hours, so a
leaked one is worthless almost at once; the verifier enforces that by refusing long lifetimes,
whatever the issuer chose. Errors say exactly what was wrong, because a refused internal call
is debugged from the log line alone.

`encode_token` and `decode_token` are the same rules for any one algorithm and key; Geo tokens
(`geogit.common.geo`, EdDSA between sites) use them too.
"""

import time
from collections.abc import Collection
from typing import Any

import jwt

API_REQUEST_HEADER = "Geogit-Api-Request"
INTERNAL_API_AUDIENCE = "geogit-internal-api"
STORAGE_AUDIENCE = "geogit-storage"

ALGORITHM = "HS256"
_REGISTERED_CLAIMS = ("iss", "aud", "iat", "exp")
# The longest lifetime a verifier accepts by default.
MAX_TTL_SECONDS = 60


class TokenError(Exception):
    """A token was refused; the message names the reason and is safe to log."""


def issue_token(
    secret: str, issuer: str, audience: str, ttl_seconds: int = 30, **claims: Any
) -> str:
    if not secret:
        raise ValueError("refusing to sign with an empty secret")
    return encode_token(secret, ALGORITHM, issuer, audience, ttl_seconds, **claims)


def encode_token(
    key: Any, algorithm: str, issuer: str, audience: str, ttl_seconds: int, **claims: Any
) -> str:
    """`claims` with the registered ones, signed with `key` (a secret or a private key)."""
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
    if overridden := sorted(set(claims) & set(_REGISTERED_CLAIMS)):
        raise ValueError(f"claims {overridden} are set by issue_token itself")
    now = int(time.time())
    payload = {**claims, "iss": issuer, "aud": audience, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(payload, key, algorithm=algorithm)


def verify_token(
    token: str | None,
    secret: str,
    audience: str,
    *,
    max_ttl_seconds: int = MAX_TTL_SECONDS,
    leeway_seconds: int = 10,
    issuers: Collection[str] | None = None,
) -> dict[str, Any]:
    """Return the claims of a valid token or raise `TokenError` saying why it is not.

    The algorithm is checked against the header before anything else so that `none` or an
    asymmetric algorithm never reaches signature verification. `issuers=None` accepts any
    issuer (the claim is still required).
    """
    if not secret:
        raise ValueError("refusing to verify with an empty secret")
    return decode_token(
        token,
        secret,
        ALGORITHM,
        audience,
        max_ttl_seconds=max_ttl_seconds,
        leeway_seconds=leeway_seconds,
        issuers=issuers,
    )


def decode_token(
    token: str | None,
    key: Any,
    algorithm: str,
    audience: str,
    *,
    max_ttl_seconds: int = MAX_TTL_SECONDS,
    leeway_seconds: int = 10,
    issuers: Collection[str] | None = None,
    required: Collection[str] = (),
) -> dict[str, Any]:
    """`verify_token`'s checks for one `algorithm` and its `key` (a secret or a public key);
    `required` names claims that must be present besides the registered ones."""
    if not token:
        raise TokenError("token missing")
    try:
        header_algorithm = jwt.get_unverified_header(token).get("alg")
    except jwt.DecodeError as exc:
        raise TokenError("malformed token") from exc
    if header_algorithm != algorithm:
        raise TokenError(f"token algorithm {header_algorithm!r} not accepted (only {algorithm})")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            leeway=leeway_seconds,
            options={"require": [*_REGISTERED_CLAIMS, *required]},
        )
    except jwt.InvalidSignatureError as exc:
        raise TokenError("token signature invalid") from exc
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise TokenError("token issued in the future") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(f"token missing claim {exc.claim!r}") from exc
    except jwt.InvalidAudienceError as exc:
        raise TokenError(f"token audience does not include {audience!r}") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenError("malformed token") from exc
    if isinstance(issuers, str):  # a str is a Collection[str]; `in` would match substrings
        issuers = {issuers}
    issuer = claims["iss"]
    if not isinstance(issuer, str) or (issuers is not None and issuer not in issuers):
        raise TokenError(f"token issuer {issuer!r} not accepted")
    issued_at, expires_at = claims["iat"], claims["exp"]
    if not (_is_numeric_date(issued_at) and _is_numeric_date(expires_at)):
        raise TokenError("malformed token")
    if expires_at - issued_at > max_ttl_seconds:
        raise TokenError(f"token lifetime exceeds {max_ttl_seconds} s")
    return claims


def _is_numeric_date(value: object) -> bool:
    # PyJWT accepts anything int() accepts, such as "1700000000"; JWT wants a JSON number.
    return isinstance(value, int | float) and not isinstance(value, bool)
