"""Helpers for the two-site tests: waiting for a secondary to converge, asking which route
served a Git request, and reading a site's own view through its internal API."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from e2e import Account

from geogit.common.tokens import API_REQUEST_HEADER, INTERNAL_API_AUDIENCE, issue_token
from geogit.devstack.site import Site


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or condition}")


def info_refs(site: Site, project: dict[str, Any], account: Account | None) -> httpx.Response:
    return httpx.get(
        f"{site.http_url}/{project['path_with_namespace']}.git/info/refs",
        params={"service": "git-upload-pack"},
        auth=(account.username, account.token) if account else None,
        timeout=30,
    )


def route(site: Site, project: dict[str, Any], account: Account | None) -> str:
    return info_refs(site, project, account).headers.get("Geogit-Route", "")


def served_locally(
    site: Site, project: dict[str, Any], account: Account | None, commit: str | None = None
) -> bool:
    """Served from the site's own replica — and, given `commit`, one that has it. A secondary
    may serve a replica until it hears of a newer push, so "local" alone does not say which."""
    response = info_refs(site, project, account)
    local = response.headers.get("Geogit-Route") == "local"
    return local and (commit is None or commit.encode() in response.content)


def internal(site: Site, path: str, **params: Any) -> httpx.Response:
    """A GET on the site's own internal API, as one of its services would ask."""
    token = issue_token(site.secrets.internal_api_secret, "tests", INTERNAL_API_AUDIENCE)
    return httpx.get(
        f"{site.internal_api_url}/api/v4/internal{path}",
        params=params,
        headers={API_REQUEST_HEADER: token},
        timeout=30,
    )


def registry(site: Site, project_id: int) -> dict[str, Any] | None:
    response = internal(site, f"/geo/replicables/{project_id}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    entry: dict[str, Any] | None = response.json()["registry"]
    return entry
