"""The storage's Prometheus metrics, in a registry of its own.

Built per server rather than at import time, so a test process can run several storages
(a primary's and a secondary's) and each /metrics shows only its own RPCs.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

HOUSEKEEPING_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0)


class StorageMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rpc_total = Counter(
            "geogit_storage_rpc_total", "RPCs handled", ["method", "code"], registry=self.registry
        )
        self.rpc_seconds = Histogram(
            "geogit_storage_rpc_seconds", "RPC duration", ["method"], registry=self.registry
        )
        self.housekeeping_runs_total = Counter(
            "geogit_storage_housekeeping_runs_total",
            "Housekeeping runs by trigger (push, replication, schedule, rpc) and outcome"
            " (optimized, unchanged, skipped, cancelled, failed)",
            ["trigger", "outcome"],
            registry=self.registry,
        )
        self.housekeeping_seconds = Histogram(
            "geogit_storage_housekeeping_seconds",
            "Duration of a housekeeping run (skipped runs left out)",
            buckets=HOUSEKEEPING_BUCKETS,
            registry=self.registry,
        )
        self.housekeeping_steps_total = Counter(
            "geogit_storage_housekeeping_steps_total",
            "Housekeeping steps run (repack_incremental, repack_geometric, repack_full, prune,"
            " pack_refs, commit_graph_append, commit_graph_replace, clean_stale)",
            ["step"],
            registry=self.registry,
        )
        self.housekeeping_locked_total = Counter(
            "geogit_storage_housekeeping_locked_total",
            "Repositories skipped because another housekeeping run held their lock",
            registry=self.registry,
        )
        self.pack_cache_hits = Counter(
            "geogit_storage_pack_cache_hits_total",
            "pack-objects requests served from an existing entry (still being written or done)",
            ["state"],
            registry=self.registry,
        )
        self.pack_cache_misses = Counter(
            "geogit_storage_pack_cache_misses_total",
            "pack-objects requests that started a run",
            registry=self.registry,
        )
        self.pack_cache_served_bytes = Counter(
            "geogit_storage_pack_cache_served_bytes_total",
            "pack bytes sent to pack-objects hooks",
            registry=self.registry,
        )
        self.pack_cache_written_bytes = Counter(
            "geogit_storage_pack_cache_written_bytes_total",
            "pack bytes written into cache entries",
            registry=self.registry,
        )
        self.pack_cache_evicted = Counter(
            "geogit_storage_pack_cache_evicted_total",
            "entries removed before their time was up (size) or after (age)",
            ["reason"],
            registry=self.registry,
        )
        self.pack_cache_failures = Counter(
            "geogit_storage_pack_cache_failures_total",
            "pack-objects runs that failed (their entries are dropped, never served again)",
            registry=self.registry,
        )
        self.pack_cache_refused = Counter(
            "geogit_storage_pack_cache_refused_total",
            "hook requests refused before any run: bad frames or token, oversized stdin, ...",
            ["reason"],
            registry=self.registry,
        )
