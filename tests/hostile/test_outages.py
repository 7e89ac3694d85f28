"""Outages degrade clearly and lose nothing (issue 9 item 8), through real processes.

The broker outage stops the sites' real Tansu broker while a push replicates: the secondary
still converges, its replicator's reports wait in the secondary's outbox, and once the broker
is back they reach the primary, in order.

The database outage stops a real PostgreSQL under a running site (its own throwaway cluster on
a free port, the dev stack's helper) and asks every front door what is wrong; the answers must
name the cause (503 "the site's database is unavailable", with Retry-After), change nothing,
and stop once the database is back, without restarting any service.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from e2e import Account, Api, clone_url, git
from geo_support import internal, primary_and_secondary, served_locally, wait_until

from geogit.common.internal_api import DATABASE_UNAVAILABLE
from geogit.common.net import free_port
from geogit.common.tansu import TansuBroker
from geogit.common.tokens import API_REQUEST_HEADER, INTERNAL_API_AUDIENCE, issue_token
from geogit.devstack.databases import ensure_database
from geogit.devstack.ports import SitePorts
from geogit.devstack.postgres import ThrowawayPostgres
from geogit.devstack.site import Site
from geogit.storage.testing import commit_all, make_work_tree

RETRY_AFTER = "5"


@dataclass
class OutageSite:
    postgres: ThrowawayPostgres
    site: Site
    api: Api
    owner: Account
    project: dict[str, object]
    ssh_env: dict[str, str]
    tree: Path


@pytest.fixture(scope="module")
def outage_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutageSite]:
    """A site on its own PostgreSQL, with an owner (token and SSH key) and a pushed project.

    Its own broker too: a site named `primary` on the session's broker would publish its
    events into the topics the session's primary uses, with colliding project ids.
    """
    # Outside pytest's private tmp tree: the cluster runs as an unprivileged user.
    cluster_dir = Path(tempfile.mkdtemp(prefix="geogit-outage-pg-"))
    postgres = ThrowawayPostgres(cluster_dir, port=free_port())
    postgres.start()
    base = tmp_path_factory.mktemp("outage")
    broker = TansuBroker()
    broker.start()
    try:
        database_url = postgres.url("geogit_outage")
        ensure_database(database_url)
        site = Site("primary", "primary", base, SitePorts.free(), database_url, broker.bootstrap)
        site.start()
        try:
            admin = site.bootstrap_admin("root", "root@example.com", uuid.uuid4().hex)
            api = Api(site.http_url, admin.token)
            owner = api.account()
            project = api.project(owner)
            ssh_env = _ssh_key(api, owner, base, site)
            tree = make_work_tree(base / "src", commits=2)
            git("push", "-q", clone_url(site.http_url, project, owner), "main", cwd=tree)
            yield OutageSite(postgres, site, api, owner, project, ssh_env, tree)
            api.http.close()
        finally:
            postgres.start()  # a clean stop needs the database for the drain
            site.stop()
    finally:
        broker.stop()
        postgres.stop()
        shutil.rmtree(cluster_dir, ignore_errors=True)


def _ssh_key(api: Api, owner: Account, base: Path, site: Site) -> dict[str, str]:
    key = base / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    api.call("POST", f"/users/{owner.id}/keys", json={"title": "laptop", "key": public})
    command = (
        f"ssh -i {key} -p {site.ports.ssh} -o StrictHostKeyChecking=no"
        " -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes -F /dev/null"
    )
    return {"GIT_SSH_COMMAND": command}


def _refs(outage: OutageSite) -> str:
    return git("ls-remote", clone_url(outage.site.http_url, outage.project, outage.owner)).stdout


# What a client may ask while the database is down, by front door. Each must answer 503 with
# the message and Retry-After.
API_ROUTES = [
    ("GET", "/api/v4/projects"),
    ("GET", "/api/v4/users?search=root"),
    ("GET", "/api/v4/user"),
    ("POST", "/api/v4/projects"),
]
_ALLOWED = {"action": "git-upload-pack", "protocol": "ssh", "key_id": 1, "project": "x/y"}
INTERNAL_ROUTES: list[tuple[str, str, dict[str, object] | None]] = [
    ("GET", "/api/v4/internal/authorized_keys?key=AAAA", None),
    ("POST", "/api/v4/internal/allowed", _ALLOWED),
    (
        "POST",
        "/api/v4/internal/git_http/authorize",
        {"project": "x/y", "service": "git-upload-pack"},
    ),
]
GIT_HTTP_INPUTS = ["info/refs", "clone", "push"]
GIT_SSH_INPUTS = ["clone", "push", "ls-remote"]


def _api_answers(outage: OutageSite) -> list[tuple[str, httpx.Response]]:
    headers = {"PRIVATE-TOKEN": outage.owner.token}
    with httpx.Client(base_url=outage.site.http_url, timeout=30, headers=headers) as client:
        return [
            (f"{method} {path}", client.request(method, path, json={"path": "during-outage"}))
            for method, path in API_ROUTES
        ]


def _internal_answers(outage: OutageSite) -> list[tuple[str, httpx.Response]]:
    token = issue_token(outage.site.secrets.internal_api_secret, "tests", INTERNAL_API_AUDIENCE)
    with httpx.Client(
        base_url=outage.site.internal_api_url, timeout=30, headers={API_REQUEST_HEADER: token}
    ) as client:
        return [
            (f"{method} {path}", client.request(method, path, json=body))
            for method, path, body in INTERNAL_ROUTES
        ]


def _git_http(outage: OutageSite, what: str, work: Path) -> subprocess.CompletedProcess[str]:
    url = clone_url(outage.site.http_url, outage.project, outage.owner)
    if what == "info/refs":
        return git("ls-remote", url, check=False)
    if what == "clone":
        return git("clone", "-q", url, str(work / "http-clone"), check=False)
    commit_all(outage.tree, f"pushed during the outage {uuid.uuid4().hex}")
    return git("push", "-q", url, "HEAD:main", cwd=outage.tree, check=False)


def _git_ssh(outage: OutageSite, what: str, work: Path) -> subprocess.CompletedProcess[str]:
    url = f"git@127.0.0.1:{outage.project['path_with_namespace']}.git"
    env = outage.ssh_env
    if what == "ls-remote":
        return git("ls-remote", url, check=False, env=env)
    if what == "clone":
        return git("clone", "-q", url, str(work / "ssh-clone"), check=False, env=env)
    commit_all(outage.tree, f"pushed during the outage {uuid.uuid4().hex}")
    return git("push", "-q", url, "HEAD:main", cwd=outage.tree, check=False, env=env)


def _assert_unavailable_json(what: str, response: httpx.Response) -> None:
    assert response.status_code == 503, (what, response.status_code, response.text)
    assert response.json() == {"message": DATABASE_UNAVAILABLE}, what
    assert response.headers.get("retry-after") == RETRY_AFTER, what


def test_database_outage_is_a_clear_503_everywhere_and_recovers(
    outage_site: OutageSite, tmp_path: Path
) -> None:
    outage = outage_site
    refs_before = _refs(outage)
    projects_before = outage.api.call("GET", "/projects")
    outage.postgres.stop()
    try:
        for what, response in _api_answers(outage) + _internal_answers(outage):
            _assert_unavailable_json(what, response)
        info_refs = httpx.get(
            f"{outage.site.http_url}/{outage.project['path_with_namespace']}.git/info/refs",
            params={"service": "git-upload-pack"},
            auth=(outage.owner.username, outage.owner.token),
            timeout=30,
        )
        assert info_refs.status_code == 503
        assert info_refs.text == f"{DATABASE_UNAVAILABLE}\n"
        assert info_refs.headers.get("retry-after") == RETRY_AFTER
        for what in GIT_HTTP_INPUTS:
            result = _git_http(outage, what, tmp_path)
            assert result.returncode != 0, what
            assert f"remote: {DATABASE_UNAVAILABLE}" in result.stderr, (what, result.stderr)
            assert "503" in result.stderr, (what, result.stderr)
        for what in GIT_SSH_INPUTS:
            result = _git_ssh(outage, what, tmp_path)
            assert result.returncode != 0, what
            assert f"geogit: {DATABASE_UNAVAILABLE}" in result.stderr, (what, result.stderr)
            assert "Permission denied" not in result.stderr, (what, result.stderr)
    finally:
        outage.postgres.start()
    # Back without restarting anything: the pools reconnect on their own.
    wait_until(
        lambda: internal(outage.site, "/authorized_keys", key="AAAA").status_code == 404,
        what="the internal API to reach its database again",
    )
    assert _refs(outage) == refs_before
    assert outage.api.call("GET", "/projects") == projects_before
    git(
        "clone",
        "-q",
        clone_url(outage.site.http_url, outage.project, outage.owner),
        str(tmp_path / "after"),
    )
    ssh_url = f"git@127.0.0.1:{outage.project['path_with_namespace']}.git"
    git("push", "-q", ssh_url, "HEAD:main", cwd=outage.tree, env=outage.ssh_env)
    assert _refs(outage) != refs_before


# Broker outage ---------------------------------------------------------------------------------

REPORT_TYPES = ["ReplicaSynced", "ReplicaVerified"]


def _rows(database_url: str, query: str, *args: object) -> list[dict[str, Any]]:
    async def fetch() -> list[dict[str, Any]]:
        connection = await asyncpg.connect(database_url.replace("+asyncpg", "", 1))
        try:
            return [dict(row) for row in await connection.fetch(query, *args)]
        finally:
            await connection.close()

    return asyncio.run(fetch())


def _reports(secondary: Site, project_id: int) -> list[dict[str, Any]]:
    """The secondary's own report outbox rows for the project's replication reports, in order."""
    return _rows(
        secondary.database_url,
        "SELECT id, type, sent_at FROM report_outbox WHERE stream = 'replication'"
        " AND aggregate_id = $1 ORDER BY id",
        f"{secondary.name}:{project_id}",
    )


def _status_on_primary(primary: Site, secondary: Site, project_id: int) -> dict[str, Any] | None:
    rows = _rows(
        primary.database_url,
        "SELECT state, seq, verified FROM replication_status WHERE site = $1 AND project_id = $2",
        secondary.name,
        project_id,
    )
    return rows[0] if rows else None


def _seq(primary: Site, project_id: int) -> int:
    """The project's repository sequence on the primary (its replicables are a secondary's)."""
    token = issue_token(primary.secrets.internal_api_secret, "tests", INTERNAL_API_AUDIENCE)
    response = httpx.get(
        f"{primary.internal_api_url}/api/v4/geo/projects/{project_id}/repository",
        headers={API_REQUEST_HEADER: token},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    seq: int = response.json()["seq"]
    return seq


@pytest.fixture(scope="module")
def geo_broker() -> Iterator[TansuBroker]:
    with TansuBroker() as broker:
        yield broker


@pytest.fixture(scope="module")
def geo_sites(
    tmp_path_factory: pytest.TempPathFactory, geo_broker: TansuBroker
) -> Iterator[tuple[Site, Site, Api]]:
    with primary_and_secondary(
        tmp_path_factory.mktemp("geo-outage"), geo_broker.bootstrap
    ) as sites:
        yield sites


def test_replication_reports_survive_a_broker_outage(
    geo_sites: tuple[Site, Site, Api], geo_broker: TansuBroker, tmp_path: Path
) -> None:
    primary, secondary, api = geo_sites
    owner = api.account()
    project = api.project(owner)
    tree = make_work_tree(tmp_path / "src", commits=1)
    url = clone_url(primary.http_url, project, owner)
    git("push", "-q", url, "main", cwd=tree)
    first_seq = _seq(primary, project["id"])
    wait_until(
        lambda: (
            (_status_on_primary(primary, secondary, project["id"]) or {}).get("seq") == first_seq
        ),
        what="the first sync reported to the primary",
    )
    before = len(_reports(secondary, project["id"]))

    geo_broker.stop()
    try:
        commit = commit_all(tree, "pushed while the broker is down")
        git("push", "-q", url, "main", cwd=tree)
        outage_seq = _seq(primary, project["id"])
        assert outage_seq > first_seq
        wait_until(
            lambda: served_locally(secondary, project, owner, commit),
            timeout=90,
            what="the secondary to converge without the broker",
        )
        wait_until(
            lambda: (
                [row["type"] for row in _reports(secondary, project["id"])[before:]] == REPORT_TYPES
            ),
            what="the reports of the sync in the secondary's outbox",
        )
        waiting = _reports(secondary, project["id"])[before:]
        assert [row["sent_at"] for row in waiting] == [None, None]
        assert _status_on_primary(primary, secondary, project["id"]) == {
            "state": "synced",
            "seq": first_seq,
            "verified": True,
        }
    finally:
        geo_broker.start()
    wait_until(
        lambda: (
            (_status_on_primary(primary, secondary, project["id"]) or {}).get("seq") == outage_seq
        ),
        timeout=90,
        what="the report of the sync made during the outage on the primary",
    )
    assert _status_on_primary(primary, secondary, project["id"]) == {
        "state": "synced",
        "seq": outage_seq,
        "verified": True,
    }
    sent = _reports(secondary, project["id"])
    assert [row["type"] for row in sent[before:]] == REPORT_TYPES  # once each, in order
    assert all(row["sent_at"] is not None for row in sent)
