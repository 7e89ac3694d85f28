"""Prometheus metrics of the replicator."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LAG_SECONDS = Histogram(
    "geogit_replication_lag_seconds",
    "From the push on the primary to the replica having it",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600),
)
SYNC_SECONDS = Histogram("geogit_replication_sync_seconds", "Duration of one replica sync")
QUEUE_DEPTH = Gauge("geogit_replication_queue_depth", "Projects with replication work pending")
SYNCS = Counter("geogit_replication_syncs_total", "Replica syncs by outcome", ["outcome"])
FAILURES = Counter("geogit_replication_failures_total", "Failed syncs by kind", ["kind"])
VERIFICATIONS = Counter("geogit_replication_verifications_total", "Checks by result", ["result"])
DELETIONS = Counter("geogit_replication_deletions_total", "Replicas removed")
