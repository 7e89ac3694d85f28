"""The replicator's Prometheus metrics, in a registry of its own.

Built per replicator rather than at import time, so a test process can run several sites'
replicators and each /metrics shows only its own syncs.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ReplicatorMetrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.lag_seconds = Histogram(
            "geogit_replication_lag_seconds",
            "From the push on the primary to the replica having it",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600),
            registry=registry,
        )
        self.sync_seconds = Histogram(
            "geogit_replication_sync_seconds", "Duration of one replica sync", registry=registry
        )
        self.queue_depth = Gauge(
            "geogit_replication_queue_depth",
            "Projects with replication work pending",
            registry=registry,
        )
        self.syncs = Counter(
            "geogit_replication_syncs_total",
            "Replica syncs by outcome",
            ["outcome"],
            registry=registry,
        )
        self.failures = Counter(
            "geogit_replication_failures_total",
            "Failed syncs by kind",
            ["kind"],
            registry=registry,
        )
        self.verifications = Counter(
            "geogit_replication_verifications_total",
            "Checks by result",
            ["result"],
            registry=registry,
        )
        self.deletions = Counter(
            "geogit_replication_deletions_total", "Replicas removed", registry=registry
        )
        self.diverged_refs = Counter(
            "geogit_replication_diverged_refs_total",
            "Refs kept under refs/geogit/diverged/ by a re-sync after a failover",
            registry=registry,
        )
        self.reports_dropped = Counter(
            "geogit_replication_reports_dropped_total",
            "Reports refused as invalid",
            registry=registry,
        )
        self.reports_pending = Gauge(
            "geogit_replication_reports_pending",
            "Reports not yet in the site's outbox",
            registry=registry,
        )
        self.owned_partitions = Gauge(
            "geogit_replicator_owned_partitions",
            "Partitions of the repository topic this replicator holds: its share of the projects",
            registry=registry,
        )
