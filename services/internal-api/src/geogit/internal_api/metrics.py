"""The internal API's Prometheus metrics, in a registry of its own.

Built per app rather than at import time, so a test or a process can run several sites and
each /metrics shows only its own requests, outbox relay and event feed. What belongs to the
process rather than to one app (CPU and memory, the Kafka clients' shared broker state in
`geogit.common.kafka_health`) stays in prometheus_client's default registry; /metrics shows
both.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

from geogit.common.ops_http import render_metrics


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "geogit_internal_api_requests_total",
            "HTTP requests handled",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "geogit_internal_api_request_seconds",
            "HTTP request duration",
            ["method", "route"],
            registry=self.registry,
        )
        self.outbox_published = Counter(
            "geogit_outbox_published_total",
            "Outbox events published to Kafka",
            registry=self.registry,
        )
        self.relay_failures = Counter(
            "geogit_outbox_relay_failures_total",
            "Relay rounds that failed",
            ["reason"],
            registry=self.registry,
        )
        self.events_applied = Counter(
            "geogit_geo_events_applied_total",
            "Events applied to the read model",
            ["via"],
            registry=self.registry,
        )
        self.catch_ups = Counter(
            "geogit_geo_catch_ups_total",
            "Event-store catch-ups",
            ["outcome"],
            registry=self.registry,
        )
        self.feed_position = Gauge(
            "geogit_geo_event_feed_position",
            "Last global sequence applied",
            registry=self.registry,
        )
        self.feed_caught_up = Gauge(
            "geogit_geo_event_feed_caught_up_timestamp_seconds",
            "When this secondary's event feed last confirmed it had every event (Unix time;"
            " 0 until it has, and on a primary): what an 'event feed stalled' alert watches",
            registry=self.registry,
        )
        self.events_refused = Counter(
            "geogit_geo_events_refused_total",
            "Events not applied because of their epoch (DESIGN §10)",
            ["reason"],
            registry=self.registry,
        )
        self.epoch = Gauge(
            "geogit_geo_epoch",
            "The epoch this site holds or follows",
            registry=self.registry,
        )
        self.promotions = Counter(
            "geogit_geo_promotions_total",
            "Promotions of this site, by mode and outcome",
            ["mode", "outcome"],
            registry=self.registry,
        )
        self.follows = Counter(
            "geogit_geo_follows_total",
            "Times this site followed a new primary, and whether it rolled back",
            ["rollback"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return render_metrics(self.registry)
