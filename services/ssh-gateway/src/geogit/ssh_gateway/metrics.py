"""Prometheus metrics of the SSH gateway."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Counter("geogit_ssh_connections_total", "SSH connections accepted")
AUTH = Counter("geogit_ssh_auth_total", "Public-key lookups by result", ["result"])
SESSIONS_ACTIVE = Gauge("geogit_ssh_sessions_active", "SSH sessions running")
SESSIONS = Counter(
    "geogit_ssh_sessions_total", "SSH sessions by command and outcome", ["command", "outcome"]
)
SESSION_SECONDS = Histogram("geogit_ssh_session_seconds", "Duration of Git sessions", ["command"])
