"""First run always works: generated secrets never read as options, a saved password that
starts with '-' still bootstraps the admin, and a failed `up` says what to do next."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
import pytest

from geogit.common.geo import public_key_of
from geogit.common.tansu import TansuBroker
from geogit.devstack import credentials
from geogit.devstack.cli import main
from geogit.devstack.commands import DevStack
from geogit.devstack.credentials import CredentialStore, SiteSecrets, generate_secret
from geogit.devstack.site import SiteError
from geogit.devstack.testing import running_site


def test_a_secret_starting_with_a_dash_is_redrawn(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter(["-leading", "_fine"])
    monkeypatch.setattr(credentials.secrets, "token_urlsafe", lambda nbytes: next(draws))
    assert generate_secret(18) == "_fine"


def test_generated_secrets_never_start_with_a_dash(tmp_path: Path) -> None:
    # 1 in 64 draws of token_urlsafe starts with '-': 4000 draws all but surely meet one.
    assert any(secrets.token_urlsafe(18).startswith("-") for _ in range(4000))
    assert not any(generate_secret(18).startswith("-") for _ in range(4000))
    site = SiteSecrets.generate()
    assert not any(s.startswith("-") for s in (site.internal_api_secret, site.storage_secret))
    store = CredentialStore(tmp_path / "secrets.json")
    assert not any(store.password(f"user{n}").startswith("-") for n in range(200))


def test_a_failed_up_says_what_to_do_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(self: DevStack, sites: object) -> None:
        raise SiteError("primary: geogit-internal-api bootstrap-admin failed (status 2)")

    monkeypatch.setattr(DevStack, "_start", fail)
    assert main(["dev", "--run-dir", str(tmp_path), "up", "--secondaries", "0"]) == 1
    err = capsys.readouterr().err
    assert "bootstrap-admin failed (status 2)" in err
    assert f"What next: the logs are in {tmp_path / 'logs'}" in err
    assert "`geogit dev down --purge && make up`" in err


def test_a_saved_password_starting_with_a_dash_still_bootstraps(
    open_tmp_path: Path, tansu: TansuBroker, test_server: str
) -> None:
    """secrets.json written before the fix may hold such a password: it must just work."""
    with running_site(open_tmp_path, tansu.bootstrap, admin=False) as (site, _):
        admin = site.bootstrap_admin("root", "root@example.com", "-x" + "p" * 20)
        assert admin.password == "-x" + "p" * 20
        response = httpx.get(
            f"{site.http_url}/api/v4/user",
            headers={"PRIVATE-TOKEN": admin.token},
            trust_env=False,
        )
        assert response.status_code == 200
        assert response.json()["username"] == "root"


def test_a_sites_geo_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "secrets.json")
    first = store.site("secondary-1")
    assert first.geo_private_key.startswith("-----BEGIN PRIVATE KEY-----")
    assert first.geo_public_key == public_key_of(first.geo_private_key)
    assert CredentialStore(tmp_path / "secrets.json").site("secondary-1") == first
    assert store.site("secondary-2").geo_public_key != first.geo_public_key


def test_secrets_saved_before_site_keys_keep_their_secrets_and_gain_a_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "secrets.json"
    old = {"internal_api_secret": "i" * 43, "storage_secret": "s" * 43, "geo_secret": "g" * 43}
    path.write_text(json.dumps({"sites": {"primary": old}}))
    site = CredentialStore(path).site("primary")
    assert (site.internal_api_secret, site.storage_secret) == ("i" * 43, "s" * 43)
    saved = json.loads(path.read_text())["sites"]["primary"]
    assert "geo_secret" not in saved and saved["geo_private_key"] == site.geo_private_key
    assert CredentialStore(path).site("primary") == site
