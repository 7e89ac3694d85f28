from __future__ import annotations

import time

import jwt
import pytest

from geogit.common.geo import claimed_site, issue_geo_token, verify_geo_token
from geogit.common.tokens import TokenError, issue_token

SECRET = "s" * 40
OTHER = "o" * 40


def test_round_trip_names_site_scope_user_and_command() -> None:
    token = issue_geo_token(
        SECRET, "secondary-1", "ssh_proxy", gl_id="user-7", project="a/b", action="git-upload-pack"
    )
    assert claimed_site(token) == "secondary-1"
    claims = verify_geo_token(token, SECRET, "secondary-1")
    assert (claims.site, claims.scope, claims.gl_id) == ("secondary-1", "ssh_proxy", "user-7")
    assert (claims.project, claims.action) == ("a/b", "git-upload-pack")


def test_other_sites_secret_or_name_is_refused() -> None:
    token = issue_geo_token(SECRET, "secondary-1", "proxy")
    with pytest.raises(TokenError, match="signature"):
        verify_geo_token(token, OTHER, "secondary-1")
    # Signed by secondary-1 but presented as secondary-2's: the issuer does not match.
    with pytest.raises(TokenError, match="issuer"):
        verify_geo_token(token, SECRET, "secondary-2")


def test_expired_and_unknown_scope_are_refused() -> None:
    now = int(time.time())
    claims = {"site": "secondary-1", "scope": "proxy", "aud": "geogit-geo"}
    expired = jwt.encode(
        {**claims, "iss": "geogit-site/secondary-1", "iat": now - 120, "exp": now - 90},
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(TokenError, match="expired"):
        verify_geo_token(expired, SECRET, "secondary-1")
    forged = issue_token(
        SECRET, "geogit-site/secondary-1", "geogit-geo", site="secondary-1", scope="admin"
    )
    with pytest.raises(TokenError, match="scope"):
        verify_geo_token(forged, SECRET, "secondary-1")


@pytest.mark.parametrize("token", ["", "not-a-jwt", issue_token(SECRET, "x", "geogit-geo")])
def test_claimed_site_needs_a_token_naming_a_site(token: str) -> None:
    with pytest.raises(TokenError):
        claimed_site(token)
