"""HAProxy in front of a site's replicated stateless services, in the role a Kubernetes Service
plays: one address per service (the site's own edge proxy, internal API and SSH ports), every
replica behind it.

TCP mode for all three (HTTP keep-alive and SSH sessions stay on the replica that accepted
them; new connections go round-robin). Each replica is health-checked against its
`/-/readiness` (the SSH gateway's on its ops port) every `CHECK_INTERVAL_MS`; one that fails
`FALL` checks in a row takes no new connections until it passes `RISE` again. A connection
refused by a replica that died between two checks is retried on another (`retries` with
`option redispatch`), so a crashed replica costs the connections it held, not new ones.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

CHECK_INTERVAL_MS = 500
FALL = 2
RISE = 2
CONNECT_TIMEOUT = "2s"
# A clone or push may stream for a long time; the services bound their own requests.
STREAM_TIMEOUT = "1h"


class BalancerError(RuntimeError):
    """HAProxy is not installed."""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if shutil.which("/usr/sbin/haproxy") else None
    )
    if found is None:
        raise BalancerError("haproxy is not installed; run `make install` (Debian package haproxy)")
    return found


@dataclass(frozen=True)
class Backend:
    """One address (`listen`) and the replicas behind it, each `(port, check port)`."""

    name: str
    listen: int
    replicas: Sequence[tuple[int, int]]


def haproxy_config(host: str, backends: Sequence[Backend], stats_port: int) -> str:
    lines = [
        "# Written by geogit dev (libs/devstack/src/geogit/devstack/balancer.py); rewritten",
        "# at every start.",
        "global",
        "    maxconn 4096",
        "",
        "defaults",
        "    mode tcp",
        f"    timeout connect {CONNECT_TIMEOUT}",
        f"    timeout client {STREAM_TIMEOUT}",
        f"    timeout server {STREAM_TIMEOUT}",
        "    timeout check 1s",
        "    retries 3",
        "    option redispatch",
        f"    default-server inter {CHECK_INTERVAL_MS} fall {FALL} rise {RISE}",
        "",
        "frontend stats",
        "    mode http",
        f"    bind {host}:{stats_port}",
        "    stats enable",
        "    stats uri /stats",
        "    http-request return status 200 content-type text/plain string ok"
        " if { path /-/readiness }",
    ]
    for backend in backends:
        lines += [
            "",
            f"listen {backend.name}",
            f"    bind {host}:{backend.listen}",
            "    balance roundrobin",
            "    option httpchk",
            "    http-check send meth GET uri /-/readiness",
            "    http-check expect status 200",
        ]
        for number, (port, check_port) in enumerate(backend.replicas, start=1):
            check = "check" if check_port == port else f"check port {check_port}"
            lines.append(f"    server {backend.name}-{number} {host}:{port} {check}")
    return "\n".join(lines) + "\n"


def replica_states(stats_url: str, backend: str) -> dict[str, str]:
    """What HAProxy thinks of each replica behind `backend` ("UP", "DOWN", ...)."""
    return {server: row[17] for server, row in _server_rows(stats_url, backend).items()}


def replica_downs(stats_url: str, backend: str) -> dict[str, int]:
    """How often HAProxy has marked each replica behind `backend` down by its health check
    (`chkdown`): a replica too busy to answer its check in time counts too."""
    return {server: int(row[22] or 0) for server, row in _server_rows(stats_url, backend).items()}


def _server_rows(stats_url: str, backend: str) -> dict[str, list[str]]:
    """The stats page's row of each server behind `backend` (`<stats_url>/stats;csv`: column 1
    the server, 17 its status, 22 chkdown)."""
    text = httpx.get(f"{stats_url}/stats;csv", timeout=10, trust_env=False).text
    rows = [line.split(",") for line in text.splitlines()[1:] if line]
    return {
        row[1]: row
        for row in rows
        if len(row) > 22 and row[0] == backend and row[1] not in {"FRONTEND", "BACKEND"}
    }
