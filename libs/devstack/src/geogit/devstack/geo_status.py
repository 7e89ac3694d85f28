"""`geogit status`: each site's replication and role as an operator wants them on one screen.

Replication, per secondary: repositories synced / failed / verified (the primary's view, from
what the site's replicator reported on `geogit.replication`), the push-to-replica lag p50 and
p99 over the last hour, and the event feed: how many events behind the primary's event store
it is and when it last confirmed it was caught up (the site's own view, from its internal API).

Roles, per site, from its own `GET /api/v4/geo/site_state`: role, epoch, the last global
sequence it has, and for a secondary the gap to the primary's (the events a forced promotion
of it would lose right now, DESIGN §10), and whether it is in maintenance or fenced. A site
that does not answer is shown as unreachable; the rest of the screen still prints.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from geogit.common.geo_coordination import SiteStateOut
from geogit.common.tokens import API_REQUEST_HEADER, INTERNAL_API_AUDIENCE, issue_token
from geogit.devstack.api import AdminApi, ApiError
from geogit.devstack.credentials import CredentialStore
from geogit.devstack.site import Role
from geogit.devstack.site_roles import Answers, reported_roles, site_states
from geogit.devstack.stack import Stack, StackSite

HEADER = f"{'site':<14} {'role':<10} {'repositories':<28} {'lag p50/p99':<18} {'event feed'}"
ROLES_HEADER = (
    f"{'site':<14} {'role':<10} {'epoch':<6} {'last seq':<9} {'gap to primary':<15} {'state'}"
)


class StatusError(RuntimeError):
    pass


def _own_view(site: StackSite, store: CredentialStore) -> dict[str, Any]:
    token = issue_token(
        store.site(site.name).internal_api_secret, "geogit-status", INTERNAL_API_AUDIENCE
    )
    try:
        response = httpx.get(
            f"{site.internal_api_url}/api/v4/internal/geo/status",
            headers={API_REQUEST_HEADER: token},
            timeout=10,
            trust_env=False,
        )
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise StatusError(f"{site.name}: internal API: {exc}") from exc
    view: dict[str, Any] = response.json()
    return view


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _feed(own: dict[str, Any], head: int) -> str:
    behind = max(head - int(own["last_global_seq"]), 0)
    caught_up = own.get("caught_up_at")
    if caught_up is None:
        return f"{behind} events behind, never caught up"
    age = datetime.now(UTC) - datetime.fromisoformat(caught_up)
    state = "current" if own.get("fresh") else "STALE"
    return f"{behind} events behind, caught up {age.total_seconds():.1f} s ago ({state})"


def _replication(
    api: AdminApi, site: StackSite, registered: dict[str, Any], store: CredentialStore
) -> str:
    """A secondary's line: the primary's view of its replicas and its own view of its feed."""
    if site.name not in registered:
        return f"{site.name:<14} {'secondary':<10} not registered on the primary"
    try:
        seen = api.site_status(int(registered[site.name]["id"]))
        own = _own_view(site, store)
    except (ApiError, StatusError) as exc:
        return f"{site.name:<14} {'secondary':<10} unavailable: {exc}"
    repositories = (
        f"{seen['repositories_synced_count']}/{seen['repositories_count']} synced,"
        f" {seen['repositories_failed_count']} failed,"
        f" {seen['repositories_verified_count']} verified"
    )
    lag = f"{_ms(seen['replication_lag_p50_ms'])}/{_ms(seen['replication_lag_p99_ms'])}"
    return (
        f"{site.name:<14} {'secondary':<10} {repositories:<28} {lag:<18}"
        f" {_feed(own, int(seen['last_event_id']))}"
    )


def _primary(stack: Stack, roles: dict[str, Role]) -> StackSite | None:
    return next((site for site in stack.sites if roles[site.name] == "primary"), None)


def replication_lines(stack: Stack, store: CredentialStore, roles: dict[str, Role]) -> list[str]:
    primary = _primary(stack, roles)
    lines = [HEADER]
    if primary is None:
        return [*lines, "no site says it is primary (a promotion may be running)"]
    with AdminApi(primary.http_url, stack.admin.token) as api:
        try:
            registered = {site["name"]: site for site in api.sites()}
        except ApiError as exc:
            return [*lines, f"{primary.name:<14} {'primary':<10} unreachable: {exc}"]
        for site in stack.sites:
            if site is primary:
                lines.append(f"{site.name:<14} {'primary':<10} {'(owns every write)':<28}")
            else:
                lines.append(_replication(api, site, registered, store))
    return lines


def _site_notes(state: SiteStateOut) -> str:
    notes = []
    if (maintenance := state.maintenance) is not None:
        since = maintenance.since.isoformat() if maintenance.since else "an unknown time"
        notes.append(f"maintenance: failing over to {maintenance.target} since {since}")
    if state.fenced:
        notes.append(f"FENCED: writes refused, follows {state.primary_site or 'the new primary'}")
    return "; ".join(notes) or "-"


def _gap(state: SiteStateOut, primary: SiteStateOut | ApiError | None) -> str:
    if state.role == "primary":
        return "-"
    if not isinstance(primary, SiteStateOut):
        return "unknown"
    return f"{max(primary.last_global_seq - state.last_global_seq, 0)} events"


def role_lines(stack: Stack, answers: Answers, roles: dict[str, Role]) -> list[str]:
    primary_site = _primary(stack, roles)
    primary = answers[primary_site.name] if primary_site else None
    lines = [ROLES_HEADER]
    for site in stack.sites:
        state = answers[site.name]
        if isinstance(state, ApiError):
            lines.append(f"{site.name:<14} {'?':<10} unreachable: {state}")
            continue
        lines.append(
            f"{site.name:<14} {state.role:<10} {state.epoch:<6} {state.last_global_seq:<9}"
            f" {_gap(state, primary):<15} {_site_notes(state)}"
        )
    return lines


def site_lines(stack: Stack, store: CredentialStore) -> list[str]:
    answers = site_states(stack)
    roles = reported_roles(stack, answers)
    return [*replication_lines(stack, store, roles), "", *role_lines(stack, answers, roles)]


def print_status(stack: Stack, store: CredentialStore, say: Callable[[str], None]) -> None:
    for line in site_lines(stack, store):
        say(line)
