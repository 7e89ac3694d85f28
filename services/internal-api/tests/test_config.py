"""The internal API's start-up checks: the secrets it cannot run without, the Geo key included."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from geogit.common.geo import generate_site_key
from geogit.internal_api.config import InternalApiSettings

REQUIRED = {"internal_api_secret": "i" * 40, "storage_secret": "s" * 40}


def _settings(**values: object) -> InternalApiSettings:
    return InternalApiSettings.model_validate({**REQUIRED, **values})


@pytest.mark.parametrize("role", ["primary", "secondary"])
def test_every_site_needs_its_geo_private_key(role: str) -> None:
    with pytest.raises(ValueError, match="GEOGIT_GEO_PRIVATE_KEY must be set"):
        _settings(site_role=role, primary_url="http://p.example.test").check_required_secrets()
    with pytest.raises(ValueError, match="GEOGIT_GEO_PRIVATE_KEY, GEOGIT_PRIMARY_URL must be set"):
        _settings(site_role="secondary").check_required_secrets()


def test_the_geo_private_key_must_be_an_ed25519_private_key() -> None:
    public_key = generate_site_key()[1]
    with pytest.raises(ValueError, match="GEOGIT_GEO_PRIVATE_KEY: not a readable PEM private"):
        _settings(geo_private_key=public_key).check_required_secrets()
    rsa_key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(ValueError, match=r"GEOGIT_GEO_PRIVATE_KEY: not an Ed25519 private key"):
        _settings(geo_private_key=rsa_key).check_required_secrets()
    with pytest.raises(ValueError, match="GEOGIT_GEO_PRIVATE_KEY is a placeholder value"):
        _settings(environment="production", geo_private_key="changeme").check_required_secrets()
    _settings(geo_private_key=generate_site_key()[0]).check_required_secrets()


def test_the_geo_private_key_is_read_from_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private_key = generate_site_key()[0]
    path = tmp_path / "geo_private_key"
    path.write_text(private_key)
    monkeypatch.setenv("GEOGIT_GEO_PRIVATE_KEY_FILE", str(path))
    settings = InternalApiSettings(**REQUIRED)  # type: ignore[arg-type]
    assert settings.geo_private_key == private_key.rstrip("\n")
    settings.check_required_secrets()
