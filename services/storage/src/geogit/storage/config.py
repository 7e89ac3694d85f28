"""Storage settings, from GEOGIT_* environment variables (secrets also from *_FILE)."""

from __future__ import annotations

from pathlib import Path

from geogit.common.ops_http import OpsListenerSettings


class StorageSettings(OpsListenerSettings):
    storage_name: str = "default"
    storage_root: Path = Path("/var/opt/geogit/repositories")
    listen_address: str = "127.0.0.1:9999"
    # Host and port for /metrics, /-/liveness and /-/readiness.
    ops_address: str = "127.0.0.1:9998"
    # The address hooks use to call back into this storage (defaults to listen_address).
    advertised_address: str = ""
    # Verifies the tokens callers present; signs the tokens handed to hooks.
    storage_secret: str = ""
    internal_api_url: str = "http://127.0.0.1:8081"
    internal_api_secret: str = ""
    git_bin: str = "git"
    # Upper bound for one git process serving a clone or push.
    git_timeout_seconds: float = 3600.0
    shutdown_grace_seconds: float = 30.0
    # The pack-objects cache (pack_cache/): upload-pack asks storage for its packs, identical
    # requests share one pack-objects run, and its output is kept on disk a while.
    pack_cache_enabled: bool = True
    # Where entries are written; default <runtime dir>/pack-cache.
    pack_cache_dir: Path | None = None
    pack_cache_max_bytes: int = 10 * 1024**3
    pack_cache_max_age_seconds: float = 300.0
    # The object list one request may send (wants, haves, shallow lines).
    pack_cache_max_stdin_bytes: int = 64 * 1024**2

    @property
    def hook_address(self) -> str:
        return self.advertised_address or self.listen_address

    @property
    def runtime_dir(self) -> Path:
        """Storage's own files beside the repositories; '+' never starts a hashed path."""
        return self.storage_root / "+geogit"

    @property
    def pack_cache_directory(self) -> Path:
        return self.pack_cache_dir or self.runtime_dir / "pack-cache"
