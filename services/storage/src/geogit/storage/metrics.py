"""The storage's Prometheus metrics, in a registry of its own.

Built per server rather than at import time, so a test process can run several storages
(a primary's and a secondary's) and each /metrics shows only its own RPCs.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class StorageMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rpc_total = Counter(
            "geogit_storage_rpc_total", "RPCs handled", ["method", "code"], registry=self.registry
        )
        self.rpc_seconds = Histogram(
            "geogit_storage_rpc_seconds", "RPC duration", ["method"], registry=self.registry
        )
