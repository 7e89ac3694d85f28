"""Host keys: read from a directory every replica shares, so a client's known_hosts entry holds
whichever replica answers.

A client pins the host key on first connect; a gateway that changed keys on restart, or a
replica with keys of its own, would make every developer's `ssh` shout about a man in the
middle. So the keys are configuration: in production they come from one Secret mounted into
every replica, and a missing one stops the start-up. Only where generating is allowed (the
development default) is a missing key generated, once, and every later start and every replica
reads the same file.
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


class HostKeyError(RuntimeError):
    """A host key is missing where it may not be generated, or does not parse."""


def load_or_create_host_keys(directory: Path, generate: bool = True) -> list[asyncssh.SSHKey]:
    """Every key of HOST_KEY_TYPES from `directory`; a missing one is generated if `generate`,
    else HostKeyError."""
    if not generate:
        missing = [name for name in HOST_KEY_TYPES if not (directory / name).is_file()]
        if missing:
            raise HostKeyError(
                f"host key {', '.join(missing)} missing in {directory}: every replica must"
                " present the same keys, so they are configuration (mount the same keys into"
                " GEOGIT_HOST_KEYS_DIR of every replica, or set GEOGIT_HOST_KEYS_GENERATE=true"
                " to generate them there once)"
            )
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
        try:
            keys.append(asyncssh.read_private_key(str(path)))
        except (OSError, ValueError, asyncssh.KeyImportError) as exc:
            raise HostKeyError(f"host key {path} cannot be read: {exc}") from exc
    return keys
