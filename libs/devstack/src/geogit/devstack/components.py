"""`geogit dev stop|start|restart COMPONENT`: one part of a running dev stack, for drills.

A component is `kafka`, `postgresql` (the stack's throwaway cluster), or `<site>/<service>`
(`secondary-1/replicator`, `primary/edge-proxy`); a bare site name (`primary`) stands for all
of that site's services, stopped last started first and started in start order (those not
running, so `start` completes a site that lost one). Each is stopped gracefully (SIGTERM, then
the supervisor's grace; PostgreSQL's fast shutdown), or with `kill` at once (SIGKILL;
PostgreSQL's immediate shutdown), as a crash would for an unplanned-failover drill. Each is
started again exactly as `geogit dev up` started it: the same command line, environment and
ports, rebuilt from `.run/stack.json` and the stack's stored secrets, never from the shell's
environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from geogit.devstack import kafka
from geogit.devstack.credentials import CredentialStore
from geogit.devstack.ports import ReplicaPorts, SitePorts
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
    """How to stop (`kill`: at once) and start one component; each says what it did."""

    name: str
    stop: Callable[[bool], str]
    start: Callable[[], str]


def stack_sites(stack: Stack, supervisor: Supervisor, store: CredentialStore) -> list[Site]:
    """The stack's sites as `up` built them: ports by position, secrets from the store, the
    database and broker the stack file recorded, and the roles it recorded last (a promotion
    rewrites them), so the primary's URL is that of whichever site is primary now."""
    primary = next((site for site in stack.sites if site.role == "primary"), None)
    primary_url = primary.http_url if primary else ""
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
            replica_ports=[ReplicaPorts(**ports) for ports in site.replica_ports or []],
        )
        for index, site in enumerate(stack.sites)
    ]


def _stopped(result: StopResult) -> str:
    if result.outcome == "not running":
        return f"{result.name}: was not running"
    detail = f": {result.detail}" if result.detail else ""
    return f"{result.name} (pid {result.pid}): {result.outcome}{detail}"


def _site_service(site: Site, service: str, whole_site: bool = False) -> Component:
    """One service; as part of a whole site, `start` passes over it while it runs."""
    name = f"{site.name}/{service}"
    process = site.process_name(service)

    def start() -> str:
        record = site.supervisor.record(process)
        if whole_site and record is not None and record.is_running():
            return f"{name}: already running (pid {record.pid})"
        site.start_service(service)
        return f"{name}: started"

    return Component(
        name, stop=lambda kill: _stopped(site.supervisor.stop(process, kill)), start=start
    )


def component_names(sites: list[Site]) -> list[str]:
    return [KAFKA, POSTGRESQL] + [
        name
        for site in sites
        for name in (site.name, *(f"{site.name}/{service}" for service in site.services))
    ]


def _kafka(stack: Stack, supervisor: Supervisor) -> Component:
    host, _, port = stack.kafka_bootstrap.rpartition(":")

    def start() -> str:
        kafka.start_kafka(supervisor, int(port), host)
        return f"{KAFKA}: started"

    return Component(
        KAFKA, stop=lambda kill: _stopped(supervisor.stop(kafka.PROCESS_NAME, kill)), start=start
    )


def _postgresql(cluster: ThrowawayPostgres) -> Component:
    def stop(kill: bool) -> str:
        if not cluster.stop(immediate=kill):
            return f"{POSTGRESQL}: was not running"
        return f"{POSTGRESQL}: {'killed' if kill else 'stopped'}"

    def start() -> str:
        cluster.start()
        return f"{POSTGRESQL}: started"

    return Component(POSTGRESQL, stop=stop, start=start)


def resolve(
    name: str,
    stack: Stack,
    sites: list[Site],
    supervisor: Supervisor,
    postgres: ThrowawayPostgres | None,
) -> list[Component]:
    """The components `name` stands for, in start order: one, or every service of a site.
    `postgres` is None when the stack uses an external server."""
    if name == KAFKA:
        return [_kafka(stack, supervisor)]
    if name == POSTGRESQL:
        if postgres is None:
            raise ComponentError(
                "the stack's databases are on GEOGIT_DATABASE_URL's server, not a cluster of"
                " the dev stack's own; stop and start that server yourself"
            )
        return [_postgresql(postgres)]
    whole = next((s for s in sites if s.name == name), None)
    if whole is not None:
        return [_site_service(whole, service, whole_site=True) for service in whole.services]
    site_name, _, service = name.partition("/")
    site = next((s for s in sites if s.name == site_name and service in s.services), None)
    if site is not None:
        return [_site_service(site, service)]
    known = ", ".join(component_names(sites))
    raise ComponentError(f"no component {name!r}; the stack has: {known}")
