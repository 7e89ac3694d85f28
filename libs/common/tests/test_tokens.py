import base64
import json
import time
from typing import Any

import jwt
import pytest

from geogit.common.tokens import (
    INTERNAL_API_AUDIENCE,
    STORAGE_AUDIENCE,
    TokenError,
    issue_token,
    verify_token,
)

SECRET = "a-test-secret-long-enough-for-hs256-and-hs512-0123456789abcdef01"


def _forge(algorithm: str = "HS256", without: str = "", **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": "ssh-gateway", "aud": STORAGE_AUDIENCE, "iat": now, "exp": now + 30}
    claims.update(overrides)
    claims.pop(without, None)
    return jwt.encode(claims, SECRET, algorithm)


def test_round_trip_keeps_extra_claims() -> None:
    token = issue_token(SECRET, "ssh-gateway", STORAGE_AUDIENCE, gl_id="user-1")
    claims = verify_token(token, SECRET, STORAGE_AUDIENCE, issuers={"ssh-gateway"})
    assert claims["iss"] == "ssh-gateway"
    assert claims["aud"] == STORAGE_AUDIENCE
    assert claims["gl_id"] == "user-1"
    assert claims["exp"] - claims["iat"] == 30


@pytest.mark.parametrize("token", [None, ""])
def test_missing(token: str | None) -> None:
    with pytest.raises(TokenError, match=r"^token missing$"):
        verify_token(token, SECRET, STORAGE_AUDIENCE)


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "ü.ü.ü", "eyJhbGciOiJIUzI1NiJ9.@@@.x"])
def test_garbage(token: str) -> None:
    with pytest.raises(TokenError, match=r"^malformed token$"):
        verify_token(token, SECRET, STORAGE_AUDIENCE)


def test_expired_beyond_leeway() -> None:
    now = int(time.time())
    with pytest.raises(TokenError, match=r"^token expired$"):
        verify_token(_forge(iat=now - 50, exp=now - 20), SECRET, STORAGE_AUDIENCE)


def test_leeway_accepts_small_clock_skew() -> None:
    now = int(time.time())
    late = _forge(iat=now - 35, exp=now - 5)
    early = _forge(iat=now + 5, exp=now + 35)
    verify_token(late, SECRET, STORAGE_AUDIENCE)
    verify_token(early, SECRET, STORAGE_AUDIENCE)
    with pytest.raises(TokenError, match=r"^token expired$"):
        verify_token(late, SECRET, STORAGE_AUDIENCE, leeway_seconds=0)
    with pytest.raises(TokenError, match=r"^token issued in the future$"):
        verify_token(early, SECRET, STORAGE_AUDIENCE, leeway_seconds=0)


def test_forged_with_other_secret() -> None:
    token = issue_token("another-secret-that-is-32-bytes-long", "x", STORAGE_AUDIENCE)
    with pytest.raises(TokenError, match=r"^token signature invalid$"):
        verify_token(token, SECRET, STORAGE_AUDIENCE)


def test_alg_none_refused() -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).rstrip(b"=")
    now = int(time.time())
    body = {"iss": "x", "aud": STORAGE_AUDIENCE, "iat": now, "exp": now + 30}
    payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=")
    token = f"{header.decode()}.{payload.decode()}."
    with pytest.raises(TokenError, match=r"^token algorithm 'none' not accepted"):
        verify_token(token, SECRET, STORAGE_AUDIENCE)


def test_other_hmac_algorithm_refused() -> None:
    with pytest.raises(TokenError, match=r"^token algorithm 'HS512' not accepted"):
        verify_token(_forge(algorithm="HS512"), SECRET, STORAGE_AUDIENCE)


def test_wrong_audience() -> None:
    token = issue_token(SECRET, "x", INTERNAL_API_AUDIENCE)
    with pytest.raises(TokenError, match=r"^token audience does not include 'geogit-storage'$"):
        verify_token(token, SECRET, STORAGE_AUDIENCE)


def test_issuer_not_accepted() -> None:
    token = issue_token(SECRET, "edge-proxy", STORAGE_AUDIENCE)
    with pytest.raises(TokenError, match=r"^token issuer 'edge-proxy' not accepted$"):
        verify_token(token, SECRET, STORAGE_AUDIENCE, issuers=["ssh-gateway"])
    with pytest.raises(TokenError, match=r"^token issuer 'edge-proxy' not accepted$"):
        verify_token(token, SECRET, STORAGE_AUDIENCE, issuers="edge-proxy-2")


def test_lifetime_too_long() -> None:
    token = issue_token(SECRET, "x", STORAGE_AUDIENCE, ttl_seconds=3600)
    with pytest.raises(TokenError, match=r"^token lifetime exceeds 60 s$"):
        verify_token(token, SECRET, STORAGE_AUDIENCE)


@pytest.mark.parametrize("claim", ["iss", "aud", "iat", "exp"])
def test_required_claims(claim: str) -> None:
    with pytest.raises(TokenError, match=f"^token missing claim '{claim}'$"):
        verify_token(_forge(without=claim), SECRET, STORAGE_AUDIENCE)


def test_numeric_dates_must_be_numbers() -> None:
    now = int(time.time())
    with pytest.raises(TokenError, match=r"^malformed token$"):
        verify_token(_forge(exp=str(now + 30)), SECRET, STORAGE_AUDIENCE)


def test_issue_refuses_overriding_registered_claims() -> None:
    with pytest.raises(ValueError, match="set by issue_token"):
        issue_token(SECRET, "x", STORAGE_AUDIENCE, exp=0)


def test_empty_secret_refused() -> None:
    with pytest.raises(ValueError, match="empty secret"):
        issue_token("", "x", STORAGE_AUDIENCE)
    with pytest.raises(ValueError, match="empty secret"):
        verify_token("x", "", STORAGE_AUDIENCE)
