from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from geogit.common.geo import (
    BOOTSTRAP_EPOCH,
    GeoSigner,
    check_public_key,
    claimed_site,
    generate_site_key,
    public_key_of,
    verify_geo_token,
)
from geogit.common.tokens import TokenError, issue_token

PRIVATE, PUBLIC = generate_site_key()
OTHER_PRIVATE, OTHER_PUBLIC = generate_site_key()
SITE = "secondary-1"


def signer(epoch: int = BOOTSTRAP_EPOCH, private: str = PRIVATE, site: str = SITE) -> GeoSigner:
    return GeoSigner(private, site, lambda: epoch)


def _signed(key: Any, algorithm: str, **overrides: Any) -> str:
    """A token shaped like the signer's, with `overrides` (None removes a claim)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "site": SITE,
        "scope": "proxy",
        "epoch": 1,
        "iss": f"geogit-site/{SITE}",
        "aud": "geogit-geo",
        "iat": now,
        "exp": now + 30,
    }
    claims |= overrides
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, key, algorithm=algorithm)


def _private_key_object(pem: str) -> Any:
    return serialization.load_pem_private_key(pem.encode(), password=None)


def test_round_trip_names_site_scope_epoch_user_and_command() -> None:
    token = signer(epoch=3).token(
        "ssh_proxy", gl_id="user-7", project="a/b", action="git-upload-pack"
    )
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    assert claimed_site(token) == SITE
    claims = verify_geo_token(token, PUBLIC, SITE)
    assert (claims.site, claims.scope, claims.gl_id) == (SITE, "ssh_proxy", "user-7")
    assert (claims.project, claims.action, claims.epoch) == ("a/b", "git-upload-pack", 3)


def test_the_epoch_is_read_at_each_signing() -> None:
    epochs = iter([1, 2])
    moving = GeoSigner(PRIVATE, SITE, lambda: next(epochs))
    first, second = moving.token("events"), moving.token("events")
    assert verify_geo_token(first, PUBLIC, SITE).epoch == 1
    assert verify_geo_token(second, PUBLIC, SITE).epoch == 2
    with pytest.raises(ValueError, match="epoch must be an integer"):
        signer(epoch=0).token("events")


def test_keys_generate_derive_and_normalise() -> None:
    assert PRIVATE.startswith("-----BEGIN PRIVATE KEY-----")
    assert PUBLIC.startswith("-----BEGIN PUBLIC KEY-----")
    assert public_key_of(PRIVATE) == PUBLIC
    assert check_public_key(f"\n  {PUBLIC.strip()}  \n") == PUBLIC
    assert PUBLIC != OTHER_PUBLIC


def _rsa_public() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _ec_private() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        ("", "not a PEM public key"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA", "not a PEM public key"),
        ("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----", "not a readable"),
        (PRIVATE, "this is a private key"),
        (_rsa_public(), r"not an Ed25519 public key \(got RSA\)"),
    ],
)
def test_a_public_key_that_is_not_ed25519_is_refused(pem: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_public_key(pem)


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        ("", "not a PEM private key"),
        (PUBLIC, "not a readable PEM private key"),
        (_ec_private(), r"not an Ed25519 private key \(got EC\)"),
    ],
)
def test_a_private_key_that_is_not_ed25519_is_refused(pem: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        public_key_of(pem)
    with pytest.raises(ValueError, match=message):
        GeoSigner(pem, SITE, lambda: 1)


def test_another_sites_key_or_name_is_refused() -> None:
    token = signer().token("proxy")
    with pytest.raises(TokenError, match="signature invalid"):
        verify_geo_token(token, OTHER_PUBLIC, SITE)
    # Signed by secondary-1 but presented as secondary-2's: the issuer does not match.
    with pytest.raises(TokenError, match="issuer"):
        verify_geo_token(token, PUBLIC, "secondary-2")
    # secondary-2's own key, naming secondary-1: verified against secondary-1's key, refused.
    forged = signer(private=OTHER_PRIVATE).token("replication")
    with pytest.raises(TokenError, match="signature invalid"):
        verify_geo_token(forged, PUBLIC, SITE)


def test_only_eddsa_is_accepted() -> None:
    hs256 = _signed("s" * 40, "HS256")
    with pytest.raises(TokenError, match=r"algorithm 'HS256' not accepted \(only EdDSA\)"):
        verify_geo_token(hs256, PUBLIC, SITE)
    # The public key itself as an HMAC secret, the classic algorithm-confusion forgery.
    header, payload, _ = hs256.split(".")
    mac = hmac.new(PUBLIC.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    confused = f"{header}.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    with pytest.raises(TokenError, match="algorithm 'HS256' not accepted"):
        verify_geo_token(confused, PUBLIC, SITE)
    unsigned = _signed(None, "none")
    with pytest.raises(TokenError, match="algorithm 'none' not accepted"):
        verify_geo_token(unsigned, PUBLIC, SITE)


def test_expired_long_lived_and_unknown_scope_are_refused() -> None:
    key, now = _private_key_object(PRIVATE), int(time.time())
    expired = _signed(key, "EdDSA", iat=now - 120, exp=now - 90)
    with pytest.raises(TokenError, match="expired"):
        verify_geo_token(expired, PUBLIC, SITE)
    with pytest.raises(TokenError, match="lifetime exceeds 60 s"):
        verify_geo_token(signer().token("proxy", ttl_seconds=61), PUBLIC, SITE)
    with pytest.raises(TokenError, match="scope 'admin' not accepted"):
        verify_geo_token(_signed(key, "EdDSA", scope="admin"), PUBLIC, SITE)
    with pytest.raises(TokenError, match="token site does not match"):
        verify_geo_token(_signed(key, "EdDSA", site="secondary-2"), PUBLIC, SITE)


@pytest.mark.parametrize("epoch", [None, 0, -1, "2", 1.5, True])
def test_a_token_without_an_integer_epoch_is_refused(epoch: object) -> None:
    token = _signed(_private_key_object(PRIVATE), "EdDSA", epoch=epoch)
    with pytest.raises(TokenError, match="token missing claim 'epoch'"):
        verify_geo_token(token, PUBLIC, SITE)


@pytest.mark.parametrize(
    ("pem", "message"), [("", "not a PEM public key"), (_rsa_public(), "not an Ed25519")]
)
def test_a_registered_key_that_is_not_ed25519_refuses_the_token(pem: str, message: str) -> None:
    with pytest.raises(TokenError, match=f"public key of site '{SITE}' is unusable: {message}"):
        verify_geo_token(signer().token("proxy"), pem, SITE)


def test_the_site_scope_round_trips() -> None:
    assert verify_geo_token(signer().token("site"), PUBLIC, SITE).scope == "site"


@pytest.mark.parametrize("token", ["", "not-a-jwt", issue_token("s" * 40, "x", "geogit-geo")])
def test_claimed_site_needs_a_token_naming_a_site(token: str) -> None:
    with pytest.raises(TokenError):
        claimed_site(token)
