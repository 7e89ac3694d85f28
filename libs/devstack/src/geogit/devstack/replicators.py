"""More replicators for one site, as a Deployment of N replicas runs them: the same settings as
the site's own replicator but each with its own ops port. They join the site's consumer group
and divide its projects by partition (the replicator's ownership.py); the site's own replicator
is replica 0, started and stopped with the site.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from geogit.common.net import free_port
from geogit.devstack.probes import HttpProbe
from geogit.devstack.processes import StopResult
from geogit.devstack.site import Site, console_script


@dataclass(frozen=True)
class ReplicatorReplica:
    site: Site
    index: int
    ops_url: str

    @property
    def process_name(self) -> str:
        return replica_process_name(self.site, self.index)

    def stop(self, kill: bool = False) -> StopResult:
        return self.site.supervisor.stop(self.process_name, kill=kill)


def replica_process_name(site: Site, index: int) -> str:
    """Replica 0 is the site's own replicator."""
    return site.process_name("replicator" if index == 0 else f"replicator-{index}")


def start_replicator_replica(site: Site, index: int, timeout: float = 30.0) -> ReplicatorReplica:
    if index < 1:
        raise ValueError("replica 0 is the site's own replicator; extra replicas count from 1")
    ops_address = f"{site.host}:{free_port()}"
    replica = ReplicatorReplica(site, index, f"http://{ops_address}")
    site.supervisor.start(
        replica.process_name,
        [console_script("geogit-replicator")],
        {**site.replicator_env(), "GEOGIT_OPS_ADDRESS": ops_address},
        HttpProbe(f"{replica.ops_url}/-/readiness"),
        timeout,
    )
    return replica


@contextmanager
def replicator_replicas(site: Site, extra: int) -> Iterator[list[ReplicatorReplica]]:
    """`extra` more replicators for the block, stopped on the way out: one left running would
    stay in the site's consumer group and hold partitions of a later site of the same name."""
    replicas: list[ReplicatorReplica] = []
    try:
        for index in range(1, extra + 1):
            replicas.append(start_replicator_replica(site, index))
        yield replicas
    finally:
        for replica in replicas:
            replica.stop()
