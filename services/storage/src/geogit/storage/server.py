"""geogit-storage: wires the services together and runs them until SIGTERM.

Lifecycle: starting → serving → draining (health NOT_SERVING, no new RPCs, running ones get
up to GEOGIT_SHUTDOWN_GRACE_SECONDS) → stopped.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from geogit.common.logging import configure_logging
from geogit.common.net import split_address
from geogit.common.ops_http import OpsServer
from geogit.common.proto.storage.v1 import (
    repository_pb2_grpc,
    smarthttp_pb2_grpc,
    ssh_pb2_grpc,
)
from geogit.common.storage_client import CHANNEL_OPTIONS
from geogit.storage import pack_cache
from geogit.storage.clients.internal_api import InternalApiClient
from geogit.storage.config import StorageSettings
from geogit.storage.git import Git
from geogit.storage.git_services import UploadPackHook
from geogit.storage.hook_server import HookServer
from geogit.storage.hook_service import HookService
from geogit.storage.hooks import install_hooks
from geogit.storage.housekeeping import Housekeeper
from geogit.storage.interceptors import StorageInterceptor
from geogit.storage.locator import RepositoryLocator
from geogit.storage.metrics import StorageMetrics
from geogit.storage.push import PushEnvironment
from geogit.storage.replication import ReplicaFetcher
from geogit.storage.repositories import Repositories
from geogit.storage.repository_service import RepositoryService
from geogit.storage.smarthttp import SmartHTTPService
from geogit.storage.ssh import SSHService

log = logging.getLogger(__name__)
SERVICE_NAMES = (
    "geogit.storage.v1.RepositoryService",
    "geogit.storage.v1.SmartHTTPService",
    "geogit.storage.v1.SSHService",
)


class StorageServer:
    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        settings.check_secrets("storage_secret", "internal_api_secret")
        settings.storage_root.mkdir(parents=True, exist_ok=True)
        runtime = settings.runtime_dir
        self.git = Git(settings.git_bin, home=runtime)
        self.locator = RepositoryLocator(settings.storage_root, settings.storage_name)
        self.internal_api = InternalApiClient(
            settings.internal_api_url, settings.internal_api_secret
        )
        self.metrics = StorageMetrics()
        self.housekeeper = self._housekeeper()
        self.hooks = HookServer(
            settings.hooks_socket_dir,
            self.locator,
            HookService(self.internal_api, self.housekeeper),
        )
        self.push = PushEnvironment(
            self.hooks.socket_path,
            self.hooks.token,
            settings.storage_name,
            install_hooks(runtime / "hooks"),
        )
        self.health = health.aio.HealthServicer()
        self.pack_objects = pack_cache.build(settings, self.git, self.metrics)
        self.grpc = grpc.aio.server(
            interceptors=[StorageInterceptor(settings.storage_secret, self.metrics)],
            options=CHANNEL_OPTIONS,
        )
        self._register()
        self.ops = OpsServer(
            *split_address(settings.ops_address),
            ready=lambda: self.serving,
            header_timeout=settings.ops_header_timeout_seconds,
            max_connections=settings.ops_max_connections,
            registry=self.metrics.registry,
        )
        self.serving = False

    def _register(self) -> None:
        """Every RPC this storage answers, in one place."""
        repositories = Repositories(self.git, self.settings.runtime_dir)
        fetcher = ReplicaFetcher(
            self.git,
            self.locator,
            repositories,
            self.settings.git_timeout_seconds,
            self.housekeeper,
        )
        repository_pb2_grpc.add_RepositoryServiceServicer_to_server(
            RepositoryService(self.git, self.locator, repositories, fetcher, self.housekeeper),
            self.grpc,
        )
        smarthttp_pb2_grpc.add_SmartHTTPServiceServicer_to_server(
            SmartHTTPService(self.git, self.locator, self.push, self._upload_pack_hook), self.grpc
        )
        ssh_pb2_grpc.add_SSHServiceServicer_to_server(
            SSHService(self.git, self.locator, self.push, self._upload_pack_hook), self.grpc
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)

    def _housekeeper(self) -> Housekeeper:
        settings = self.settings
        return Housekeeper(
            self.git,
            settings.storage_root,
            self.metrics,
            enabled=settings.housekeeping_enabled,
            concurrency=settings.housekeeping_concurrency,
            interval_seconds=settings.housekeeping_interval_seconds,
            timeout=settings.git_timeout_seconds,
        )

    @property
    def _upload_pack_hook(self) -> UploadPackHook | None:
        return self.pack_objects.hook if self.pack_objects is not None else None

    async def start(self) -> None:
        await self.hooks.start()
        if self.pack_objects is not None:
            await self.pack_objects.start()
        self.grpc.add_insecure_port(self.settings.listen_address)
        await self.grpc.start()
        self.housekeeper.start()
        await self.ops.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.serving = True
        log.info(
            "storage serving",
            extra={
                "address": self.settings.listen_address,
                "root": str(self.settings.storage_root),
            },
        )

    async def stop(self) -> None:
        self.serving = False
        await self.health.enter_graceful_shutdown()
        log.info("storage draining", extra={"grace_s": self.settings.shutdown_grace_seconds})
        await self.grpc.stop(self.settings.shutdown_grace_seconds)
        await self.hooks.stop(self.settings.shutdown_grace_seconds)
        await self.housekeeper.stop()
        if self.pack_objects is not None:
            await self.pack_objects.stop()
        await self.ops.stop()
        await self.internal_api.aclose()
        log.info("storage stopped")


async def serve(settings: StorageSettings) -> None:
    server = StorageServer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    await stop.wait()
    await server.stop()


def main() -> None:
    settings = StorageSettings()
    configure_logging("storage", settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
