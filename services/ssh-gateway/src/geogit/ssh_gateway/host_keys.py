"""Host keys: generated once into a directory and reused on every start and every replica.

A client pins the host key on first connect; a gateway that changed keys on restart would make
every developer's `ssh` shout about a man in the middle.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import asyncssh

# File name → (algorithm, generation options).
HOST_KEY_TYPES: dict[str, str] = {
    "ssh_host_ed25519_key": "ssh-ed25519",
    "ssh_host_rsa_key": "ssh-rsa",
}
RSA_KEY_BITS = 3072


def _write_private(path: Path, data: bytes) -> None:
    """Atomic, never world-readable, never clobbering: a 0600 temp file hard-linked in place."""
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o600)
        # link, not replace: if another replica created the key first, its key wins.
        with contextlib.suppress(FileExistsError):
            os.link(temp_name, path)
    finally:
        Path(temp_name).unlink(missing_ok=True)


def load_or_create_host_keys(directory: Path) -> list[asyncssh.SSHKey]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = []
    for name, algorithm in HOST_KEY_TYPES.items():
        path = directory / name
        if not path.exists():
            key = (
                asyncssh.generate_private_key(algorithm, key_size=RSA_KEY_BITS)
                if algorithm == "ssh-rsa"
                else asyncssh.generate_private_key(algorithm)
            )
            _write_private(path, key.export_private_key())
        keys.append(asyncssh.read_private_key(str(path)))
    return keys
