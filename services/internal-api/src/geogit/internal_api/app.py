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
from sqlalchemy.ext.asyncio import AsyncEngine

from geogit.common.events import Event, Topics
from geogit.common.geo import GeoSigner
from geogit.common.geo_routes import SITE_LOCAL_GEO
from geogit.common.kafka import KafkaConfig
from geogit.common.primary_client import PrimaryClient
from geogit.internal_api import health
from geogit.internal_api.admin import (
    geo_actions,
    geo_promotion,
    geo_sites,
    keys,
    members,
    project_transfer,
    projects,
    protected_branches,
    repository_storage_moves,
    tokens,
    users,
)
from geogit.internal_api.clients.sites import SitesClient
from geogit.internal_api.clients.storage import StorageClient
from geogit.internal_api.config import InternalApiSettings
from geogit.internal_api.db import SessionMaker, make_engine, make_sessionmaker
from geogit.internal_api.deps import GeoServices, Services
from geogit.internal_api.errors import ApiError, install_error_handlers
from geogit.internal_api.events.listener import listen_dsn
from geogit.internal_api.events.outbox import Outbox, ReportOutbox
from geogit.internal_api.events.relay import OutboxRelay
from geogit.internal_api.geo import follow
from geogit.internal_api.geo.auth import geo_gate
from geogit.internal_api.geo.event_feed import EventFeed
from geogit.internal_api.geo.peers import Peers
from geogit.internal_api.geo.promotion import Promotions
from geogit.internal_api.geo.replication_status import ReplicationStatusConsumer
from geogit.internal_api.geo.site_state import (
    Authority,
    Listener,
    SiteAuthority,
    maintenance_message,
)
from geogit.internal_api.internal import (
    allowed,
    authorized_keys,
    event_store,
    geo,
    geo_proxy,
    git_http,
    hooks,
    site_authority,
)
from geogit.internal_api.metrics import Metrics
from geogit.internal_api.middleware import (
    BodyLimit,
    EncodedPathSegments,
    RequestContext,
    UnexpectedErrors,
)
from geogit.internal_api.models import OutboxEvent, ReportOutboxEvent
from geogit.internal_api.repositories import placement
from geogit.internal_api.repositories.storage_moves import StorageMoves
from geogit.internal_api.status_page import routes as status_page_routes

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
    # Site-local Geo routes (DESIGN §10): other sites, and admins, on any role.
    site_authority.router,
    # Admin REST API (personal access tokens), GitLab v4 shapes.
    users.router,
    tokens.router,
    keys.router,
    projects.router,
    project_transfer.router,
    repository_storage_moves.router,
    members.router,
    protected_branches.router,
    geo_sites.router,
    geo_actions.router,
    geo_promotion.router,
    # The Geo status page (HTML; admin token or signed-in session).
    status_page_routes.router,
)


def _kafka(settings: InternalApiSettings) -> KafkaConfig | None:
    return settings.kafka(f"geogit-internal-api-{settings.site_name}")


class _Background:
    """What runs beside the request handlers, started and stopped as one. Every part runs on
    every role and follows the site's authority: the event feed applies the primary's events
    only while this site is a secondary, the relays publish whatever is unsent, and the
    replication reports are kept on any site (a promoted one has them already)."""

    def __init__(self, settings: InternalApiSettings, services: Services) -> None:
        kafka, topics = _kafka(settings), Topics(settings.topic_prefix)
        self._parts: list[
            OutboxRelay | EventFeed | ReplicationStatusConsumer | Peers | StorageMoves
        ] = [services.geo.feed, services.geo.peers, services.storage_moves]
        if kafka is not None:
            self._parts += [
                OutboxRelay(
                    services.sessions,
                    kafka,
                    topics,
                    table,
                    batch_size=settings.relay_batch_size,
                    poll_seconds=settings.relay_poll_seconds,
                    listen_dsn=listen_dsn(settings.database_url),
                    listen_poll_seconds=settings.relay_listen_poll_seconds,
                    max_backoff_seconds=settings.relay_max_backoff_seconds,
                    publish_timeout_seconds=settings.relay_publish_timeout_seconds,
                    metrics=services.metrics,
                )
                for table in (OutboxEvent, ReportOutboxEvent)
            ]
            self._parts.append(
                ReplicationStatusConsumer(services.sessions, kafka, topics, settings.site_name)
            )

    def start(self) -> None:
        for part in self._parts:
            part.start()

    async def stop(self) -> None:
        for part in reversed(self._parts):
            await part.stop()


def _geo(
    settings: InternalApiSettings,
    engine: AsyncEngine,
    sessions: SessionMaker,
    authority: SiteAuthority,
    primary: PrimaryClient,
    signer: GeoSigner,
    outbox: Outbox,
    metrics: Metrics,
) -> GeoServices:
    sites = SitesClient(lambda: signer.token("site"), settings.primary_timeout_seconds)
    peers = Peers(sessions, authority, sites, settings.geo_peer_check_seconds, lambda: feed.wake())

    async def on_new_epoch(event: Event) -> None:
        peers.check_soon()

    async def roll_back() -> None:
        resynced = await follow.roll_back(sessions, primary)
        if resynced is not None:
            metrics.follows.labels("rollback").inc()
            await authority.refresh()

    feed = EventFeed(
        sessions,
        primary,
        _kafka(settings),
        Topics(settings.topic_prefix),
        settings.site_name,
        authority,
        on_new_epoch=on_new_epoch,
        rollback=roll_back,
        poll_seconds=settings.event_store_poll_seconds,
        heartbeat_seconds=settings.feed_heartbeat_seconds,
        metrics=metrics,
    )
    promotions = Promotions(
        engine, sessions, settings.site_name, outbox, sites, feed.catch_up, authority.refresh
    )
    return GeoServices(feed=feed, peers=peers, promotions=promotions, sites=sites)


def _lifespan(
    settings: InternalApiSettings, metrics: Metrics
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            engine = make_engine(settings.database_url, settings.database_connect_timeout_seconds)
            stack.push_async_callback(engine.dispose)
            sessions = make_sessionmaker(engine)
            authority = SiteAuthority(sessions, settings)
            await authority.start()
            stack.push_async_callback(authority.stop)
            storage = StorageClient(settings.storages, settings.storage_secret)
            stack.push_async_callback(storage.close)
            geo_signer = GeoSigner(settings.geo_private_key, settings.site_name, authority.epoch)
            primary = PrimaryClient(
                authority.current.primary_url, geo_signer, settings.primary_timeout_seconds
            )
            stack.push_async_callback(primary.aclose)
            authority.listen(_retarget(primary))
            outbox = Outbox(settings.site_name)
            geo = _geo(settings, engine, sessions, authority, primary, geo_signer, outbox, metrics)
            stack.push_async_callback(geo.sites.aclose)
            services = Services(
                settings=settings,
                sessions=sessions,
                storage=storage,
                outbox=outbox,
                reports=ReportOutbox(settings.site_name),
                metrics=metrics,
                authority=authority,
                geo_signer=geo_signer,
                primary=primary,
                geo=geo,
                storage_moves=StorageMoves(
                    engine,
                    sessions,
                    storage,
                    outbox,
                    settings,
                    lambda: authority.current.is_primary,
                ),
            )
            app.state.services = services
            if authority.loaded and authority.current.is_primary:
                # A primary that was away may have been replaced: it asks before its first write.
                await geo.peers.check_once()
            background = _Background(settings, services)
            background.start()
            stack.push_async_callback(background.stop)
            yield

    return lifespan


def _retarget(primary: PrimaryClient) -> Listener:
    async def follow_primary(before: Authority, now: Authority) -> None:
        if now.primary_url != before.primary_url:
            primary.retarget(now.primary_url)

    return follow_primary


_READS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _writes_allowed(request: Request) -> None:
    """A secondary's tables follow the primary's events; a write here would fork them. A
    primary failing over refuses writes until the new primary takes them."""
    path = request.url.path
    if request.method in _READS or not path.startswith("/api/v4/") or _exempt(path):
        return
    authority: Authority = request.app.state.services.authority.current
    if authority.is_secondary:
        primary = authority.primary_site or "the primary"
        raise ApiError(
            403,
            f"403 Forbidden - this is a read-only Geo secondary; write through the primary"
            f" ({primary})",
        )
    if authority.in_maintenance:
        raise ApiError(
            503, f"503 Service Unavailable - {maintenance_message(authority.maintenance_target)}"
        )


def _exempt(path: str) -> bool:
    """The internal API, and the Geo coordination a site answers on any role."""
    return path.startswith("/api/v4/internal/") or SITE_LOCAL_GEO.match(path) is not None


def create_app(settings: InternalApiSettings) -> FastAPI:
    settings.check_required_secrets()
    if settings.default_storage not in settings.storages:
        raise ValueError(
            f"GEOGIT_DEFAULT_STORAGE {settings.default_storage!r} is not in GEOGIT_STORAGES"
        )
    placement.check_weights(settings.storage_weights, settings.storages)
    metrics = Metrics()
    app = FastAPI(
        title="geogit internal API",
        version="0.1.0",
        openapi_url="/api/v4/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan(settings, metrics),
        dependencies=[Depends(geo_gate), Depends(_writes_allowed)],
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
