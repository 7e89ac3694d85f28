"""The pack-objects cache: upload-pack's `uploadpack.packObjectsHook` asks storage for the pack.

`hook.py` is the executable git runs (standard library only), `server.py` the Unix socket it
calls and the request's key, `cache.py` the entries that concurrent and later identical
requests share. `build` wires them for the storage server.
"""

from __future__ import annotations

from geogit.storage.config import StorageSettings
from geogit.storage.git import Git
from geogit.storage.metrics import StorageMetrics
from geogit.storage.pack_cache.cache import PackCache
from geogit.storage.pack_cache.server import PackObjectsServer, install_hook


def build(settings: StorageSettings, git: Git, metrics: StorageMetrics) -> PackObjectsServer | None:
    """The server for these settings, or None when the cache is off."""
    if not settings.pack_cache_enabled:
        return None
    runtime = settings.runtime_dir
    cache = PackCache(
        git,
        settings.pack_cache_directory,
        settings.pack_cache_max_bytes,
        settings.pack_cache_max_age_seconds,
        metrics,
        settings.git_timeout_seconds,
    )
    return PackObjectsServer(
        git,
        cache,
        settings.storage_root,
        runtime / "pack-objects",
        install_hook(runtime),
        metrics,
        settings.pack_cache_max_stdin_bytes,
    )
