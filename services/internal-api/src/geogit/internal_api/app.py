"""The internal API's wiring: `create_app(settings)` and the one table of route families.

Nothing is built at import time. `create_app` builds the app's metrics registry; the lifespan
builds the database engine and the storage client, then what the site's role needs: on the
primary the outbox relay and the consumer of its secondaries' replication reports (when Kafka
is configured); on a secondary the client for the primary and the event feed that keeps the
read model current. It tears them down in reverse order when the server drains.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request

from geogit.common.events import Topics
from geogit.common.geo import BOOTSTRAP_EPOCH, GeoSigner
from geogit.common.kafka import KafkaConfig
from geogit.common.primary_client import PrimaryClient
from geogit.internal_api import health
from geogit.internal_api.admin import (
    geo_sites,
    keys,
    members,
    project_transfer,
    projects,
    protected_branches,
    tokens,
    users,
)
from geogit.internal_api.clients.storage import StorageClient
from geogit.internal_api.config import InternalApiSettings
from geogit.internal_api.db import make_engine, make_sessionmaker
from geogit.internal_api.deps import Services
from geogit.internal_api.errors import ApiError, install_error_handlers
from geogit.internal_api.events.outbox import Outbox
from geogit.internal_api.events.relay import OutboxRelay
from geogit.internal_api.geo.auth import geo_gate
from geogit.internal_api.geo.event_feed import EventFeed
from geogit.internal_api.geo.replication_status import ReplicationStatusConsumer
from geogit.internal_api.internal import (
    allowed,
    authorized_keys,
    event_store,
    geo,
    geo_proxy,
    git_http,
    hooks,
)
from geogit.internal_api.metrics import Metrics
from geogit.internal_api.middleware import (
    BodyLimit,
    EncodedPathSegments,
    RequestContext,
    UnexpectedErrors,
)

# Every route family, in one place.
ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    # Internal API (JWT in Geogit-Api-Request): gateways, storage hooks, this site's services;
    # the event store also answers other sites (Geo token).
    allowed.router,
    hooks.router,
    git_http.router,
    authorized_keys.router,
    geo.router,
    geo_proxy.router,
    event_store.router,
    # Admin REST API (personal access tokens), GitLab v4 shapes.
    users.router,
    tokens.router,
    keys.router,
    projects.router,
    project_transfer.router,
    members.router,
    protected_branches.router,
    geo_sites.router,
)


def _kafka(settings: InternalApiSettings) -> KafkaConfig | None:
    if not settings.kafka_bootstrap:
        return None
    return KafkaConfig(
        bootstrap=settings.kafka_bootstrap,
        idempotent=settings.kafka_idempotent,
        client_id=f"geogit-internal-api-{settings.site_name}",
        session_timeout_ms=settings.kafka_session_timeout_ms,
    )


class _Background:
    """What runs beside the request handlers, by role; started and stopped as one."""

    def __init__(self, settings: InternalApiSettings, services: Services) -> None:
        self._parts: list[OutboxRelay | EventFeed | ReplicationStatusConsumer] = []
        kafka, topics = _kafka(settings), Topics(settings.topic_prefix)
        if services.primary is not None:
            self._parts.append(
                EventFeed(
                    services.sessions,
                    services.primary,
                    kafka,
                    topics,
                    settings.site_name,
                    poll_seconds=settings.event_store_poll_seconds,
                    heartbeat_seconds=settings.feed_heartbeat_seconds,
                    metrics=services.metrics,
                )
            )
        if kafka is not None:
            # On a secondary its outbox holds only its replicator's reports.
            self._parts.append(
                OutboxRelay(
                    services.sessions,
                    kafka,
                    topics,
                    batch_size=settings.relay_batch_size,
                    poll_seconds=settings.relay_poll_seconds,
                    max_backoff_seconds=settings.relay_max_backoff_seconds,
                    publish_timeout_seconds=settings.relay_publish_timeout_seconds,
                    metrics=services.metrics,
                )
            )
        if kafka is not None and services.primary is None:
            self._parts.append(
                ReplicationStatusConsumer(services.sessions, kafka, topics, settings.site_name)
            )

    def start(self) -> None:
        for part in self._parts:
            part.start()

    async def stop(self) -> None:
        for part in reversed(self._parts):
            await part.stop()


def _lifespan(
    settings: InternalApiSettings, metrics: Metrics
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            engine = make_engine(settings.database_url, settings.database_connect_timeout_seconds)
            stack.push_async_callback(engine.dispose)
            storage = StorageClient(settings.storages, settings.storage_secret)
            stack.push_async_callback(storage.close)
            # The epoch stays the bootstrap one until the site's state drives it (DESIGN §10).
            geo_signer = GeoSigner(
                settings.geo_private_key, settings.site_name, lambda: BOOTSTRAP_EPOCH
            )
            primary = None
            if settings.is_secondary:
                primary = PrimaryClient(
                    settings.primary_url, geo_signer, settings.primary_timeout_seconds
                )
                stack.push_async_callback(primary.aclose)
            services = Services(
                settings=settings,
                sessions=make_sessionmaker(engine),
                storage=storage,
                outbox=Outbox(settings.site_name),
                metrics=metrics,
                geo_signer=geo_signer,
                primary=primary,
            )
            app.state.services = services
            background = _Background(settings, services)
            background.start()
            stack.push_async_callback(background.stop)
            yield

    return lifespan


_READS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _read_only_on_secondary(request: Request) -> None:
    """A secondary's tables follow the primary's events; a write here would fork them."""
    services: Services = request.app.state.services
    path = request.url.path
    if (
        services.settings.is_secondary
        and request.method not in _READS
        and path.startswith("/api/v4/")
        and not path.startswith("/api/v4/internal/")
    ):
        raise ApiError(
            403, "403 Forbidden - this is a read-only Geo secondary; write through the primary"
        )


def create_app(settings: InternalApiSettings) -> FastAPI:
    settings.check_required_secrets()
    if settings.default_storage not in settings.storages:
        raise ValueError(
            f"GEOGIT_DEFAULT_STORAGE {settings.default_storage!r} is not in GEOGIT_STORAGES"
        )
    metrics = Metrics()
    app = FastAPI(
        title="geogit internal API",
        version="0.1.0",
        openapi_url="/api/v4/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan(settings, metrics),
        dependencies=[Depends(geo_gate), Depends(_read_only_on_secondary)],
    )
    for router in ROUTERS:
        app.include_router(router)
    install_error_handlers(app, settings.database_retry_after_seconds)
    # add_middleware wraps: the last added is the outermost.
    app.add_middleware(UnexpectedErrors)
    app.add_middleware(EncodedPathSegments)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        max_internal_bytes=settings.max_internal_body_bytes,
    )
    app.add_middleware(RequestContext, metrics=metrics)
    return app
