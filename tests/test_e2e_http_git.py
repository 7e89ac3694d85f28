"""One site over HTTP, end to end: real processes, the real git client, the admin API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from e2e import Api, clone_url, git

from geogit.devstack.site import Site
from geogit.storage.testing import commit_all, make_work_tree

DEVELOPER, REPORTER, MAINTAINER = 30, 20, 40


@pytest.fixture
def pushed(api: Api, site: Site, work: Path):
    owner = api.account()
    project = api.project(owner)
    tree = make_work_tree(work / "src", commits=4)
    git("push", "-q", clone_url(site.http_url, project, owner), "main", cwd=tree)
    return owner, project, tree


@pytest.mark.parametrize("version", ["0", "2"])
def test_push_new_project_then_clone_it_back(pushed, site: Site, work: Path, version: str) -> None:
    owner, project, tree = pushed
    url = clone_url(site.http_url, project, owner)
    trace = work / "trace"
    git(
        "-c",
        f"protocol.version={version}",
        "clone",
        "-q",
        url,
        str(work / "c"),
        env={"GIT_TRACE_PACKET": str(trace)},
    )
    assert (
        git("rev-parse", "HEAD", cwd=work / "c").stdout == git("rev-parse", "HEAD", cwd=tree).stdout
    )
    assert ("version 2" in trace.read_text()) == (version == "2")


def test_shallow_and_partial_clones(pushed, site: Site, work: Path) -> None:
    owner, project, _ = pushed
    url = clone_url(site.http_url, project, owner)
    git("clone", "-q", "--depth", "1", url, str(work / "shallow"))
    assert git("rev-list", "--count", "HEAD", cwd=work / "shallow").stdout.strip() == "1"
    git("clone", "-q", "--filter=blob:none", url, str(work / "partial"))
    assert (work / "partial" / "file3.txt").read_text() == "content 3\n" * 4


def test_responses_say_who_served_them(pushed, site: Site) -> None:
    owner, project, _ = pushed
    response = httpx.get(
        f"{site.http_url}/{project['path_with_namespace']}.git/info/refs",
        params={"service": "git-upload-pack"},
        auth=(owner.username, owner.token),
    )
    assert response.status_code == 200
    assert response.headers["Geogit-Served-By"] == "primary"
    assert response.headers["Geogit-Route"] == "local"
    api_response = httpx.get(f"{site.http_url}/api/v4/user", headers={"PRIVATE-TOKEN": owner.token})
    assert api_response.json()["username"] == owner.username
    assert api_response.headers["Geogit-Served-By"] == "primary"


def test_anonymous_clone_of_public_project(api: Api, site: Site, work: Path) -> None:
    owner = api.account()
    project = api.project(owner, visibility="public")
    tree = make_work_tree(work / "src")
    git("push", "-q", clone_url(site.http_url, project, owner), "main", cwd=tree)
    git("clone", "-q", clone_url(site.http_url, project), str(work / "anon"))
    assert (work / "anon" / "file0.txt").exists()
    push = git("push", clone_url(site.http_url, project), "main", cwd=work / "anon", check=False)
    assert push.returncode != 0


def test_private_project_401_then_404_for_non_member(
    pushed, api: Api, site: Site, work: Path
) -> None:
    _, project, _ = pushed
    anonymous = git("clone", clone_url(site.http_url, project), str(work / "a"), check=False)
    assert anonymous.returncode != 0
    assert (
        "could not read Username" in anonymous.stderr or "Authentication failed" in anonymous.stderr
    )
    stranger = api.account()
    denied = git("clone", clone_url(site.http_url, project, stranger), str(work / "b"), check=False)
    assert denied.returncode != 0
    assert "not found" in denied.stderr.lower()


def test_reporter_can_clone_but_not_push(pushed, api: Api, site: Site, work: Path) -> None:
    _, project, _ = pushed
    reporter = api.account()
    api.member(project, reporter, REPORTER)
    url = clone_url(site.http_url, project, reporter)
    git("clone", "-q", url, str(work / "r"))
    commit_all(work / "r", "reporter change")
    push = git("push", url, "main", cwd=work / "r", check=False)
    assert push.returncode != 0
    assert "You are not allowed to push code to this project." in push.stderr


def test_protected_branch_rules(pushed, api: Api, site: Site, work: Path) -> None:
    owner, project, tree = pushed
    developer = api.account()
    api.member(project, developer, DEVELOPER)
    api.protect(project, "main", push_level=MAINTAINER)
    dev_url = clone_url(site.http_url, project, developer)
    git("clone", "-q", dev_url, str(work / "d"))
    commit_all(work / "d", "developer change")
    push = git("push", dev_url, "main", cwd=work / "d", check=False)
    assert push.returncode != 0
    assert "You are not allowed to push code to protected branches on this project." in push.stderr

    owner_url = clone_url(site.http_url, project, owner)
    git("reset", "-q", "--hard", "HEAD~1", cwd=tree)
    commit_all(tree, "rewrite")
    force = git("push", "--force", owner_url, "main", cwd=tree, check=False)
    assert force.returncode != 0
    assert "You are not allowed to force push code to a protected branch" in force.stderr

    delete = git("push", owner_url, ":main", cwd=tree, check=False)
    assert delete.returncode != 0
    assert "protected branch" in delete.stderr.lower()

    api.call("DELETE", f"/projects/{project['id']}/protected_branches/main")
    api.protect(project, "main", push_level=MAINTAINER, allow_force_push=True)
    git("push", "-q", "--force", owner_url, "main", cwd=tree)
    remote_head = git("ls-remote", owner_url, "refs/heads/main").stdout.split()[0]
    assert remote_head == git("rev-parse", "HEAD", cwd=tree).stdout.strip()
