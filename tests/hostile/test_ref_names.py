"""Pushes that would create ambiguous refs are refused, over HTTP and SSH, on both sites.

`refs/heads/HEAD`, `-x`, `@` and branches (or tags) named like an object id make later
commands ambiguous (`refname 'HEAD' is ambiguous`). The primary's pre-receive check refuses
them (a secondary relays every push to it), with a message saying which ref and why; refs stay
as they were and every service stays healthy. Deleting such a ref that already exists (made
before the check) is allowed, so it can be cleaned up.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from e2e import Account, clone_url, git
from hostile_support import GeoPair, geo_pair, row_counts, ssh_account, unhealthy

from geogit.common.paths import hashed_repository_path
from geogit.devstack.site import Site
from geogit.storage.testing import make_work_tree

__all__ = ["geo_pair"]  # the fixture

OID40 = "0123456789abcdef0123456789abcdef01234567"
OID64 = "ab" * 32
BAD_REFS = [
    "refs/heads/HEAD",
    "refs/heads/-x",
    "refs/heads/@",
    f"refs/heads/{OID40}",
    f"refs/heads/{OID64}",
    "refs/tags/HEAD",
    f"refs/tags/{OID40}",
]
WHY = {
    "HEAD": "the name 'HEAD' is reserved: git reads it as the current commit",
    "-x": "the name must not start with '-'",
    "@": "the name '@' is reserved: git reads it as the current commit",
    OID40: "the name looks like an object id: git would read it as a commit",
    OID64: "the name looks like an object id: git would read it as a commit",
}
TRANSPORTS = ["http", "ssh"]


@pytest.fixture(scope="module")
def pusher(geo_pair: GeoPair, tmp_path_factory: pytest.TempPathFactory) -> tuple[Account, Any]:
    return ssh_account(geo_pair, tmp_path_factory.mktemp("ssh"))


def _url(site: Site, transport: str, project: dict[str, Any], account: Account) -> str:
    if transport == "http":
        return clone_url(site.http_url, project, account)
    return f"ssh://git@127.0.0.1:{site.ports.ssh}/{project['path_with_namespace']}.git"


def _refs(pair: GeoPair, project: dict[str, Any], account: Account) -> str:
    return git("ls-remote", clone_url(pair.primary.http_url, project, account)).stdout


def _seeded(pair: GeoPair, account: Account, work: Path) -> tuple[dict[str, Any], Path]:
    project = pair.api.project(account)
    tree = make_work_tree(work)
    git("push", "-q", clone_url(pair.primary.http_url, project, account), "main", cwd=tree)
    return project, tree


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("through", ["primary", "secondary"])
def test_pushes_creating_ambiguous_refs_are_refused(
    geo_pair: GeoPair,
    pusher: tuple[Account, dict[Site, dict[str, str]]],
    tmp_path: Path,
    through: str,
    transport: str,
) -> None:
    account, envs = pusher
    site = geo_pair.primary if through == "primary" else geo_pair.secondary
    project, tree = _seeded(geo_pair, account, tmp_path / "tree")
    before, rows = _refs(geo_pair, project, account), row_counts(geo_pair.primary)
    url = _url(site, transport, project, account)
    for ref in BAD_REFS:
        pushed = git("push", url, f"main:{ref}", cwd=tree, env=envs[site], check=False)
        assert pushed.returncode != 0, (ref, pushed.stderr)
        name = ref.split("/", 2)[2]
        assert f"refusing to create {ref}: {WHY[name]}" in pushed.stderr, pushed.stderr
        assert _refs(geo_pair, project, account) == before, ref
    assert row_counts(geo_pair.primary) == rows
    assert unhealthy(*geo_pair.sites) == []


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("through", ["primary", "secondary"])
def test_existing_ambiguous_refs_can_be_deleted(
    geo_pair: GeoPair,
    pusher: tuple[Account, dict[Site, dict[str, str]]],
    tmp_path: Path,
    through: str,
    transport: str,
) -> None:
    account, envs = pusher
    site = geo_pair.primary if through == "primary" else geo_pair.secondary
    project, tree = _seeded(geo_pair, account, tmp_path / "tree")
    repository = geo_pair.primary.repositories_dir / hashed_repository_path(project["id"])
    tip = git("rev-parse", "HEAD", cwd=tree).stdout.strip()
    for ref in BAD_REFS:  # as a push made before the check would have left them
        subprocess.run(["git", "--git-dir", str(repository), "update-ref", ref, tip], check=True)
    url = _url(site, transport, project, account)
    for ref in BAD_REFS:
        deleted = git("push", url, f":{ref}", cwd=tree, env=envs[site], check=False)
        assert deleted.returncode == 0, (ref, deleted.stderr)
    remaining = _refs(geo_pair, project, account).split()
    assert [ref for ref in BAD_REFS if ref in remaining] == []
    assert "refs/heads/main" in remaining
    assert unhealthy(*geo_pair.sites) == []
