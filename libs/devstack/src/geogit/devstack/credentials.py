"""The dev stack's secrets, generated once and kept in `<run>/secrets.json` (mode 0600).

Random rather than well-known values, so a dev stack reachable from elsewhere on the machine is
not open to anyone who read the docs, and so the services' refusal of placeholder secrets holds
even in development. Kept across `down`/`up` because the database and the tokens outlive a
restart; `down --purge` removes them with everything else.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from geogit.common.geo import generate_site_key, public_key_of


def generate_secret(nbytes: int) -> str:
    """A URL-safe random secret that never starts with '-'.

    token_urlsafe starts with '-' once in 64 draws, and a value like that handed to a command
    line reads as an option (`bootstrap-admin --password -x...` failed `make up` on one fresh
    machine in 64). Redrawing keeps the full randomness of the remaining alphabet.
    """
    while (secret := secrets.token_urlsafe(nbytes)).startswith("-"):
        pass
    return secret


@dataclass(frozen=True)
class SiteSecrets:
    """What one site's services share: the internal API's JWT secret and storage's; and the
    site's Ed25519 private key (PEM), which signs its Geo tokens. Its public key is derived
    from it and registered on the primary.
    """

    internal_api_secret: str
    storage_secret: str
    # A default, so a secrets.json written before site keys existed still loads.
    geo_private_key: str = field(default_factory=lambda: generate_site_key()[0])

    @property
    def geo_public_key(self) -> str:
        return public_key_of(self.geo_private_key)

    @classmethod
    def generate(cls) -> SiteSecrets:
        return cls(
            internal_api_secret=generate_secret(32),
            storage_secret=generate_secret(32),
        )


_SITE_FIELDS = frozenset(item.name for item in fields(SiteSecrets))


@dataclass(frozen=True)
class UserCredentials:
    """A user the dev stack created, and the personal access token it uses for them."""

    username: str
    token: str
    password: str = ""


class CredentialStore:
    """Read-modify-write access to secrets.json; each change is written at once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        data: dict[str, Any] = json.loads(self.path.read_text())
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(data, file, indent=2)
            file.write("\n")
        temporary.replace(self.path)

    def site(self, name: str) -> SiteSecrets:
        """The site's secrets, generated and saved on first use."""
        data = self._load()
        sites = data.setdefault("sites", {})
        if name not in sites or set(sites[name]) != _SITE_FIELDS:
            # New, or saved by an older version: keep what is still used, add what is missing.
            saved = sites.get(name) or asdict(SiteSecrets.generate())
            sites[name] = asdict(
                SiteSecrets(**{k: v for k, v in saved.items() if k in _SITE_FIELDS})
            )
            self._save(data)
        return SiteSecrets(**sites[name])

    def password(self, username: str) -> str:
        """A generated password for `username`, stable across runs.

        A password saved by an older version may start with '-'; it is kept (it may already be
        the admin's), and is safe because it now travels in a file, never on a command line.
        """
        data = self._load()
        passwords = data.setdefault("passwords", {})
        if username not in passwords:
            passwords[username] = generate_secret(18)
            self._save(data)
        return str(passwords[username])

    def user(self, role: str) -> UserCredentials | None:
        """The saved credentials for `role` ("admin", "demo"), if any."""
        entry = self._load().get("users", {}).get(role)
        return None if entry is None else UserCredentials(**entry)

    def save_user(self, role: str, credentials: UserCredentials) -> None:
        data = self._load()
        data.setdefault("users", {})[role] = asdict(credentials)
        self._save(data)
