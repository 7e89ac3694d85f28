from __future__ import annotations

import stat
from pathlib import Path

import pytest

from geogit.ssh_gateway.config import SshGatewaySettings
from geogit.ssh_gateway.host_keys import HOST_KEY_TYPES, HostKeyError, load_or_create_host_keys


def test_generated_once_private_and_reused(tmp_path: Path) -> None:
    first = load_or_create_host_keys(tmp_path / "keys")
    assert sorted(key.get_algorithm() for key in first) == ["ssh-ed25519", "ssh-rsa"]
    for name in HOST_KEY_TYPES:
        mode = (tmp_path / "keys" / name).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600
    second = load_or_create_host_keys(tmp_path / "keys")
    assert [k.public_data for k in first] == [k.public_data for k in second]
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == sorted(HOST_KEY_TYPES)


def test_outside_development_a_missing_key_stops_the_start(tmp_path: Path) -> None:
    """A replica must not make up a key of its own: clients pinned the shared one."""
    with pytest.raises(HostKeyError, match="ssh_host_ed25519_key, ssh_host_rsa_key missing"):
        load_or_create_host_keys(tmp_path / "keys", generate=False)
    assert not (tmp_path / "keys").exists()
    shared = load_or_create_host_keys(tmp_path / "keys")  # what the mounted Secret holds
    again = load_or_create_host_keys(tmp_path / "keys", generate=False)
    assert [k.public_data for k in again] == [k.public_data for k in shared]


def test_generating_is_the_development_default_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEOGIT_HOST_KEYS_GENERATE", raising=False)
    monkeypatch.setenv("GEOGIT_ENVIRONMENT", "development")
    assert SshGatewaySettings().may_generate_host_keys
    monkeypatch.setenv("GEOGIT_ENVIRONMENT", "production")
    assert not SshGatewaySettings().may_generate_host_keys
    monkeypatch.setenv("GEOGIT_HOST_KEYS_GENERATE", "true")
    assert SshGatewaySettings().may_generate_host_keys


def test_a_key_that_does_not_parse_is_named(tmp_path: Path) -> None:
    load_or_create_host_keys(tmp_path)
    (tmp_path / "ssh_host_rsa_key").write_text("not a key\n")
    with pytest.raises(HostKeyError, match="ssh_host_rsa_key cannot be read"):
        load_or_create_host_keys(tmp_path, generate=False)
