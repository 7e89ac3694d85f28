"""Whether the Kafka broker is reachable, as one outage state per process instead of log noise.

While a broker is down, aiokafka logs every failed reconnect, metadata refresh, fetch and
heartbeat at ERROR: thousands of lines a minute that bury everything else and say one thing.
`BrokerHealth` turns them into a state: a filter on aiokafka's loggers takes the connection
errors out of the log and reports them here; a probe then asks the broker itself (a bare
Metadata request) and, if it does not answer, an outage starts: one WARNING line, the outage
counter, the "reachable" gauge at 0. The probe keeps asking; when the broker answers, one line
says the outage ended and how long it lasted. aiokafka messages of other kinds are suppressed
while the outage lasts (they are its consequences) and counted in the closing line.

A connection error while the broker answers the probe (a connection closed by a restart that
already ended) is transient: dropped, counted in a metric, not an outage.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Iterable

from aiokafka import errors
from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

OUTAGES = Counter("geogit_kafka_outages_total", "Kafka broker outages seen by this process")
REACHABLE = Gauge(
    "geogit_kafka_broker_reachable", "1 while the Kafka broker answers, 0 in an outage"
)
SUPPRESSED = Counter(
    "geogit_kafka_client_errors_suppressed_total",
    "aiokafka log lines folded into the broker outage state instead of logged",
)

PROBE_INTERVAL_SECONDS = 1.0
_PROBE_TIMEOUT_SECONDS = 1.0
_PROBE_CORRELATION_ID = 1

# What aiokafka raises or logs when it cannot talk to a broker at all.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    errors.KafkaConnectionError,
    errors.NodeNotReadyError,
    errors.RequestTimedOutError,
    errors.KafkaTimeoutError,
    errors.NoBrokersAvailable,
    errors.CoordinatorNotAvailableError,
    errors.NotCoordinatorForGroupError,
)
_CONNECTION_MESSAGES = (
    "Unable connect to",
    "Unable to update metadata",
    "Unable to request metadata",
    "Heartbeat session expired",
    "Coordinator dead",
    "Marking the coordinator dead",
)


def broker_answers(host: str, port: int, timeout: float = _PROBE_TIMEOUT_SECONDS) -> bool:
    """Send a bare Metadata v0 request; a broker is there once it answers listing a broker.

    An open port alone proves little: another process may hold it, or a dying broker still
    accept connections.
    """
    client_id = b"geogit-probe"
    # Request header: api key 3 (Metadata), version 0, correlation id, client id.
    request = struct.pack(">hhih", 3, 0, _PROBE_CORRELATION_ID, len(client_id)) + client_id
    request += struct.pack(">i", 0)  # no topics: only the broker list is wanted
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            with sock.makefile("rb") as stream:
                header = stream.read(4)
                if len(header) < 4:
                    return False
                body = stream.read(struct.unpack(">i", header)[0])
    except OSError:
        return False
    if len(body) < 8:
        return False
    correlation_id, broker_count = struct.unpack_from(">ii", body)
    return bool(correlation_id == _PROBE_CORRELATION_ID and broker_count > 0)


def _addresses(bootstrap: str) -> list[tuple[str, int]]:
    addresses = []
    for entry in bootstrap.split(","):
        host, _, port = entry.strip().rpartition(":")
        if host and port.isdigit():
            addresses.append((host.strip("[]"), int(port)))
    return addresses


def is_connection_error(record: logging.LogRecord) -> bool:
    """Whether an aiokafka log record says a broker could not be reached."""
    candidates: list[object] = []
    if record.exc_info and record.exc_info[1] is not None:
        candidates.append(record.exc_info[1])
    if isinstance(record.args, tuple):
        candidates.extend(record.args)
    if any(isinstance(value, _CONNECTION_ERRORS) for value in candidates):
        return True
    message = record.msg if isinstance(record.msg, str) else ""
    return message.startswith(_CONNECTION_MESSAGES)


class _AiokafkaFilter(logging.Filter):
    def __init__(self, health: BrokerHealth) -> None:
        super().__init__()
        self._health = health

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if is_connection_error(record):
            self._health.connection_failed(record.getMessage())
            return False
        if self._health.in_outage:
            self._health.suppressed_during_outage()
            return False
        return True


class BrokerHealth:
    """The broker's state for one process: every Kafka client of the process reports here."""

    def __init__(self, probe_interval: float = PROBE_INTERVAL_SECONDS) -> None:
        self._probe_interval = probe_interval
        # Bootstrap lists of the clients running now, with how many use each.
        self._watched: dict[str, int] = {}
        self._filter = _AiokafkaFilter(self)
        self._probe: asyncio.Task[None] | None = None
        self._outage_started: float | None = None
        self._suppressed = 0
        self.outages = 0

    @property
    def in_outage(self) -> bool:
        return self._outage_started is not None

    def watch(self, bootstrap: str) -> None:
        """Called by every client as it starts: where to probe, and the filter in place."""
        self._watched[bootstrap] = self._watched.get(bootstrap, 0) + 1
        for logger in _aiokafka_loggers():
            if self._filter not in logger.filters:
                logger.addFilter(self._filter)
        if not self.in_outage:
            REACHABLE.set(1)

    def forget(self, bootstrap: str) -> None:
        """Called by every client as it stops: a broker nobody uses is not probed."""
        remaining = self._watched.get(bootstrap, 0) - 1
        if remaining > 0:
            self._watched[bootstrap] = remaining
        else:
            self._watched.pop(bootstrap, None)

    def connection_failed(self, detail: str) -> None:
        """A client could not reach the broker: probe it, unless a probe already runs."""
        self._count_suppressed()
        if self._probe is not None and not self._probe.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop to probe from (a client being torn down); the next error will
        self._probe = loop.create_task(self._confirm_and_watch(detail))

    def suppressed_during_outage(self) -> None:
        self._count_suppressed()

    def _count_suppressed(self) -> None:
        SUPPRESSED.inc()
        if self.in_outage:
            self._suppressed += 1

    async def _reachable(self, bootstraps: set[str]) -> bool:
        """Every bootstrap list has a broker that answers (any one of its addresses)."""
        for bootstrap in bootstraps:
            if not await _any_answers(_addresses(bootstrap)):
                return False
        return True

    async def _confirm_and_watch(self, detail: str) -> None:
        # The brokers in use when it failed stay probed even if their clients stop meanwhile
        # (a consumer restarted in a loop), else "nobody uses a broker" would end the outage.
        bootstraps = set(self._watched)
        if await self._reachable(bootstraps):
            return  # transient: the broker answers, the client reconnects on its own
        self._begin(detail)
        while True:
            await asyncio.sleep(self._probe_interval)
            if await self._reachable(bootstraps | set(self._watched)):
                break
        self._end()

    def _begin(self, detail: str) -> None:
        self._outage_started = time.monotonic()
        self._suppressed = 0
        self.outages += 1
        OUTAGES.inc()
        REACHABLE.set(0)
        log.warning(
            "Kafka broker unreachable: outage started",
            extra={"kafka_bootstrap": ",".join(self._watched), "error": detail[:300]},
        )

    def _end(self) -> None:
        started, self._outage_started = self._outage_started, None
        duration = time.monotonic() - (started or time.monotonic())
        REACHABLE.set(1)
        log.warning(
            "Kafka broker reachable again: outage ended after %.1f s",
            duration,
            extra={
                "kafka_bootstrap": ",".join(self._watched),
                "outage_seconds": round(duration, 1),
                "suppressed_client_errors": self._suppressed,
            },
        )


async def _any_answers(addresses: Iterable[tuple[str, int]]) -> bool:
    for host, port in addresses:
        if await asyncio.to_thread(broker_answers, host, port):
            return True
    return False


def _aiokafka_loggers() -> list[logging.Logger]:
    """aiokafka's loggers: a filter applies only to the records of the logger it is on, not to
    those its children propagate, so each one gets it."""
    names = [name for name in logging.Logger.manager.loggerDict if name.split(".")[0] == "aiokafka"]
    return [logging.getLogger(name) for name in ["aiokafka", *names]]


broker_health = BrokerHealth()
"""The process's one view of the broker (logging, like the broker, is per process)."""
