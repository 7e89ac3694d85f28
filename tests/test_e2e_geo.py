"""Two sites end to end (DESIGN §3.2, §4, §5): real processes, real git over HTTP, a broker of
the module's own (one test restarts it), each site with its own database."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from e2e import Account, Api, clone_url, git
from geo_support import info_refs, internal, registry, route, served_locally, wait_until

from geogit.common.geo import BOOTSTRAP_EPOCH, GEO_TOKEN_HEADER, GeoSigner, generate_site_key
from geogit.common.paths import hashed_repository_path
from geogit.common.tansu import TansuBroker
from geogit.devstack.site import Site
from geogit.devstack.testing import running_sites
from geogit.storage.testing import (
    commit_all,
    make_dotgit_commit,
    make_quirky_history,
    make_work_tree,
)

DEVELOPER, MAINTAINER = 30, 40
ROUNDS = 50


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as tansu:
        yield tansu


@pytest.fixture(scope="module")
def sites(
    tmp_path_factory: pytest.TempPathFactory, broker: TansuBroker
) -> Iterator[tuple[Site, Site, Site, Api]]:
    redirect = {2: {"GEOGIT_GEO_PROXY_MODE": "redirect"}}
    with running_sites(
        tmp_path_factory.mktemp("geo"), broker.bootstrap, secondaries=2, secondary_env=redirect
    ) as (primary, (secondary, redirecting), admin):
        api = Api(primary.http_url, admin.token)
        yield primary, secondary, redirecting, api
        api.http.close()


@pytest.fixture
def primary(sites: tuple[Site, Site, Site, Api]) -> Site:
    return sites[0]


@pytest.fixture
def secondary(sites: tuple[Site, Site, Site, Api]) -> Site:
    return sites[1]


@pytest.fixture
def api(sites: tuple[Site, Site, Site, Api]) -> Api:
    return sites[3]


def pushed_project(
    api: Api, primary: Site, work: Path, commits: int = 3
) -> tuple[Account, dict[str, Any], Path]:
    owner = api.account()
    project = api.project(owner)
    tree = make_work_tree(work, commits=commits)
    git("push", "-q", clone_url(primary.http_url, project, owner), "main", cwd=tree)
    return owner, project, tree


def head(tree: Path) -> str:
    return git("rev-parse", "HEAD", cwd=tree).stdout.strip()


def remote_head(url: str, ref: str = "refs/heads/main") -> str:
    return git("ls-remote", url, ref).stdout.split()[0]


def test_pushed_project_is_proxied_then_served_locally(
    api: Api, primary: Site, secondary: Site, tmp_path: Path
) -> None:
    owner, project, tree = pushed_project(api, primary, tmp_path / "src")
    wait_until(lambda: served_locally(secondary, project, owner, head(tree)), what="a replica")

    # The site has heard of a push its replica does not have yet: it must proxy, correctly.
    secondary.supervisor.stop(secondary.process_name("replicator"))
    try:
        commit_all(tree, "not replicated yet")
        git("push", "-q", clone_url(primary.http_url, project, owner), "main", cwd=tree)
        wait_until(
            lambda: internal(secondary, f"/geo/replicables/{project['id']}").json()["seq"] == 3,
            what="the secondary to hear of the push",
        )
        assert route(secondary, project, owner) == "proxy"
        git("clone", "-q", clone_url(secondary.http_url, project, owner), str(tmp_path / "early"))
        assert head(tmp_path / "early") == head(tree)
    finally:
        secondary.start_replicator()

    wait_until(lambda: served_locally(secondary, project, owner, head(tree)), what="the replica")
    url = clone_url(secondary.http_url, project, owner)
    for version in ("0", "2"):
        target = tmp_path / f"local-v{version}"
        git("-c", f"protocol.version={version}", "clone", "-q", url, str(target))
        assert head(target) == head(tree)
    git("clone", "-q", "--depth", "1", url, str(tmp_path / "shallow"))
    assert head(tmp_path / "shallow") == head(tree)
    git("clone", "-q", "--filter=blob:none", url, str(tmp_path / "partial"))
    assert head(tmp_path / "partial") == head(tree)
    assert route(secondary, project, owner) == "local"
    assert route(primary, project, owner) == "local"
    entry = registry(secondary, project["id"])
    assert entry is not None and entry["state"] == "synced" and entry["synced_seq"] == 3
    assert entry["verification_state"] == "verified"


def test_pushes_through_the_secondary_are_never_read_stale(
    api: Api, primary: Site, secondary: Site, tmp_path: Path
) -> None:
    owner, project, tree = pushed_project(api, primary, tmp_path / "src")
    via_secondary = clone_url(secondary.http_url, project, owner)
    wait_until(
        lambda: served_locally(secondary, project, owner, head(tree)), what="a local replica"
    )
    git("remote", "add", "secondary", via_secondary, cwd=tree)
    reader = tmp_path / "reader"
    git("clone", "-q", via_secondary, str(reader))
    routes: set[str] = set()
    for round_ in range(ROUNDS):
        (tree / "round.txt").write_text(f"round {round_}\n")
        commit_all(tree, f"round {round_}")
        git("push", "-q", "secondary", "main", cwd=tree)
        pushed = head(tree)
        if round_ % 2:
            assert remote_head(via_secondary) == pushed, f"stale read in round {round_}"
        else:
            git("fetch", "-q", "origin", cwd=reader)
            fetched = git("rev-parse", "origin/main", cwd=reader).stdout.strip()
            assert fetched == pushed, f"stale fetch in round {round_}"
        routes.add(route(secondary, project, owner))
    # The push went to the primary, and it replicated back.
    assert remote_head(clone_url(primary.http_url, project, owner)) == head(tree)
    wait_until(
        lambda: served_locally(secondary, project, owner, head(tree)),
        what="the replica catching up",
    )
    assert "proxy" in routes or "local" in routes


def test_refusals_reach_the_client_through_the_proxy(
    api: Api, primary: Site, secondary: Site, tmp_path: Path
) -> None:
    owner, project, tree = pushed_project(api, primary, tmp_path / "src")
    developer = api.account()
    api.member(project, developer, DEVELOPER)
    api.protect(project, "main", MAINTAINER)
    wait_until(
        lambda: served_locally(secondary, project, owner, head(tree)), what="a local replica"
    )

    work = tmp_path / "dev"
    git("clone", "-q", clone_url(secondary.http_url, project, developer), str(work))
    commit_all(work, "not allowed")
    refused = git("push", "origin", "main", cwd=work, check=False)
    assert refused.returncode != 0
    assert "You are not allowed to push code to protected branches" in refused.stderr

    outsider = api.account()
    denied = git(
        "clone", clone_url(secondary.http_url, project, outsider), str(tmp_path / "o"), check=False
    )
    assert denied.returncode != 0
    assert "could not be found" in denied.stderr or "not found" in denied.stderr.lower()
    anonymous = git(
        "clone", clone_url(secondary.http_url, project), str(tmp_path / "a"), check=False
    )
    assert anonymous.returncode != 0
    assert "Authentication failed" in anonymous.stderr or "could not read" in anonymous.stderr


def test_redirect_mode_sends_git_to_the_primary_through_the_prefix(
    sites: tuple[Site, Site, Site, Api], tmp_path: Path
) -> None:
    primary, _, redirecting, api = sites
    owner, project, tree = pushed_project(api, primary, tmp_path / "src")
    url = clone_url(redirecting.http_url, project, owner)
    response = httpx.get(
        f"{redirecting.http_url}/{project['path_with_namespace']}.git/info/refs",
        params={"service": "git-receive-pack"},
        auth=(owner.username, owner.token),
    )
    assert response.status_code == 302
    assert response.headers["location"].startswith("/-/from_secondary/")
    commit_all(tree, "through the redirect")
    git("push", "-q", url, "main", cwd=tree)
    assert remote_head(clone_url(primary.http_url, project, owner)) == head(tree)
    git("clone", "-q", url, str(tmp_path / "c"))
    assert head(tmp_path / "c") == head(tree)


def test_admin_api_on_a_secondary_is_the_primarys(api: Api, primary: Site, secondary: Site) -> None:
    owner = api.account()
    through_secondary = Api(secondary.http_url, owner.token)
    created = through_secondary.call("POST", "/projects", json={"path": "made-via-secondary"})
    response = httpx.get(
        f"{primary.http_url}/api/v4/projects/{created['id']}",
        headers={"PRIVATE-TOKEN": owner.token},
    )
    assert response.status_code == 200
    assert (
        httpx.get(
            f"{secondary.http_url}/api/v4/user", headers={"PRIVATE-TOKEN": owner.token}
        ).headers["Geogit-Route"]
        == "proxy"
    )
    through_secondary.http.close()


def _geo_token(key: str, site: str, algorithm: str = "EdDSA", **claims: Any) -> str:
    """A token shaped like a site's, signed with `key` (a PEM private key, or an HMAC secret)."""
    now = int(time.time())
    payload = {
        "site": site,
        "scope": "proxy",
        "epoch": BOOTSTRAP_EPOCH,
        "iss": f"geogit-site/{site}",
        "aud": "geogit-geo",
        "iat": now,
        "exp": now + 30,
        **claims,
    }
    return jwt.encode(payload, key, algorithm=algorithm)


def _signer(site: Site) -> GeoSigner:
    return GeoSigner(site.secrets.geo_private_key, site.name, lambda: BOOTSTRAP_EPOCH)


def test_forged_expired_and_foreign_geo_tokens_are_refused(
    sites: tuple[Site, Site, Site, Api], tmp_path: Path
) -> None:
    primary, secondary, other, api = sites
    owner, project, _ = pushed_project(api, primary, tmp_path / "src")
    now = int(time.time())
    key = secondary.secrets.geo_private_key
    # (the reason the primary gives, the token)
    tokens = [
        ("token signature invalid", _geo_token(generate_site_key()[0], secondary.name)),
        (
            "token algorithm 'HS256' not accepted",
            _geo_token("x" * 40, secondary.name, algorithm="HS256"),
        ),
        ("token expired", _geo_token(key, secondary.name, iat=now - 120, exp=now - 90)),
        ("token missing claim 'epoch'", _geo_token(key, secondary.name, epoch=None)),
        # The secondary's key, naming the other secondary: verified with the other's key.
        ("token signature invalid", _geo_token(key, other.name)),
        ("site 'nowhere' is not registered", _geo_token(key, "nowhere")),
        (
            f"site {primary.name!r} is this site",
            _geo_token(primary.secrets.geo_private_key, primary.name),
        ),
    ]
    git_url = f"{primary.http_url}/{project['path_with_namespace']}.git/info/refs"
    for why, token in tokens:
        headers = {GEO_TOKEN_HEADER: token}
        response = httpx.get(
            git_url,
            params={"service": "git-upload-pack"},
            headers=headers,
            auth=(owner.username, owner.token),
        )
        assert response.status_code == 403, (why, response.text)
        assert "Geo token refused" in response.text and why in response.text, response.text
        api_answer = httpx.get(
            f"{primary.http_url}/api/v4/user", headers={**headers, "PRIVATE-TOKEN": owner.token}
        )
        assert api_answer.status_code == 403, (why, api_answer.text)

    # A site the primary disabled is refused at once, whatever tokens it still holds.
    other_id = next(s["id"] for s in api.call("GET", "/geo/sites") if s["name"] == other.name)
    api.call("PUT", f"/geo/sites/{other_id}", json={"enabled": False})
    try:
        revoked = _signer(other).token("replication")
        refused = httpx.get(
            git_url, params={"service": "git-upload-pack"}, headers={GEO_TOKEN_HEADER: revoked}
        )
        assert refused.status_code == 403 and "disabled" in refused.text
    finally:
        api.call("PUT", f"/geo/sites/{other_id}", json={"enabled": True})

    # A real replication token fetches a private project it has no user for, and pushes nothing.
    good = _signer(secondary).token("replication")
    allowed = httpx.get(
        git_url, params={"service": "git-upload-pack"}, headers={GEO_TOKEN_HEADER: good}
    )
    assert allowed.status_code == 200
    push = httpx.get(
        git_url, params={"service": "git-receive-pack"}, headers={GEO_TOKEN_HEADER: good}
    )
    assert push.status_code == 403


def test_killed_replicator_leaves_no_corrupt_replica(
    api: Api, primary: Site, secondary: Site, tmp_path: Path
) -> None:
    owner, project, tree = pushed_project(api, primary, tmp_path / "src")
    wait_until(lambda: served_locally(secondary, project, owner, head(tree)), what="a replica")
    with (tree / "big.bin").open("wb") as blob:
        blob.write(os.urandom(60 * 1024 * 1024))
    commit_all(tree, "a big file")
    git("push", "-q", clone_url(primary.http_url, project, owner), "main", cwd=tree)

    record = secondary.supervisor.record(secondary.process_name("replicator"))
    assert record is not None
    wait_until(
        lambda: (registry(secondary, project["id"]) or {}).get("state") == "syncing",
        what="the sync to start",
    )
    os.kill(record.pid, signal.SIGKILL)
    replica = secondary.repositories_dir / hashed_repository_path(project["id"])
    fsck = subprocess.run(
        ["git", "fsck", "--no-progress"], cwd=replica, capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stderr

    secondary.supervisor.forget_dead()
    secondary.start_replicator()
    wait_until(
        lambda: served_locally(secondary, project, owner, head(tree)),
        what="convergence after restart",
    )
    git("clone", "-q", clone_url(secondary.http_url, project, owner), str(tmp_path / "after"))
    assert head(tmp_path / "after") == head(tree)
    assert (tmp_path / "after" / "big.bin").stat().st_size == 60 * 1024 * 1024


def test_unreachable_primary_keeps_local_reads_and_refuses_pushes(
    api: Api, primary: Site, secondary: Site, tmp_path: Path
) -> None:
    owner, project, tree = pushed_project(api, primary, tmp_path / "src")
    wait_until(
        lambda: served_locally(secondary, project, owner, head(tree)), what="a local replica"
    )
    primary.supervisor.stop(primary.process_name("edge-proxy"))
    try:
        url = clone_url(secondary.http_url, project, owner)
        git("clone", "-q", url, str(tmp_path / "c"))
        assert head(tmp_path / "c") == head(tree)
        commit_all(tmp_path / "c", "while the primary is away")
        refused = git("push", "origin", "main", cwd=tmp_path / "c", check=False)
        assert refused.returncode != 0
        assert "primary site is unreachable" in refused.stderr
    finally:
        primary.start_edge_proxy()


def test_broker_losing_its_data_costs_time_not_correctness(
    api: Api, primary: Site, secondary: Site, broker: TansuBroker, tmp_path: Path
) -> None:
    """Events published to a broker that then loses everything, while the secondary was not
    listening: it must find them in the event store — users, keys and repositories alike."""
    doomed_owner, doomed, doomed_tree = pushed_project(api, primary, tmp_path / "doomed")
    wait_until(
        lambda: served_locally(secondary, doomed, doomed_owner, head(doomed_tree)),
        what="a replica to delete",
    )

    secondary.supervisor.stop(secondary.process_name("internal-api"))
    secondary.supervisor.stop(secondary.process_name("replicator"))
    owner, project, tree = pushed_project(api, primary, tmp_path / "src")
    key = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "key")], check=True
    )
    assert key.returncode == 0
    public = (tmp_path / "key.pub").read_text().strip()
    api.call("POST", f"/users/{owner.id}/keys", json={"title": "laptop", "key": public})
    api.call("DELETE", f"/projects/{doomed['id']}")
    time.sleep(1.0)  # the relay has published all of it to the broker, which now loses it
    broker.stop()
    broker.start()

    secondary.start_internal_api()
    secondary.start_replicator()
    blob = base64.b64encode(base64.b64decode(public.split()[1])).decode()
    wait_until(
        lambda: internal(secondary, "/authorized_keys", key=blob).status_code == 200,
        what="the key in the secondary's read model",
    )
    assert internal(secondary, "/authorized_keys", key=blob).json()["username"] == owner.username
    wait_until(
        lambda: served_locally(secondary, project, owner, head(tree)),
        timeout=90,
        what="the replica",
    )
    git("clone", "-q", clone_url(secondary.http_url, project, owner), str(tmp_path / "c"))
    assert head(tmp_path / "c") == head(tree)
    replica = secondary.repositories_dir / hashed_repository_path(doomed["id"])
    wait_until(lambda: not replica.exists(), what="the deleted project's replica to go")
    assert internal(secondary, f"/geo/replicables/{doomed['id']}").status_code == 404
    gone = git("ls-remote", clone_url(secondary.http_url, doomed, doomed_owner), check=False)
    assert gone.returncode != 0


def _ssh_user(api: Api, tmp_path: Path, secondary: Site) -> tuple[Account, dict[str, str]]:
    """An account with an SSH key, once the secondary's read model knows the key."""
    account = api.account()
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    api.call("POST", f"/users/{account.id}/keys", json={"title": "laptop", "key": public})
    blob = public.split()[1]
    wait_until(
        lambda: internal(secondary, "/authorized_keys", key=blob).status_code == 200,
        what="the key on the secondary",
    )
    command = (
        f"ssh -i {key} -p {secondary.ports.ssh} -o StrictHostKeyChecking=no"
        " -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes -F /dev/null"
    )
    return account, {"GIT_SSH_COMMAND": command}


def test_git_over_ssh_on_a_secondary(
    api: Api, primary: Site, secondary: Site, tmp_path: Path
) -> None:
    account, env = _ssh_user(api, tmp_path, secondary)
    project = api.project(account)
    ssh_url = f"git@127.0.0.1:{project['path_with_namespace']}.git"
    tree = make_work_tree(tmp_path / "src", commits=3)
    # The project is new: the secondary has no replica, so the gateway relays to the primary.
    git("push", "-q", ssh_url, "main", cwd=tree, env=env)
    assert remote_head(clone_url(primary.http_url, project, account)) == head(tree)
    for version in ("0", "2"):
        target = tmp_path / f"clone-v{version}"
        git("-c", f"protocol.version={version}", "clone", "-q", ssh_url, str(target), env=env)
        assert head(target) == head(tree)
    wait_until(
        lambda: served_locally(secondary, project, account, head(tree)), what="a local replica"
    )
    git("clone", "-q", "--depth", "1", ssh_url, str(tmp_path / "local"), env=env)
    assert head(tmp_path / "local") == head(tree)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", f"--remote={ssh_url}", "main"],
        capture_output=True,
        env={**os.environ, **env},
        timeout=60,
    )
    assert archive.returncode == 0, archive.stderr
    commit_all(tmp_path / "local", "pushed over ssh to the secondary")
    git("push", "-q", "origin", "main", cwd=tmp_path / "local", env=env)
    assert remote_head(clone_url(primary.http_url, project, account)) == head(tmp_path / "local")


def _upload_pack(
    site: Site, project: dict[str, Any], owner: Account, want: str
) -> tuple[str, bytes]:
    """A protocol v0 fetch of one object, as git would POST it: the route and the first bytes
    of the answer (an upload-pack that refuses a want ends its response early)."""
    line = f"want {want} multi_ack_detailed side-band-64k ofs-delta\n"
    body = f"{len(line) + 4:04x}{line}".encode() + b"0000" + b"0009done\n"
    with httpx.stream(
        "POST",
        f"{site.http_url}/{project['path_with_namespace']}.git/git-upload-pack",
        content=body,
        headers={"Content-Type": "application/x-git-upload-pack-request"},
        auth=(owner.username, owner.token),
        timeout=30,
    ) as response:
        assert response.status_code == 200
        return response.headers["Geogit-Route"], next(response.iter_raw(), b"")


def test_wants_the_replica_lacks_go_to_the_primary(
    api: Api, primary: Site, secondary: Site, tmp_path: Path
) -> None:
    owner, project, tree = pushed_project(api, primary, tmp_path / "src")
    wait_until(lambda: served_locally(secondary, project, owner, head(tree)), what="a replica")
    assert _upload_pack(secondary, project, owner, head(tree))[0] == "local"
    # An object the replica does not have (as if the client had read refs elsewhere first):
    # the primary answers, here that it has no such object either.
    route_taken, answer = _upload_pack(secondary, project, owner, "1" * 40)
    assert route_taken == "proxy"
    assert b"not our ref" in answer


def test_the_primary_and_the_secondary_report_replication(
    sites: tuple[Site, Site, Site, Api], tmp_path: Path
) -> None:
    primary, secondary, _, api = sites
    owner, project, tree = pushed_project(api, primary, tmp_path / "src")
    wait_until(lambda: served_locally(secondary, project, owner, head(tree)), what="a replica")
    site_id = next(s["id"] for s in api.call("GET", "/geo/sites") if s["name"] == secondary.name)

    def reported() -> bool:
        status = api.call("GET", f"/geo/sites/{site_id}/status")
        counts = ("repositories_synced_count", "repositories_verified_count", "lag_samples")
        return all(status[count] >= 1 for count in counts)

    wait_until(reported, what="replication reports on the primary")
    status = api.call("GET", f"/geo/sites/{site_id}/status")
    assert status["replication_lag_p50_ms"] is not None
    assert status["replication_lag_p99_ms"] >= status["replication_lag_p50_ms"]
    own = internal(secondary, "/geo/status").json()
    assert own["role"] == "secondary" and own["fresh"] is True
    assert own["last_global_seq"] <= status["last_event_id"]
    assert own["synced"] >= 1

    # The secondary's own admin API is read-only: its tables follow the primary's events.
    direct = httpx.post(
        f"{secondary.internal_api_url}/api/v4/projects",
        json={"path": "forked-state"},
        headers={"PRIVATE-TOKEN": owner.token},
    )
    assert direct.status_code == 403
    assert "read-only Geo secondary" in direct.json()["message"]


def test_a_new_default_branch_reaches_the_replicas_head(
    api: Api, primary: Site, secondary: Site, tmp_path: Path
) -> None:
    owner, project, tree = pushed_project(api, primary, tmp_path / "src")
    git("push", "-q", clone_url(primary.http_url, project, owner), "main:feature", cwd=tree)
    api.call("PUT", f"/projects/{project['id']}", json={"default_branch": "feature"})

    def head_is_feature() -> bool:
        response = info_refs(secondary, project, owner)
        return (
            response.headers.get("Geogit-Route") == "local"
            and b"symref=HEAD:refs/heads/feature" in response.content
        )

    wait_until(head_is_feature, what="the replica's HEAD to follow the default branch")
    git("clone", "-q", clone_url(secondary.http_url, project, owner), str(tmp_path / "c"))
    assert git("symbolic-ref", "HEAD", cwd=tmp_path / "c").stdout.strip() == "refs/heads/feature"


def test_geo_tokens_do_only_what_they_were_issued_for(
    sites: tuple[Site, Site, Site, Api], tmp_path: Path
) -> None:
    primary, secondary, _, api = sites
    owner, project, _ = pushed_project(api, primary, tmp_path / "src")
    # The token a secondary adds to every request it relays cannot read the event store.
    through_secondary = httpx.get(
        f"{secondary.http_url}/api/v4/geo/events", headers={"PRIVATE-TOKEN": owner.token}
    )
    assert through_secondary.status_code == 403
    # An SSH relay token is good for one command on one project.
    token = _signer(secondary).token(
        "ssh_proxy",
        gl_id=f"user-{owner.id}",
        project=project["path_with_namespace"],
        action="git-upload-pack",
    )
    url = f"{primary.http_url}/{project['path_with_namespace']}.git/info/refs"
    fetch = httpx.get(url, params={"service": "git-upload-pack"}, headers={GEO_TOKEN_HEADER: token})
    assert fetch.status_code == 200
    push = httpx.get(url, params={"service": "git-receive-pack"}, headers={GEO_TOKEN_HEADER: token})
    assert push.status_code == 403 and "another command" in push.text
    # Sent to a site that is not the primary (as a gateway that has not yet followed a
    # promotion would), it is refused there, naming the primary, not relayed without it.
    elsewhere = url.replace(primary.http_url, secondary.http_url)
    relayed = httpx.get(
        elsewhere, params={"service": "git-upload-pack"}, headers={GEO_TOKEN_HEADER: token}
    )
    assert relayed.status_code == 503, relayed.text
    assert f"no longer the primary; the primary is {primary.http_url}" in relayed.text


def test_new_projects_pushed_through_the_secondary_are_never_read_stale(
    api: Api, secondary: Site, tmp_path: Path
) -> None:
    """Create through the secondary, push through it, read through it at once: the read model
    may not know the project yet when the push is reported, and still no read may be stale."""
    owner = api.account()
    via_secondary = Api(secondary.http_url, owner.token)
    try:
        for round_ in range(8):
            project = via_secondary.call("POST", "/projects", json={"path": f"fresh{round_}"})
            tree = make_work_tree(tmp_path / f"src{round_}", commits=2)
            url = clone_url(secondary.http_url, project, owner)
            git("push", "-q", url, "main", cwd=tree)
            assert remote_head(url) == head(tree), f"stale read in round {round_}"
    finally:
        via_secondary.http.close()


def test_real_history_quirks_are_accepted_replicated_and_served(
    api: Api, primary: Site, secondary: Site, tmp_path: Path
) -> None:
    """Objects as old tools wrote them (git.FSCK_IGNORED) pass over HTTP and SSH, replicate,
    and are served by the secondary; a tree with a `.git` entry is refused through either site."""
    account, ssh_env = _ssh_user(api, tmp_path, primary)
    over_http, over_ssh = api.project(account), api.project(account)
    tree = tmp_path / "src"
    make_quirky_history(tree)
    git("push", "-q", clone_url(primary.http_url, over_http, account), "main", cwd=tree)
    ssh_url = f"git@127.0.0.1:{over_ssh['path_with_namespace']}.git"
    git("push", "-q", ssh_url, "main", cwd=tree, env=ssh_env)
    for project in (over_http, over_ssh):
        wait_until(
            lambda p=project: served_locally(secondary, p, account, head(tree)), what="replica"
        )
        target = tmp_path / f"from-secondary-{project['id']}"
        git("clone", "-q", clone_url(secondary.http_url, project, account), str(target))
        assert head(target) == head(tree)

    before = head(tree)
    make_dotgit_commit(tree)
    for url in (
        clone_url(primary.http_url, over_http, account),
        clone_url(secondary.http_url, over_http, account),
    ):
        refused = git("push", url, "main", cwd=tree, check=False)
        assert refused.returncode != 0 and "hasDotgit: contains '.git'" in refused.stderr
        assert remote_head(url) == before
