"""geogit-replicator: the wiring, the lifecycle and `main`.

Parts: the site's role (replication happens only while the site is a secondary, from the
primary it follows); the scheduler (per-project, bounded concurrency) running the replica
worker; the share of the projects this replica owns when a site runs several (ownership.py);
the repository feed from Kafka (the fast path) and the backfill scan (start, interval, on
demand) feeding it; reports to `geogit.replication`; the ops endpoint.
Lifecycle: starting → ready → draining (SIGTERM/SIGINT: no new work; running syncs get
GEOGIT_SHUTDOWN_GRACE_SECONDS, then are cancelled, which storage turns into a killed fetch
that changed nothing) → exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from geogit.common.events import Topics
from geogit.common.geo import BOOTSTRAP_EPOCH, GeoSigner
from geogit.common.logging import configure_logging
from geogit.common.ops_http import OpsServer
from geogit.common.primary_client import PrimaryClient
from geogit.replicator.backfill import Backfill
from geogit.replicator.clients.internal_api import InternalApiClient
from geogit.replicator.clients.storage import StorageClient
from geogit.replicator.config import ReplicatorSettings
from geogit.replicator.feed import RepositoryFeed
from geogit.replicator.metrics import ReplicatorMetrics
from geogit.replicator.ownership import Ownership
from geogit.replicator.read_model_wait import ReadModelWait
from geogit.replicator.reports import Reports
from geogit.replicator.scheduler import Scheduler
from geogit.replicator.site import SiteRole
from geogit.replicator.sync_state import SyncStates
from geogit.replicator.worker import ReplicaWorker

log = logging.getLogger(__name__)

# Readiness waits this long for the Kafka consumers (a group join on Tansu takes about a second).
FEED_START_TIMEOUT_SECONDS = 15.0


class ReplicatorServer:
    def __init__(self, settings: ReplicatorSettings) -> None:
        self.settings = settings
        self.metrics = ReplicatorMetrics()
        self.states = SyncStates()
        kafka = settings.kafka(f"geogit-replicator-{settings.site_name}")
        topics = Topics(settings.topic_prefix)
        self.api = InternalApiClient(
            settings.internal_api_url,
            settings.internal_api_secret,
            settings.internal_api_timeout_seconds,
        )
        self.storage = StorageClient(
            settings.storages, settings.storage_secret, settings.sync_timeout_seconds
        )
        self.reports = Reports(self.api, settings.site_name, self.metrics)
        # Tokens carry the epoch the site follows (DESIGN §10), as its internal API says.
        self.geo_signer = GeoSigner(
            settings.geo_private_key, settings.site_name, lambda: self.site.epoch or BOOTSTRAP_EPOCH
        )
        self.primary = PrimaryClient(
            "",
            self.geo_signer,
            settings.internal_api_timeout_seconds,
            scope="replication",
        )
        self.site = SiteRole(
            self.api, self.primary, settings.site_poll_seconds, lambda: self.backfill.now()
        )
        self.worker = ReplicaWorker(
            self.api,
            self.storage,
            self.reports,
            self.primary,
            self.site,
            self.geo_signer,
            settings.retry_base_seconds,
            settings.retry_max_seconds,
            self.states,
            self.metrics,
        )
        self.scheduler = Scheduler(
            self.worker,
            settings.max_concurrency,
            settings.retry_base_seconds,
            settings.retry_max_seconds,
            self.metrics,
            owns=lambda project_id: self.ownership.owns(project_id),
        )
        self.ownership = Ownership(
            topics.repository if kafka is not None else None,
            self.scheduler.release,
            lambda: self.backfill.now(),
            self.metrics,
        )
        self.backfill = Backfill(
            self.api,
            self.scheduler,
            settings.backfill_interval_seconds,
            settings.verify_interval_seconds,
            lambda: self.site.replicating,
        )
        self.feed = (
            RepositoryFeed(
                kafka,
                topics,
                settings.site_name,
                self.scheduler,
                self.states,
                lambda: self.backfill.now(),
                ReadModelWait(self.api),
                self.ownership,
            )
            if kafka is not None
            else None
        )
        self.ready = False
        self.ops = OpsServer(
            *settings.ops_host_and_port,
            ready=lambda: self.ready,
            actions={"/backfill": self.backfill.now},
            header_timeout=settings.ops_header_timeout_seconds,
            max_connections=settings.ops_max_connections,
            registry=self.metrics.registry,
        )

    async def start(self) -> None:
        await self.ops.start()
        await self.site.start()
        self.reports.start()
        if self.feed is not None:
            await self.feed.start(FEED_START_TIMEOUT_SECONDS)
        self.backfill.start()
        self.ready = True
        log.info("replicator ready", extra={"ops_port": self.ops.port})

    async def stop(self) -> None:
        self.ready = False
        # Running syncs finish first, while this replica still holds their partitions; leaving
        # the group then hands them over with nothing of this replica's still running.
        await self.scheduler.drain(self.settings.shutdown_grace_seconds)
        if self.feed is not None:
            await self.feed.stop()
        await self.backfill.stop()
        await self.site.stop()
        await self.reports.stop()
        await self.storage.close()
        await self.primary.aclose()
        await self.api.aclose()
        await self.ops.stop()


async def serve(settings: ReplicatorSettings) -> None:
    replicator = ReplicatorServer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await replicator.start()
    await stop.wait()
    log.info("draining", extra={"projects": replicator.scheduler.depth})
    await replicator.stop()
    log.info("stopped")


def main() -> None:
    try:
        settings = ReplicatorSettings()
        settings.check_required()
    except ValueError as exc:
        raise SystemExit(f"geogit-replicator: {exc}") from exc
    configure_logging("replicator", settings.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
