"""The edge's Prometheus metrics, in a registry of its own.

Built per app rather than at import time, so a test or a process can run several edges and
each /metrics shows only its own requests.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "geogit_edge_http_requests_total",
            "HTTP requests answered, by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "geogit_edge_http_request_duration_seconds",
            "Time from request to the last byte of the response",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "geogit_edge_http_requests_in_flight",
            "Requests being served now",
            ["route"],
            registry=self.registry,
        )
        self.aborted = Counter(
            "geogit_edge_http_responses_aborted_total",
            "Responses cut off after they started (upstream failure or client gone)",
            ["route"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
