"""Fixed loopback ports of the dev stack, so URLs in docs, scripts and muscle memory stay put.

| what                         | primary | secondary N        |
|------------------------------|---------|--------------------|
| edge proxy (HTTP front door) | 8080    | 8080 + 100*N       |
| internal API                 | 8081    | 8081 + 100*N       |
| storage gRPC                 | 8082    | 8082 + 100*N       |
| storage ops (health/metrics) | 8083    | 8083 + 100*N       |
| SSH gateway                  | 2222    | 2222 + 100*N       |
| SSH gateway ops              | 8084    | 8084 + 100*N       |
| replicator ops               | 8085    | 8085 + 100*N       |
| Kafka (Tansu), shared        | 19092   |                    |
| PostgreSQL (throwaway), shared | 15432 | (one database per site) |

With `--replicas R` (R ≥ 2) the ports above are HAProxy's, one address per stateless service
as a Kubernetes Service gives, and replica r (1..R) of each listens 10·r above: edge proxy
8080 + 10·r, internal API 8081 + 10·r, SSH gateway 2222 + 10·r, its ops 8084 + 10·r (the
primary's replica 1: 8090, 8091, 2232, 8094), secondary N again +100·N. HAProxy's own stats
page is on 8086 + 100·N.

Tests never use these: they take `SitePorts.free()` so they run beside a dev stack.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass

from geogit.common.net import free_port

LOOPBACK = "127.0.0.1"
KAFKA_PORT = 19092
POSTGRES_PORT = 15432
_PRIMARY_HTTP_PORT = 8080
_PRIMARY_SSH_PORT = 2222
_SITE_STRIDE = 100
_REPLICA_STRIDE = 10
# Replica ports stay below the next site's (+100).
MAX_REPLICAS = 9


@dataclass(frozen=True)
class SitePorts:
    """The ports one site listens on."""

    http: int
    internal_api: int
    storage: int
    storage_ops: int
    ssh: int
    ssh_ops: int
    replicator_ops: int
    # HAProxy's stats page, when the site runs replicas behind it (0: no balancer).
    balancer_ops: int = 0

    @classmethod
    def fixed(cls, index: int) -> SitePorts:
        """Site `index` of the dev stack: 0 is the primary, N the N-th secondary."""
        if index < 0:
            raise ValueError(f"site index must be >= 0, not {index}")
        base = _PRIMARY_HTTP_PORT + _SITE_STRIDE * index
        return cls(
            http=base,
            internal_api=base + 1,
            storage=base + 2,
            storage_ops=base + 3,
            ssh=_PRIMARY_SSH_PORT + _SITE_STRIDE * index,
            ssh_ops=base + 4,
            replicator_ops=base + 5,
            balancer_ops=base + 6,
        )

    @classmethod
    def free(cls) -> SitePorts:
        """Ports the OS just had free, for tests that run beside a dev stack or each other."""
        return cls(
            http=free_port(),
            internal_api=free_port(),
            storage=free_port(),
            storage_ops=free_port(),
            ssh=free_port(),
            ssh_ops=free_port(),
            replicator_ops=free_port(),
            balancer_ops=free_port(),
        )

    def listening(self) -> dict[str, int]:
        """The ports a started site binds (every site runs a replicator, the primary too)."""
        return {
            "edge proxy": self.http,
            "internal API": self.internal_api,
            "storage gRPC": self.storage,
            "storage ops": self.storage_ops,
            "SSH gateway": self.ssh,
            "SSH gateway ops": self.ssh_ops,
            "replicator ops": self.replicator_ops,
        }


@dataclass(frozen=True)
class ReplicaPorts:
    """Where replica r of a site's stateless services listens, behind the site's balancer
    (which takes the site's own edge proxy, internal API and SSH ports)."""

    http: int
    internal_api: int
    ssh: int
    ssh_ops: int

    @classmethod
    def fixed(cls, index: int, replica: int) -> ReplicaPorts:
        """Replica `replica` (1..MAX_REPLICAS) of site `index` of the dev stack."""
        if not 1 <= replica <= MAX_REPLICAS:
            raise ValueError(f"replica must be 1 to {MAX_REPLICAS}, not {replica}")
        site = SitePorts.fixed(index)
        step = _REPLICA_STRIDE * replica
        return cls(
            http=site.http + step,
            internal_api=site.internal_api + step,
            ssh=site.ssh + step,
            ssh_ops=site.ssh_ops + step,
        )

    @classmethod
    def free(cls) -> ReplicaPorts:
        return cls(http=free_port(), internal_api=free_port(), ssh=free_port(), ssh_ops=free_port())

    def listening(self, replica: int) -> dict[str, int]:
        return {
            f"edge proxy {replica}": self.http,
            f"internal API {replica}": self.internal_api,
            f"SSH gateway {replica}": self.ssh,
            f"SSH gateway ops {replica}": self.ssh_ops,
        }


def busy_ports(wanted: Mapping[str, int], host: str = LOOPBACK) -> dict[str, int]:
    """The subset of `wanted` some other process already listens on.

    Checked before anything starts so `up` can name the culprit port instead of failing later
    with a service's "address already in use" buried in its log. SO_REUSEADDR mirrors what the
    servers themselves do, so lingering TIME_WAIT connections do not count as busy.
    """
    busy = {}
    for label, port in wanted.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                busy[label] = port
    return busy
