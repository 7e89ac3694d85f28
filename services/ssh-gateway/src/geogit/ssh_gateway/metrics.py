"""The SSH gateway's Prometheus metrics, in a registry of its own.

Built per gateway rather than at import time, so a test process can run several sites'
gateways and each /metrics shows only its own sessions.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SshMetrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.connections = Counter(
            "geogit_ssh_connections_total", "SSH connections accepted", registry=registry
        )
        self.auth = Counter(
            "geogit_ssh_auth_total", "Public-key lookups by result", ["result"], registry=registry
        )
        self.sessions_active = Gauge(
            "geogit_ssh_sessions_active", "SSH sessions running", registry=registry
        )
        self.sessions = Counter(
            "geogit_ssh_sessions_total",
            "SSH sessions by command and outcome",
            ["command", "outcome"],
            registry=registry,
        )
        self.session_seconds = Histogram(
            "geogit_ssh_session_seconds",
            "Duration of Git sessions",
            ["command"],
            registry=registry,
        )
