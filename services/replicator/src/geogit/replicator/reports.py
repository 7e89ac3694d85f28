"""Replication reports (DESIGN §4): ReplicaSynced / ReplicaFailed / ReplicaVerified, for the
primary's status page and anyone observing `geogit.replication`.

A sync only queues its report and goes on; one background task hands the reports, in order, to
the site's own internal API, which writes each into the site's outbox. The outbox relay
publishes them to Kafka and keeps retrying while the broker is down, so a broker outage delays
reports instead of losing them: the lag operators watch has no holes exactly when it matters.
While the internal API itself cannot be reached, the task keeps the report and retries it with
backoff; only a report refused as invalid (a bug) is dropped, and counted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging

from google.protobuf.message import Message

from geogit.common.background import Background
from geogit.common.internal_api_client import InternalApiError
from geogit.replicator.clients.internal_api import InternalApiClient
from geogit.replicator.metrics import ReplicatorMetrics

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 10.0


class Reports:
    def __init__(self, api: InternalApiClient, site: str, metrics: ReplicatorMetrics) -> None:
        self._api = api
        self._metrics = metrics
        self.site = site
        self._queue: asyncio.Queue[tuple[int, Message]] = asyncio.Queue()
        self._sender = Background("replication-reports", self._send_forever)

    def start(self) -> None:
        self._sender.start()

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Give the queued reports a moment to reach the outbox, then stop; what is left is
        logged (and lost: the registry, not the reports, is the replication state)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_seconds):
                await self._queue.join()
        await self._sender.stop()
        if self.pending:
            log.warning("replication reports not saved at shutdown", extra={"count": self.pending})

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def publish(self, project_id: int, payload: Message) -> None:
        """Queue a report; it reaches the outbox after every report queued before it."""
        self._queue.put_nowait((project_id, payload))
        self._metrics.reports_pending.set(self._queue.qsize())

    async def _send_forever(self) -> None:
        while True:
            project_id, payload = await self._queue.get()
            try:
                await self._send(project_id, payload)
            finally:
                self._queue.task_done()
            self._metrics.reports_pending.set(self._queue.qsize())

    async def _send(self, project_id: int, payload: Message) -> None:
        """Until the internal API has it; the next report waits, so the order holds."""
        body = base64.b64encode(payload.SerializeToString()).decode()
        delay = RETRY_BASE_SECONDS
        failures = 0
        while True:
            try:
                await self._api.report(payload.DESCRIPTOR.name, project_id, body)
            except InternalApiError as exc:
                if exc.status == 400:
                    self._metrics.reports_dropped.inc()
                    log.error("replication report refused", extra={"error": str(exc)})
                    return
                failures += 1
                if failures == 1:  # once per report, not once per retry
                    log.warning(
                        "replication report kept for a retry",
                        extra={"type": payload.DESCRIPTOR.name, "error": str(exc)},
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            if failures:
                log.info("replication report saved after retries", extra={"failures": failures})
            return
