"""The internal API's wiring: `create_app(settings)` and the one table of route families.

Nothing is built at import time. The lifespan builds the database engine, the storage client
and the outbox relay (when Kafka is configured), and tears them down in reverse order when the
server drains.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, FastAPI

from geogit.common.events import Topics
from geogit.common.kafka import KafkaConfig
from geogit.internal_api import health
from geogit.internal_api.clients.storage import StorageClient
from geogit.internal_api.config import InternalApiSettings
from geogit.internal_api.db import make_engine, make_sessionmaker
from geogit.internal_api.deps import Services
from geogit.internal_api.errors import install_error_handlers
from geogit.internal_api.middleware import BodyLimit, EncodedPathSegments, RequestContext
from geogit.internal_api.outbox import Outbox
from geogit.internal_api.relay import OutboxRelay
from geogit.internal_api.routers import (
    events,
    geo,
    internal_allowed,
    internal_git_http,
    internal_hooks,
    internal_keys,
    keys,
    members,
    project_transfer,
    projects,
    protected_branches,
    tokens,
    users,
)

# Every route family, in one place.
ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    # Internal API (JWT in Geogit-Api-Request): gateways, storage, hooks, other sites.
    internal_allowed.router,
    internal_hooks.router,
    internal_git_http.router,
    internal_keys.router,
    geo.router,
    events.router,
    # Admin REST API (personal access tokens), GitLab v4 shapes.
    users.router,
    tokens.router,
    keys.router,
    projects.router,
    project_transfer.router,
    members.router,
    protected_branches.router,
)


def _relay(settings: InternalApiSettings, services: Services) -> OutboxRelay | None:
    if not settings.kafka_bootstrap:
        return None
    return OutboxRelay(
        services.sessions,
        KafkaConfig(
            bootstrap=settings.kafka_bootstrap,
            idempotent=settings.kafka_idempotent,
            client_id=f"geogit-internal-api-{settings.site_name}",
        ),
        Topics(settings.topic_prefix),
        batch_size=settings.relay_batch_size,
        poll_seconds=settings.relay_poll_seconds,
        max_backoff_seconds=settings.relay_max_backoff_seconds,
        publish_timeout_seconds=settings.relay_publish_timeout_seconds,
    )


def _lifespan(
    settings: InternalApiSettings,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        services = Services(
            settings=settings,
            sessions=make_sessionmaker(engine),
            storage=StorageClient(settings.storages, settings.storage_secret),
            outbox=Outbox(settings.site_name),
        )
        app.state.services = services
        relay = _relay(settings, services)
        if relay is not None:
            relay.start()
        try:
            yield
        finally:
            if relay is not None:
                await relay.stop()
            await services.storage.close()
            await engine.dispose()

    return lifespan


def create_app(settings: InternalApiSettings) -> FastAPI:
    settings.check_required_secrets()
    if settings.default_storage not in settings.storages:
        raise ValueError(
            f"GEOGIT_DEFAULT_STORAGE {settings.default_storage!r} is not in GEOGIT_STORAGES"
        )
    app = FastAPI(
        title="geogit internal API",
        version="0.1.0",
        openapi_url="/api/v4/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan(settings),
    )
    for router in ROUTERS:
        app.include_router(router)
    install_error_handlers(app)
    # add_middleware wraps: the last added is the outermost.
    app.add_middleware(EncodedPathSegments)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        max_internal_bytes=settings.max_internal_body_bytes,
    )
    app.add_middleware(RequestContext)
    return app
