"""Storage settings, from GEOGIT_* environment variables (secrets also from *_FILE)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from geogit.common.ops_http import OpsListenerSettings


class StorageSettings(OpsListenerSettings):
    storage_name: str = "default"
    storage_root: Path = Path("/var/opt/geogit/repositories")
    listen_address: str = "127.0.0.1:9999"
    # Host and port for /metrics, /-/liveness and /-/readiness.
    ops_address: str = "127.0.0.1:9998"
    # Where the hooks' Unix socket lives (a private temporary directory when unset). A socket
    # path must stay under 108 bytes; in Kubernetes, an emptyDir such as /run/geogit.
    hooks_socket_dir: Path | None = None
    # Verifies the tokens callers present.
    storage_secret: str = ""
    internal_api_url: str = "http://127.0.0.1:8081"
    internal_api_secret: str = ""
    git_bin: str = "git"
    # Upper bound for one git process serving a clone or push.
    git_timeout_seconds: float = 3600.0
    shutdown_grace_seconds: float = 30.0
    # Housekeeping (repack, pack-refs, commit-graph, stale quarantines): after pushes and
    # replications, every interval over all repositories, and on OptimizeRepository.
    housekeeping_enabled: bool = True
    # Repositories optimized at once (each run is one git process at a time).
    housekeeping_concurrency: int = Field(default=2, ge=1)
    # Between two sweeps over every repository; 0 turns the sweep off.
    housekeeping_interval_seconds: float = Field(default=3600.0, ge=0)
    # The pack-objects cache (pack_cache/): upload-pack asks storage for its packs, identical
    # requests share one pack-objects run, and its output is kept on disk a while.
    # Off by default, as Gitaly's is: the hook's start-up costs every clone that packs ~40 ms
    # (measured: a tiny shallow clone +33 ms over http-backend off, +79 ms on), and only
    # identical concurrent clones (CI fleets) win it back.
    pack_cache_enabled: bool = False
    # Where entries are written; default <runtime dir>/pack-cache.
    pack_cache_dir: Path | None = None
    pack_cache_max_bytes: int = 10 * 1024**3
    pack_cache_max_age_seconds: float = 300.0
    # The object list one request may send (wants, haves, shallow lines).
    pack_cache_max_stdin_bytes: int = 64 * 1024**2

    @property
    def runtime_dir(self) -> Path:
        """Storage's own files beside the repositories; '+' never starts a hashed path."""
        return self.storage_root / "+geogit"

    @property
    def pack_cache_directory(self) -> Path:
        return self.pack_cache_dir or self.runtime_dir / "pack-cache"
