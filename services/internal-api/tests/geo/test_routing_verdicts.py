"""A secondary's routing verdicts through its real endpoints: serve, proxy or redirect.

The secondary runs beside the session's primary with a database and a storage of its own; its
read model comes from the primary's event store. Each case sets the three inputs of the
freshness rule — the replica's registry row, the project's read-your-writes floor and the
feed's heartbeat — the way the replicator, the edge and the feed set them, then asks
`/internal/git_http/authorize` (the edge's question) or `/internal/allowed` (the SSH gateway's).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from internal_api_support import (
    Api,
    Person,
    ServerInfo,
    basic,
    internal_headers,
    push,
    storage_repo,
)
from secondary_support import MAX_LAG, Secondary, git_tree

from geogit.common.geo import GEO_TOKEN_HEADER, verify_geo_token
from geogit.common.internal_api import GitHttpProxy, GitHttpRedirect, GitHttpServe
from geogit.common.primary_client import PrimaryClient
from geogit.internal_api.db import make_engine, make_sessionmaker
from geogit.internal_api.geo.freshness import UNKNOWN_SEQ
from geogit.internal_api.geo.routing import FROM_SECONDARY, refresh_min_seq
from geogit.internal_api.models import Project
from geogit.storage.testing import StorageProcess

UPLOAD, RECEIVE, ARCHIVE = "git-upload-pack", "git-receive-pack", "git-upload-archive"
FRESH, STALE = 0.0, MAX_LAG * 4


@dataclass(frozen=True)
class World:
    """People and projects made on the primary, known to the secondary through its feed."""

    owner: Person
    reporter: Person
    guest: Person
    outsider: Person
    blocked: Person
    private: dict[str, Any]
    public: dict[str, Any]


async def _make_world(server: ServerInfo, admin_token: str, secondary: Secondary) -> World:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        api = Api(client, admin_token)
        owner, reporter, guest = await api.user("own"), await api.user("rep"), await api.user("gst")
        outsider, blocked = await api.user("out"), await api.user("blk")
        private = await api.project(owner)
        public = await api.project(owner, visibility="public")
        for person in (reporter, blocked):
            await api.add_member(private, person, 20)
        await api.add_member(private, guest, 10)
        response = await client.post(f"/api/v4/users/{blocked.id}/block", headers=api.admin)
        assert response.status_code == 201, response.text
    await secondary.catch_up()
    return World(owner, reporter, guest, outsider, blocked, private, public)


@pytest.fixture(scope="module")
def world(server: ServerInfo, admin_token: str, secondary: Secondary) -> World:
    return asyncio.run(_make_world(server, admin_token, secondary))


# The freshness inputs -------------------------------------------------------------------

# A project just created on the primary is at repository sequence 1 (RepositoryCreated).
PROJECT_SEQ = 1
REGISTRY_ROWS: dict[str, dict[str, Any] | None] = {
    "missing": None,
    "pending": {"state": "pending", "synced_seq": PROJECT_SEQ},
    "syncing": {"state": "syncing", "synced_seq": PROJECT_SEQ},
    "failed": {"state": "failed", "synced_seq": PROJECT_SEQ},
    "synced-behind": {"state": "synced", "synced_seq": PROJECT_SEQ - 1},
    "synced-level": {"state": "synced", "synced_seq": PROJECT_SEQ},
    "synced-ahead": {"state": "synced", "synced_seq": PROJECT_SEQ + 2},
}
# The read-your-writes floor: none, or a relayed push that reached sequence 2 (above a level
# replica, below one that is ahead).
FLOORS = (0, PROJECT_SEQ + 1)
# Seconds since the feed last confirmed it was caught up; None: never.
HEARTBEATS: dict[str, float | None] = {"fresh": FRESH, "stale": STALE, "never": None}


async def _set_inputs(
    secondary: Secondary, project_id: int, registry: str, floor: int, heartbeat: str
) -> None:
    row = REGISTRY_ROWS[registry]
    if row is None:
        await secondary.delete_registry(project_id)
    else:
        await secondary.put_registry(project_id, **row)
    await secondary.set_floor_and_heartbeat(project_id, floor, HEARTBEATS[heartbeat])


def _expected_reason(registry: str, floor: int, heartbeat: str) -> str | None:
    """DESIGN §5, in the order the rule names its conditions; None: serve."""
    row = REGISTRY_ROWS[registry]
    if row is None or row["state"] != "synced":
        return "replica missing or not synced"
    wanted = max(PROJECT_SEQ, floor)
    if row["synced_seq"] < wanted:
        return f"replica at {row['synced_seq']}, project at {wanted}"
    if heartbeat != "fresh":
        return "event feed not caught up"
    return None


def _request(
    project: dict[str, Any] | str, service: str, person: Person | None, path: str = ""
) -> dict[str, Any]:
    full_path = project if isinstance(project, str) else project["path_with_namespace"]
    return {
        "project": full_path,
        "service": service,
        "authorization": basic(person) if person else "",
        "path": path,
    }


def _git_path(project: dict[str, Any] | str, service: str) -> str:
    full_path = project if isinstance(project, str) else project["path_with_namespace"]
    return f"/{full_path}.git/info/refs?service={service}"


async def _authorize(
    secondary: Secondary, body: dict[str, Any], *, redirect: bool = False
) -> GitHttpServe | GitHttpProxy | GitHttpRedirect:
    response = await secondary.internal("git_http/authorize", body, redirect=redirect)
    assert response.status_code == 200, response.text
    answer = response.json()
    kind = {"serve": GitHttpServe, "proxy": GitHttpProxy, "redirect": GitHttpRedirect}
    return kind[answer["action"]].model_validate(answer)  # type: ignore[attr-defined, no-any-return]


def _served_here(answer: object, secondary: Secondary, project: dict[str, Any]) -> None:
    assert isinstance(answer, GitHttpServe), answer
    # From the secondary's own storage, never the primary's.
    assert answer.storage.address == secondary.storage.address
    assert answer.gl_repository == f"project-{project['id']}"
    assert answer.repository.gl_project_path == project["path_with_namespace"]


def _redirected(answer: object, secondary: Secondary, path: str) -> None:
    assert isinstance(answer, GitHttpRedirect), answer
    assert answer.location == f"{FROM_SECONDARY}/{secondary.site.site_id}{path}"


# One case per outcome of the freshness rule, for a user allowed to read (test_freshness.py
# goes through every combination of the rule's inputs) ----------------------------------

READ_CASES = [
    ("synced-level", 0, "fresh"),
    ("synced-ahead", PROJECT_SEQ + 1, "fresh"),
    ("missing", 0, "fresh"),
    ("pending", 0, "fresh"),
    ("syncing", 0, "fresh"),
    ("failed", 0, "fresh"),
    ("synced-behind", 0, "fresh"),
    ("synced-level", PROJECT_SEQ + 1, "fresh"),
    ("synced-level", 0, "stale"),
    ("synced-level", 0, "never"),
]


@pytest.mark.parametrize(("registry", "floor", "heartbeat"), READ_CASES)
async def test_a_permitted_read_is_served_only_when_the_replica_is_fresh(
    secondary: Secondary, world: World, registry: str, floor: int, heartbeat: str
) -> None:
    project = world.private
    await _set_inputs(secondary, project["id"], registry, floor, heartbeat)
    reason = _expected_reason(registry, floor, heartbeat)
    path = _git_path(project, UPLOAD)
    body = _request(project, UPLOAD, world.reporter, path)

    transparent = await _authorize(secondary, body)
    redirected = await _authorize(secondary, body, redirect=True)
    if reason is None:
        _served_here(transparent, secondary, project)
        assert transparent.gl_id == world.reporter.gl_id  # type: ignore[union-attr]
        _served_here(redirected, secondary, project)
    else:
        assert transparent == GitHttpProxy(reason=reason)
        _redirected(redirected, secondary, path)


@pytest.mark.parametrize("heartbeat", HEARTBEATS)
async def test_anonymous_reads_of_a_public_project_follow_the_same_rule(
    secondary: Secondary, world: World, heartbeat: str
) -> None:
    project = world.public
    await _set_inputs(secondary, project["id"], "synced-level", 0, heartbeat)
    answer = await _authorize(secondary, _request(project, UPLOAD, None))
    if heartbeat == "fresh":
        _served_here(answer, secondary, project)
        assert answer.gl_id == ""  # type: ignore[union-attr]
    else:
        assert answer == GitHttpProxy(reason="event feed not caught up")


# A local refusal goes to the primary, which may know of a newer grant ----------------------

NOT_FOUND = "The project you were looking for could not be found."
DENIALS = {
    "anonymous on a private project": ("private", None, 401, "HTTP Basic: Access denied"),
    "an outsider": ("private", "outsider", 404, NOT_FOUND),
    "a guest": ("private", "guest", 403, "You are not allowed to download code from this project."),
    "a blocked user": ("private", "blocked", 403, "Your account has been blocked."),
    "an unknown project, anonymous": ("nowhere", None, 401, "HTTP Basic: Access denied"),
    "an unknown project, signed in": ("nowhere", "reporter", 404, NOT_FOUND),
}


@pytest.mark.parametrize("case", DENIALS)
async def test_a_local_denial_is_proxied_with_the_denial_attached(
    secondary: Secondary, world: World, case: str
) -> None:
    """Even with a fresh replica: the read model may be a moment behind a grant."""
    which, who, status, message = DENIALS[case]
    project = world.private if which == "private" else f"{world.owner.username}/nowhere"
    await _set_inputs(secondary, world.private["id"], "synced-level", 0, "fresh")
    person = getattr(world, who) if who else None
    path = _git_path(project, UPLOAD)
    body = _request(project, UPLOAD, person, path)

    answer = await _authorize(secondary, body)
    assert answer == GitHttpProxy(
        reason=f"denied here ({status})", denied_status=status, denied_message=message
    )
    _redirected(await _authorize(secondary, body, redirect=True), secondary, path)


@pytest.mark.parametrize(
    ("which", "who"),
    [("private", "owner"), ("public", None), ("nowhere", "reporter")],
)
async def test_every_push_goes_to_the_primary(
    secondary: Secondary, world: World, which: str, who: str | None
) -> None:
    """Whoever asks, and however fresh the replica (here: as fresh as it gets)."""
    project = (
        world.private
        if which == "private"
        else world.public
        if which == "public"
        else f"{world.owner.username}/nowhere"
    )
    await _set_inputs(secondary, world.private["id"], "synced-ahead", 0, "fresh")
    await _set_inputs(secondary, world.public["id"], "synced-ahead", 0, "fresh")
    path = _git_path(project, RECEIVE)
    body = _request(project, RECEIVE, getattr(world, who) if who else None, path)
    assert await _authorize(secondary, body) == GitHttpProxy(reason="push")
    _redirected(await _authorize(secondary, body, redirect=True), secondary, path)


@pytest.mark.parametrize("path", ["", "relative/path.git/info/refs"])
async def test_redirect_mode_falls_back_to_proxy_without_an_absolute_path(
    secondary: Secondary, world: World, path: str
) -> None:
    await _set_inputs(secondary, world.private["id"], "pending", 0, "fresh")
    body = _request(world.private, UPLOAD, world.reporter, path)
    assert await _authorize(secondary, body, redirect=True) == GitHttpProxy(
        reason="replica missing or not synced"
    )
    denied = _request(world.private, UPLOAD, world.outsider, path)
    answer = await _authorize(secondary, denied, redirect=True)
    assert isinstance(answer, GitHttpProxy) and answer.denied_status == 404


# Read-your-writes ------------------------------------------------------------------------


async def test_an_unknown_push_floor_is_learnt_from_the_primary_before_serving(
    secondary: Secondary, world: World
) -> None:
    """A floor of UNKNOWN_SEQ (the primary could not be asked after a relayed push) is asked
    again on the next read; the primary's answer, sequence 1, lets the replica serve."""
    project = world.private
    await _set_inputs(secondary, project["id"], "synced-level", UNKNOWN_SEQ, "fresh")
    answer = await _authorize(secondary, _request(project, UPLOAD, world.reporter))
    _served_here(answer, secondary, project)
    known = await secondary.project(project["id"])
    assert known is not None and known.geo_min_seq == PROJECT_SEQ

    await _set_inputs(secondary, project["id"], "synced-behind", UNKNOWN_SEQ, "fresh")
    answer = await _authorize(secondary, _request(project, UPLOAD, world.reporter))
    assert answer == GitHttpProxy(reason=f"replica at {PROJECT_SEQ - 1}, project at {PROJECT_SEQ}")


async def test_an_unreachable_primary_leaves_the_floor_unknown(
    secondary: Secondary, world: World
) -> None:
    """No replica can satisfy an unknown floor, so reads keep proxying."""
    await _set_inputs(secondary, world.private["id"], "synced-ahead", PROJECT_SEQ, "fresh")
    engine = make_engine(secondary.database.url)
    dead = PrimaryClient("http://127.0.0.1:9", secondary.site.signer, 5)
    try:
        async with make_sessionmaker(engine)() as session:
            project = await session.get(Project, world.private["id"])
            assert project is not None
            await refresh_min_seq(session, dead, project)
    finally:
        await dead.aclose()
        await engine.dispose()
    stored = await secondary.project(world.private["id"])
    assert stored is not None and stored.geo_min_seq == UNKNOWN_SEQ


async def test_a_relayed_push_keeps_reads_on_the_primary_until_the_replica_has_it(
    api: Api, storage: StorageProcess, secondary: Secondary, tmp_path: Path
) -> None:
    """The edge reports the push it relayed; the secondary has not yet heard of it through
    its feed, but the floor it learnt from the primary already sends reads there."""
    alice = await api.user("pusher")
    project = await api.project(alice)
    await secondary.catch_up()
    await _set_inputs(secondary, project["id"], "synced-level", 0, "fresh")
    body = _request(project, UPLOAD, alice)
    _served_here(await _authorize(secondary, body), secondary, project)

    push(storage, storage_repo(project), git_tree(tmp_path), alice, "HEAD:refs/heads/main")
    reported = await secondary.internal(
        "geo/proxied_push", {"project": f"{project['path_with_namespace']}.git"}
    )
    assert reported.status_code == 204, reported.text
    assert await _authorize(secondary, body) == GitHttpProxy(
        reason=f"replica at {PROJECT_SEQ}, project at {PROJECT_SEQ + 1}"
    )
    await secondary.put_registry(project["id"], state="synced", synced_seq=PROJECT_SEQ + 1)
    _served_here(await _authorize(secondary, body), secondary, project)


async def test_a_push_for_a_project_not_yet_known_leaves_a_floor_for_it(
    api: Api, storage: StorageProcess, secondary: Secondary, tmp_path: Path
) -> None:
    bob = await api.user("early")
    project = await api.project(bob)
    push(storage, storage_repo(project), git_tree(tmp_path), bob, "HEAD:refs/heads/main")
    # Reported before the secondary's feed brought the project: the floor waits for it.
    reported = await secondary.internal(
        "geo/proxied_push", {"project": project["path_with_namespace"]}
    )
    assert reported.status_code == 204, reported.text
    assert await secondary.project(project["id"]) is None
    await secondary.catch_up()
    known = await secondary.project(project["id"])
    assert known is not None and known.geo_min_seq == PROJECT_SEQ + 1
    assert known.repository_seq == PROJECT_SEQ + 1
    await _set_inputs(secondary, project["id"], "synced-level", PROJECT_SEQ + 1, "fresh")
    answer = await _authorize(secondary, _request(project, UPLOAD, bob))
    assert answer == GitHttpProxy(reason=f"replica at {PROJECT_SEQ}, project at {PROJECT_SEQ + 1}")


# SSH: /internal/allowed answers 200 (serve here), 300 (relay to the primary) or an error ----


def _allowed(project: dict[str, Any] | str, action: str, person: Person | None) -> dict[str, Any]:
    full_path = project if isinstance(project, str) else project["path_with_namespace"]
    return {
        "action": action,
        "protocol": "ssh",
        "gl_id": person.gl_id if person else "",
        "project": f"/{full_path}.git",
    }


def _relayed(response: httpx.Response, secondary: Secondary, full_path: str, action: str) -> None:
    assert response.status_code == 300, response.text
    data = response.json()["payload"]["data"]
    assert response.json()["payload"]["action"] == "geo_proxy_to_primary"
    assert data["primary_repo"] == f"{secondary.primary.url}/{full_path}.git"
    claims = verify_geo_token(
        data["request_headers"][GEO_TOKEN_HEADER], secondary.site.public_key, secondary.site.name
    )
    assert (claims.scope, claims.action, claims.project) == ("ssh_proxy", action, full_path)


SSH_CASES = [
    (action, registry, heartbeat)
    for action in (UPLOAD, ARCHIVE)
    for registry, heartbeat in [
        ("synced-level", "fresh"),
        ("synced-level", "stale"),
        ("synced-behind", "fresh"),
    ]
]


@pytest.mark.parametrize(("action", "registry", "heartbeat"), SSH_CASES)
async def test_ssh_reads_are_local_only_when_fresh(
    secondary: Secondary, world: World, action: str, registry: str, heartbeat: str
) -> None:
    project = world.private
    await _set_inputs(secondary, project["id"], registry, 0, heartbeat)
    response = await secondary.internal("allowed", _allowed(project, action, world.reporter))
    if _expected_reason(registry, 0, heartbeat) is None:
        assert response.status_code == 200, response.text
        assert response.json()["storage"]["address"] == secondary.storage.address
        assert response.json()["gl_id"] == world.reporter.gl_id
    elif action == ARCHIVE:
        # An archive cannot be relayed over smart HTTP: the user is told to use the primary.
        assert response.status_code == 503, response.text
        assert "run it against the primary site" in response.json()["message"]
    else:
        _relayed(response, secondary, project["path_with_namespace"], action)


@pytest.mark.parametrize("who", ["owner", "outsider", "guest"])
async def test_ssh_pushes_and_local_denials_are_relayed(
    secondary: Secondary, world: World, who: str
) -> None:
    project = world.private
    await _set_inputs(secondary, project["id"], "synced-level", 0, "fresh")
    person = getattr(world, who)
    full_path = project["path_with_namespace"]
    pushed = await secondary.internal("allowed", _allowed(project, RECEIVE, person))
    _relayed(pushed, secondary, full_path, RECEIVE)
    fetched = await secondary.internal("allowed", _allowed(project, UPLOAD, person))
    if who == "owner":
        assert fetched.status_code == 200, fetched.text
    else:
        _relayed(fetched, secondary, full_path, UPLOAD)
        # An archive's denial is final here: there is no way to relay it.
        archived = await secondary.internal("allowed", _allowed(project, ARCHIVE, person))
        assert archived.status_code in (403, 404) and archived.json()["status"] is False


async def test_ssh_without_a_known_user_is_refused(secondary: Secondary, world: World) -> None:
    for action in (UPLOAD, RECEIVE):
        response = await secondary.internal("allowed", _allowed(world.private, action, None))
        assert response.status_code == 401, response.text
        assert response.json()["message"] == "Access denied: unknown user or key."


async def test_the_sites_status_says_whether_its_feed_is_fresh(
    secondary: Secondary, world: World
) -> None:
    position = await secondary.catch_up()
    for heartbeat in HEARTBEATS:
        await _set_inputs(secondary, world.private["id"], "synced-level", 0, heartbeat)
        async with httpx.AsyncClient(base_url=secondary.url, timeout=60) as client:
            response = await client.get("/api/v4/internal/geo/status", headers=internal_headers())
        assert response.status_code == 200, response.text
        status = response.json()
        assert (status["site"], status["role"]) == (secondary.site.name, "secondary")
        assert status["fresh"] is (heartbeat == "fresh"), heartbeat
        assert (status["caught_up_at"] is None) is (heartbeat == "never"), heartbeat
        assert status["last_global_seq"] == position
        assert status["synced"] >= 1


async def test_after_a_transfer_the_old_owner_is_no_longer_served_here(
    api: Api, secondary: Secondary
) -> None:
    old, new = await api.user("oldown"), await api.user("newown")
    project = await api.project(old)
    response = await api.client.put(
        f"/api/v4/projects/{project['id']}/transfer",
        params={"namespace": new.username},
        headers=api.admin,
    )
    assert response.status_code == 200, response.text
    moved = response.json()
    # The primary refuses the old owner now.
    refused = await api.internal("git_http/authorize", _request(moved, UPLOAD, old))
    assert refused.status_code == 404, refused.text

    await secondary.catch_up()
    await _set_inputs(secondary, project["id"], "synced-level", 0, "fresh")
    _served_here(await _authorize(secondary, _request(moved, UPLOAD, new)), secondary, moved)
    answer = await _authorize(secondary, _request(moved, UPLOAD, old))
    assert isinstance(answer, GitHttpProxy) and answer.denied_status == 404, answer
