"""Shared by the hostile suite (tests/hostile/): two real sites, SSH access to both, and the
checks every hostile case ends with — every service still healthy, no row changed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from e2e import Account, Api
from geo_support import primary_and_secondary, ssh_env

from geogit.common.tansu import TansuBroker
from geogit.devstack.site import Site

# The tables a refused request could have touched, and the outbox of the events changes write.
TABLES = (
    "users",
    "personal_access_tokens",
    "ssh_keys",
    "projects",
    "members",
    "protected_branches",
    "outbox",
)
# A secondary's replicator appends its own replication reports to its outbox whenever a sync or
# a verification ends: background work, not a row any request changed.
_COUNTS = {table: f"SELECT count(*) FROM {table}" for table in TABLES} | {
    "outbox": "SELECT count(*) FROM outbox WHERE stream <> 'replication'"
}


@dataclass(frozen=True)
class GeoPair:
    primary: Site
    secondary: Site
    api: Api

    @property
    def sites(self) -> tuple[Site, Site]:
        return self.primary, self.secondary


@pytest.fixture(scope="module")
def geo_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GeoPair]:
    """A primary and a secondary, with a broker of the module's own."""
    with (
        TansuBroker() as broker,
        primary_and_secondary(tmp_path_factory.mktemp("hostile"), broker.bootstrap) as sites,
    ):
        yield GeoPair(*sites)


def unhealthy(*sites: Site) -> list[str]:
    """Services of `sites` that died or fail their readiness probe (empty when all is well)."""
    problems = []
    for site in sites:
        for service in site.services:
            record = site.supervisor.record(site.process_name(service))
            if record is None or not record.is_running():
                problems.append(f"{site.name} {service}: not running")
            elif record.probe is not None and not record.probe.check(timeout=5):
                problems.append(f"{site.name} {service}: not ready")
    return problems


def row_counts(site: Site) -> dict[str, int]:
    """Rows per table in the site's own database."""

    async def count() -> dict[str, int]:
        connection = await asyncpg.connect(site.database_url.replace("+asyncpg", ""))
        try:
            return {t: await connection.fetchval(query) for t, query in _COUNTS.items()}
        finally:
            await connection.close()

    return asyncio.run(count())


def ssh_account(pair: GeoPair, tmp_path: Path) -> tuple[Account, dict[Site, dict[str, str]]]:
    """An account with an SSH key both sites know, and the git environment for each site."""
    account = pair.api.account()
    return account, ssh_env(pair.api, account, tmp_path, list(pair.sites), [pair.secondary])
