"""Health checks the supervisor waits on and `geogit dev status` repeats from another shell.

They are plain values written into each child's pid record, so a later process can probe what
an earlier one started without knowing what kind of service it is.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class HttpProbe:
    """Ready when GET `url` answers 200 (the services' `/-/readiness`)."""

    url: str

    def check(self, timeout: float = 1.0) -> bool:
        try:
            # trust_env=False: an http_proxy in the environment must not swallow loopback probes.
            response = httpx.get(self.url, timeout=timeout, trust_env=False)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def describe(self) -> str:
        return f"GET {self.url}"


@dataclass(frozen=True)
class TcpProbe:
    """Ready when the port accepts a connection (for a broker that speaks no HTTP).

    Only meaningful because `up` checks the port was free before starting the child.
    """

    host: str
    port: int

    def check(self, timeout: float = 1.0) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout):
                return True
        except OSError:
            return False

    def describe(self) -> str:
        return f"tcp {self.host}:{self.port}"


Probe = HttpProbe | TcpProbe


def probe_to_json(probe: Probe | None) -> dict[str, Any] | None:
    if isinstance(probe, HttpProbe):
        return {"http": probe.url}
    if isinstance(probe, TcpProbe):
        return {"tcp": f"{probe.host}:{probe.port}"}
    return None


def probe_from_json(data: Mapping[str, Any] | None) -> Probe | None:
    if not data:
        return None
    if "http" in data:
        return HttpProbe(str(data["http"]))
    host, _, port = str(data["tcp"]).rpartition(":")
    return TcpProbe(host, int(port))
