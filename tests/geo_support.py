"""Helpers for the two-site tests: waiting for a secondary to converge, asking which route
served a Git request, and reading a site's own view through its internal API."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from e2e import Account, Api

from geogit.common.tokens import API_REQUEST_HEADER, INTERNAL_API_AUDIENCE, issue_token
from geogit.devstack.site import Site
from geogit.devstack.testing import running_sites


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


def ssh_env(
    api: Api, account: Account, work: Path, sites: list[Site], readers: list[Site]
) -> dict[Site, dict[str, str]]:
    """A new SSH key for `account`, known to `readers` (secondaries, through their read model)
    before this returns, and the git environment that uses it on each of `sites`."""
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    api.call("POST", f"/users/{account.id}/keys", json={"title": "laptop", "key": public})
    for site in readers:
        wait_until(
            lambda site=site: (
                internal(site, "/authorized_keys", key=public.split()[1]).status_code == 200
            ),
            what=f"the key on {site.name}",
        )
    return {
        site: {
            "GIT_SSH_COMMAND": (
                f"ssh -i {key} -p {site.ports.ssh} -o StrictHostKeyChecking=no"
                " -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes"
                " -F /dev/null"
            )
        }
        for site in sites
    }


@contextmanager
def primary_and_secondary(
    base_dir: Path,
    kafka_bootstrap: str,
    secondary_env: Mapping[str, str] | None = None,
    extra_shards: tuple[str, ...] = (),
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[tuple[Site, Site, Api]]:
    """A primary and one secondary (running_sites), and the API as the primary's admin."""
    own_env = {1: secondary_env} if secondary_env else None
    with running_sites(
        base_dir,
        kafka_bootstrap,
        extra_env=extra_env,
        secondary_env=own_env,
        extra_shards=extra_shards,
    ) as (
        primary,
        (secondary,),
        admin,
    ):
        api = Api(primary.http_url, admin.token)
        try:
            yield primary, secondary, api
        finally:
            api.http.close()
