"""Outages degrade clearly and lose nothing (issue 9 item 8), through real processes.

The database outage stops a real PostgreSQL under a running site (its own throwaway cluster
on a free port, the dev stack's helper) and asks every front door what is wrong; the answers
must name the cause (503 "the site's database is unavailable", with Retry-After), change
nothing, and stop once the database is back, without restarting any service.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from e2e import Account, Api, clone_url, git
from geo_support import internal, wait_until

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
def outage_site(
    tmp_path_factory: pytest.TempPathFactory, tansu: TansuBroker
) -> Iterator[OutageSite]:
    """A site on its own PostgreSQL, with an owner (token and SSH key) and a pushed project."""
    # Outside pytest's private tmp tree: the cluster runs as an unprivileged user.
    cluster_dir = Path(tempfile.mkdtemp(prefix="geogit-outage-pg-"))
    postgres = ThrowawayPostgres(cluster_dir, port=free_port())
    postgres.start()
    base = tmp_path_factory.mktemp("outage")
    try:
        database_url = postgres.url("geogit_outage")
        ensure_database(database_url)
        site = Site("primary", "primary", base, SitePorts.free(), database_url, tansu.bootstrap)
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
