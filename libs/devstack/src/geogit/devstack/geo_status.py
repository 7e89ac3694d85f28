"""`geogit status`: each site's replication as an operator wants it on one screen.

Per secondary: repositories synced / failed / verified (the primary's view, from what the
site's replicator reported on `geogit.replication`), the push-to-replica lag p50 and p99 over
the last hour, and the event feed: how many events behind the primary's event store it is and
when it last confirmed it was caught up (the site's own view, from its internal API).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from geogit.common.tokens import API_REQUEST_HEADER, INTERNAL_API_AUDIENCE, issue_token
from geogit.devstack.api import AdminApi, ApiError
from geogit.devstack.credentials import CredentialStore
from geogit.devstack.stack import Stack, StackSite

HEADER = f"{'site':<14} {'role':<10} {'repositories':<28} {'lag p50/p99':<18} {'event feed'}"


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


def site_lines(stack: Stack, store: CredentialStore) -> list[str]:
    lines = [HEADER]
    with AdminApi(stack.site("primary").http_url, stack.admin.token) as api:
        registered = {site["name"]: site for site in api.sites()}
        for site in stack.sites:
            if site.role == "primary":
                lines.append(f"{site.name:<14} {'primary':<10} {'(owns every write)':<28}")
                continue
            if site.name not in registered:
                lines.append(f"{site.name:<14} {'secondary':<10} not registered on the primary")
                continue
            seen = api.site_status(int(registered[site.name]["id"]))
            own = _own_view(site, store)
            repositories = (
                f"{seen['repositories_synced_count']}/{seen['repositories_count']} synced,"
                f" {seen['repositories_failed_count']} failed,"
                f" {seen['repositories_verified_count']} verified"
            )
            lag = f"{_ms(seen['replication_lag_p50_ms'])}/{_ms(seen['replication_lag_p99_ms'])}"
            lines.append(
                f"{site.name:<14} {'secondary':<10} {repositories:<28} {lag:<18}"
                f" {_feed(own, int(seen['last_event_id']))}"
            )
    return lines


def print_status(stack: Stack, store: CredentialStore, say: Callable[[str], None]) -> None:
    try:
        for line in site_lines(stack, store):
            say(line)
    except ApiError as exc:
        raise StatusError(str(exc)) from exc
