"""Real sites for end-to-end tests: a fresh database and a `Site` on free ports in a tmp dir.

The tests use the machine's PostgreSQL (DESIGN §8: real components), by default
`postgresql+asyncpg://postgres@127.0.0.1:5432/postgres` with trust auth as the CI machine has
it; GEOGIT_TEST_DATABASE_URL points elsewhere. Each test gets its own database, dropped after.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from geogit.common.events import Topics
from geogit.devstack.credentials import UserCredentials
from geogit.devstack.databases import drop_database, ensure_database, with_database
from geogit.devstack.geo_sites import register_sites
from geogit.devstack.ports import ReplicaPorts, SitePorts
from geogit.devstack.site import Role, Site, together

# Short polls and intervals, so tests see a secondary converge in seconds, not minutes.
FAST_GEO = {
    "GEOGIT_EVENT_STORE_POLL_SECONDS": "1",
    "GEOGIT_FEED_HEARTBEAT_SECONDS": "0.5",
    "GEOGIT_GEO_POLL_SECONDS": "2",
    "GEOGIT_BACKFILL_INTERVAL_SECONDS": "5",
    "GEOGIT_RETRY_BASE_SECONDS": "0.5",
    "GEOGIT_RETRY_MAX_SECONDS": "5",
    "GEOGIT_KAFKA_SESSION_TIMEOUT_MS": "2000",
}

TEST_SERVER_VARIABLE = "GEOGIT_TEST_DATABASE_URL"
DEFAULT_TEST_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def server_url_for_tests() -> str:
    return os.environ.get(TEST_SERVER_VARIABLE) or DEFAULT_TEST_SERVER


@contextmanager
def fresh_database(prefix: str = "geogit_test") -> Iterator[str]:
    """A new, empty database on the test server for the duration of the block."""
    url = with_database(server_url_for_tests(), f"{prefix}_{uuid.uuid4().hex[:12]}")
    ensure_database(url)
    try:
        yield url
    finally:
        drop_database(url)


def free_replica_ports(replicas: int) -> list[ReplicaPorts]:
    """Ports for `replicas` replicas of a site's stateless services; none for one."""
    return [ReplicaPorts.free() for _ in range(replicas)] if replicas > 1 else []


def stack_topics() -> Topics:
    """Topics (and consumer groups) of one test stack: the tests of a session share a broker,
    and a replicator killed or left behind by one must not hold partitions in the next."""
    return Topics(prefix=f"geogit-{uuid.uuid4().hex[:8]}")


@contextmanager
def running_site(
    base_dir: Path,
    kafka_bootstrap: str,
    name: str = "primary",
    role: Role = "primary",
    admin: bool = True,
    replicas: int = 1,
) -> Iterator[tuple[Site, UserCredentials | None]]:
    """A started site on free ports with its own fresh database, and its admin if asked for;
    with `replicas` ≥ 2 its stateless services run that many times behind HAProxy.

    The admin is bootstrapped with the same CLI command the dev stack uses (`root`).
    """
    with fresh_database() as database_url:
        site = Site(
            name,
            role,
            base_dir,
            SitePorts.free(),
            database_url,
            kafka_bootstrap,
            replica_ports=free_replica_ports(replicas),
            topics=stack_topics(),
        )
        site.start()
        try:
            credentials = (
                site.bootstrap_admin("root", "root@example.com", uuid.uuid4().hex)
                if admin
                else None
            )
            yield site, credentials
        finally:
            site.stop()


@contextmanager
def running_sites(
    base_dir: Path,
    kafka_bootstrap: str,
    secondaries: int = 1,
    extra_env: Mapping[str, str] | None = None,
    secondary_env: Mapping[int, Mapping[str, str]] | None = None,
    extra_shards: tuple[str, ...] = (),
    replicas: int = 1,
) -> Iterator[tuple[Site, list[Site], UserCredentials]]:
    """A primary with its admin, and `secondaries` secondaries registered on it and started,
    each with its own fresh database (DESIGN §5: one database per site). `secondary_env[N]`
    adds settings for secondary N only (say, GEOGIT_GEO_PROXY_MODE=redirect); every site gets
    the storage shards `extra_shards` beside the default one. With `replicas` ≥ 2 every site
    runs that many edge proxies, SSH gateways and internal APIs behind HAProxy (site.py)."""
    env = {**FAST_GEO, **(extra_env or {})}
    own_env = secondary_env or {}
    topics = stack_topics()
    with ExitStack() as stack:
        primary_db = stack.enter_context(fresh_database())
        primary = Site(
            "primary",
            "primary",
            base_dir,
            SitePorts.free(),
            primary_db,
            kafka_bootstrap,
            extra_env=env,
            extra_shards=extra_shards,
            replica_ports=free_replica_ports(replicas),
            topics=topics,
        )
        primary.start()
        stack.callback(primary.stop)
        admin = primary.bootstrap_admin("root", "root@example.com", uuid.uuid4().hex)
        sites = [
            Site(
                f"secondary-{index}",
                "secondary",
                base_dir,
                SitePorts.free(),
                stack.enter_context(fresh_database()),
                kafka_bootstrap,
                extra_env={**env, **own_env.get(index, {})},
                primary_url=primary.http_url,
                extra_shards=extra_shards,
                replica_ports=free_replica_ports(replicas),
                topics=topics,
            )
            for index in range(1, secondaries + 1)
        ]
        register_sites(primary, admin.token, sites)
        for site in sites:
            stack.callback(site.stop)
        together([site.start for site in sites])
        yield primary, sites, admin
