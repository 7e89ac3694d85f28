from __future__ import annotations

import stat
from pathlib import Path

from geogit.ssh_gateway.host_keys import HOST_KEY_TYPES, load_or_create_host_keys


def test_generated_once_private_and_reused(tmp_path: Path) -> None:
    first = load_or_create_host_keys(tmp_path / "keys")
    assert sorted(key.get_algorithm() for key in first) == ["ssh-ed25519", "ssh-rsa"]
    for name in HOST_KEY_TYPES:
        mode = (tmp_path / "keys" / name).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600
    second = load_or_create_host_keys(tmp_path / "keys")
    assert [k.public_data for k in first] == [k.public_data for k in second]
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == sorted(HOST_KEY_TYPES)
