"""`geogit dev stop|start|restart COMPONENT`: one part of a running dev stack, for drills.

A component is `kafka`, `postgresql` (the stack's throwaway cluster), or `<site>/<service>`
(`secondary-1/replicator`, `primary/edge-proxy`). Each is stopped gracefully (SIGTERM, then
the supervisor's grace; PostgreSQL's fast shutdown) and started again exactly as `geogit dev
up` started it: the same command line, environment and ports, rebuilt from `.run/stack.json`
and the stack's stored secrets, never from the shell's environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from geogit.devstack import kafka
from geogit.devstack.credentials import CredentialStore
from geogit.devstack.ports import SitePorts
from geogit.devstack.postgres import ThrowawayPostgres
from geogit.devstack.processes import StopResult, Supervisor
from geogit.devstack.site import Role, Site
from geogit.devstack.stack import Stack

KAFKA = "kafka"
POSTGRESQL = "postgresql"


class ComponentError(RuntimeError):
    """No such component, or one the dev stack does not own."""


@dataclass(frozen=True)
class Component:
    """How to stop and start one component; `stop` says what it did."""

    name: str
    stop: Callable[[], str]
    start: Callable[[], None]


def stack_sites(stack: Stack, supervisor: Supervisor, store: CredentialStore) -> list[Site]:
    """The stack's sites as `up` built them: ports by position, secrets from the store, the
    database and broker the stack file recorded."""
    primary_url = stack.sites[0].http_url if stack.sites else ""
    return [
        Site(
            name=site.name,
            role=cast(Role, site.role),
            base_dir=supervisor.run_dir,
            ports=SitePorts(**site.ports) if site.ports else SitePorts.fixed(index),
            database_url=site.database_url,
            kafka_bootstrap=stack.kafka_bootstrap,
            secrets=store.site(site.name),
            supervisor=supervisor,
            primary_url="" if site.role == "primary" else primary_url,
        )
        for index, site in enumerate(stack.sites)
    ]


def _stopped(result: StopResult) -> str:
    if result.outcome == "not running":
        return f"{result.name}: was not running"
    detail = f": {result.detail}" if result.detail else ""
    return f"{result.name} (pid {result.pid}): {result.outcome}{detail}"


def _site_service(site: Site, service: str) -> Component:
    process = site.process_name(service)
    return Component(
        f"{site.name}/{service}",
        stop=lambda: _stopped(site.supervisor.stop(process)),
        start=lambda: site.start_service(service),
    )


def component_names(sites: list[Site]) -> list[str]:
    return [KAFKA, POSTGRESQL] + [
        f"{site.name}/{service}" for site in sites for service in site.services
    ]


def resolve(
    name: str,
    stack: Stack,
    sites: list[Site],
    supervisor: Supervisor,
    postgres: ThrowawayPostgres | None,
) -> Component:
    """The component called `name`; `postgres` is None when the stack uses an external server."""
    if name == KAFKA:
        host, _, port = stack.kafka_bootstrap.rpartition(":")

        def start_kafka() -> None:
            kafka.start_kafka(supervisor, int(port), host)

        return Component(
            name, stop=lambda: _stopped(supervisor.stop(kafka.PROCESS_NAME)), start=start_kafka
        )
    if name == POSTGRESQL:
        if postgres is None:
            raise ComponentError(
                "the stack's databases are on GEOGIT_DATABASE_URL's server, not a cluster of"
                " the dev stack's own; stop and start that server yourself"
            )
        cluster = postgres
        return Component(
            name,
            stop=lambda: f"postgresql: {'stopped' if cluster.stop() else 'was not running'}",
            start=cluster.start,
        )
    site_name, _, service = name.partition("/")
    site = next((s for s in sites if s.name == site_name and service in s.services), None)
    if site is not None:
        return _site_service(site, service)
    known = ", ".join(component_names(sites))
    raise ComponentError(f"no component {name!r}; the stack has: {known}")
