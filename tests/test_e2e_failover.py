"""Disaster recovery end to end (DESIGN §10): three sites as real processes, real git over
HTTP and SSH, a broker of the module's own.

The tests run in order on one deployment and leave it as the next one expects: a planned
failover under load and the fail back (the original layout again), stale and forged epochs,
the refusals, then an unplanned failover with the old primary coming back (last: it leaves
secondary-1 primary).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from e2e import Api, clone_url, git
from failover_support import (
    DIVERGED,
    Cloner,
    Pusher,
    contains,
    http_pusher,
    preview,
    promote,
    public_refs,
    refs_on_disk,
    repository,
    site_state,
)
from geo_support import internal, served_locally, ssh_env, wait_until
from google.protobuf.message import Message

from geogit.common.events import Topics, new_event
from geogit.common.geo import GEO_TOKEN_HEADER, GeoSigner, generate_site_key
from geogit.common.kafka import EventProducer, KafkaConfig
from geogit.common.proto.events.v1.domain_pb2 import SitePromoted, UserCreated
from geogit.common.tansu import TansuBroker
from geogit.devstack.site import Site
from geogit.devstack.testing import running_sites
from geogit.storage.testing import commit_all, make_work_tree

FAILOVER_ENV = {"GEOGIT_GEO_PEER_CHECK_SECONDS": "1", "GEOGIT_SITE_POLL_SECONDS": "1"}
# What a push may be told while the sites switch: the failover itself, or (for the seconds an
# edge takes to follow) that the site it relayed to is no longer the primary.
SWITCHING = (
    "is being failed over to secondary-1",
    "no longer the primary",
    "this site is not the primary",
)


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as tansu:
        yield tansu


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, broker: TansuBroker
) -> Iterator[tuple[Site, Site, Site, Api, str]]:
    with running_sites(
        tmp_path_factory.mktemp("failover"), broker.bootstrap, secondaries=2, extra_env=FAILOVER_ENV
    ) as (primary, (first, second), admin):
        api = Api(primary.http_url, admin.token)
        yield primary, first, second, api, admin.token
        api.http.close()


def _ssh_url(project: dict[str, Any]) -> str:
    return f"git@127.0.0.1:{project['path_with_namespace']}.git"


def _head(tree: Path) -> str:
    return git("rev-parse", "HEAD", cwd=tree).stdout.strip()


def _replica_inode(site: Site, project_id: int) -> int:
    """A re-synced-from-scratch replica is built aside and renamed in: a new inode."""
    return os.stat(repository(site, project_id)).st_ino


def _converged(sites: list[Site], projects: list[dict[str, Any]]) -> bool:
    return all(
        len({tuple(sorted(public_refs(site, p["id"]).items())) for site in sites}) == 1
        for p in projects
    )


def _followers(answer: dict[str, Any]) -> dict[str, bool]:
    return {follower["site"]: follower["followed"] for follower in answer["followers"]}


def test_planned_failover_under_load_loses_nothing_and_fails_back(
    deployment: tuple[Site, Site, Site, Api, str], tmp_path: Path
) -> None:
    primary, first, second, api, token = deployment
    sites = [primary, first, second]
    owner = api.account()
    ssh = ssh_env(api, owner, tmp_path, sites, [first, second])
    projects = [api.project(owner) for _ in range(3)]
    heads = {}
    for index, project in enumerate(projects):
        tree = make_work_tree(tmp_path / f"seed{index}", commits=2)
        git("push", "-q", clone_url(primary.http_url, project, owner), "main", cwd=tree)
        heads[project["id"]] = _head(tree)
    for site in (first, second):
        for project in projects:
            wait_until(
                lambda site=site, project=project: served_locally(
                    site, project, owner, heads[project["id"]]
                ),
                what=f"{project['path_with_namespace']} current on {site.name}",
            )
    inodes = {
        (s.name, p["id"]): _replica_inode(s, p["id"]) for s in (primary, second) for p in projects
    }

    pushers = [
        http_pusher(f"http-{site.name}", site, projects[index], owner, tmp_path)
        for index, site in enumerate(sites)
    ] + [
        Pusher(
            f"ssh-{site.name}", _ssh_url(projects[index]), tmp_path / f"ssh-{site.name}", ssh[site]
        )
        for index, site in enumerate(sites)
    ]
    cloners = [
        Cloner(
            f"clone-{site.name}",
            clone_url(site.http_url, projects[0], owner),
            tmp_path / f"c-{site.name}",
        )
        for site in sites
    ]
    for worker in [*pushers, *cloners]:
        worker.start()
    try:
        time.sleep(3)
        started = time.monotonic()
        answer = promote(first, token, "planned")
        switched = time.monotonic()
        assert answer.status_code == 200, answer.text
        promoted = answer.json()
        assert promoted["epoch"] == 2 and promoted["mode"] == "planned"
        assert _followers(promoted) == {"primary": True, "secondary-2": True}, promoted
        time.sleep(6)
    finally:
        for worker in [*pushers, *cloners]:
            worker.stop()

    # Reads went on through every site the whole time.
    for cloner in cloners:
        assert cloner.clones > 0 and cloner.failures == [], (cloner.name, cloner.failures[:3])

    # No acknowledged push is lost: each is on the new primary.
    for pusher, project in zip(pushers, projects * 2, strict=True):
        assert pusher.acknowledged, f"{pusher.name} never pushed"
        lost = [
            p.commit for p in pusher.acknowledged if not contains(first, project["id"], p.commit)
        ]
        assert lost == [], f"{pusher.name}: acknowledged pushes missing on secondary-1"
        # Refusals name the failover (or the moment the old primary stopped taking writes).
        for refused in pusher.refused:
            assert any(reason in refused.stderr for reason in SWITCHING), (
                f"{pusher.name} at {refused.finished_at - started:.1f}s: {refused.stderr}"
            )
    late = [p for pusher in pushers for p in pusher.acknowledged if p.finished_at > switched + 3]
    assert {p.url for p in late} >= {pusher.url for pusher in pushers}, "a URL took no push after"

    assert site_state(first, token)["role"] == "primary"
    old = site_state(primary, token)
    assert (old["role"], old["epoch"], old["primary_site"]) == ("secondary", 2, "secondary-1")
    assert site_state(second, token)["primary_site"] == "secondary-1"
    # Nothing was re-synced from scratch, on the other secondary or on the old primary, and
    # both serve reads from their own storage again.
    for project in projects:
        tip = public_refs(first, project["id"])["refs/heads/main"]
        for site in (primary, second):
            wait_until(
                lambda site=site, project=project, tip=tip: served_locally(
                    site, project, owner, tip
                ),
                what=f"{site.name} serving {project['path_with_namespace']} locally",
            )
    assert inodes == {
        (s.name, p["id"]): _replica_inode(s, p["id"]) for s in (primary, second) for p in projects
    }

    # Fail back: the original layout, every site equal.
    back = promote(primary, token, "planned")
    assert back.status_code == 200, back.text
    assert back.json()["epoch"] == 3
    assert _followers(back.json()) == {"secondary-1": True, "secondary-2": True}, back.json()
    assert site_state(first, token)["role"] == "secondary"
    tree = make_work_tree(tmp_path / "after", commits=1)
    for site in sites:
        (tree / "after.txt").write_text(site.name)
        commit = commit_all(tree, f"through {site.name}")
        git(
            "push",
            "-q",
            clone_url(site.http_url, projects[0], owner),
            "HEAD:refs/heads/after",
            "-f",
            cwd=tree,
        )
        assert contains(primary, projects[0]["id"], commit), f"a push through {site.name}"
    wait_until(lambda: _converged(sites, projects), timeout=90, what="the same refs on every site")
    # The primary's view of every site: role, epoch, maintenance and the sequence gap (RPO).
    for site in sites:
        site_id = site_state(site, token)["site_id"]
        status = api.call("GET", f"/geo/sites/{site_id}/status")
        role = "primary" if site is primary else "secondary"
        assert (status["role"], status["epoch"], status["maintenance"]) == (role, 3, None), status
        assert status["reachable"] and status["sequence_gap"] >= 0, status


def test_stale_and_forged_epochs_are_refused(
    deployment: tuple[Site, Site, Site, Api, str], broker: TansuBroker
) -> None:
    primary, _, second, _, token = deployment
    epoch = site_state(primary, token)["epoch"]
    assert epoch > 1, "runs after a failover and fail back"
    events = f"{primary.http_url}/api/v4/geo/events"
    key = second.secrets.geo_private_key
    stale = GeoSigner(key, second.name, lambda: 1).token("events")
    refused = httpx.get(events, headers={GEO_TOKEN_HEADER: stale}, timeout=10)
    assert refused.status_code == 403, refused.text
    assert f"from epoch 1; this site is at epoch {epoch}" in refused.json()["message"]
    forged = GeoSigner(generate_site_key()[0], second.name, lambda: epoch).token("events")
    refused = httpx.get(events, headers={GEO_TOKEN_HEADER: forged}, timeout=10)
    assert refused.status_code == 403 and "signature invalid" in refused.json()["message"]
    current = GeoSigner(key, second.name, lambda: epoch).token("events")
    assert httpx.get(events, headers={GEO_TOKEN_HEADER: current}, timeout=10).status_code == 200

    # On the broker: a promotion nobody can confirm, and a fenced primary's late write. Neither
    # is applied; the site stays where it was.
    position = site_state(second, token)["last_global_seq"]
    claim = SitePromoted(
        epoch=epoch + 10, after_seq=position, site=second.name, url=second.http_url
    )
    late = UserCreated(user_id=10**9, username="mallory", email="m@x.test", name="M")
    asyncio.run(_publish(broker, second.topics, [(claim, epoch + 10), (late, 1)], position + 1))
    time.sleep(4)
    after = site_state(second, token)
    assert (after["epoch"], after["role"], after["primary_site"]) == (epoch, "secondary", "primary")
    metrics = httpx.get(f"{second.internal_api_url}/metrics", timeout=10).text
    assert 'geogit_geo_events_refused_total{reason="stale_epoch"}' in metrics
    assert not asyncio.run(_has_user(second, "mallory"))


async def _has_user(site: Site, username: str) -> bool:
    connection = await asyncpg.connect(site.database_url.replace("+asyncpg", ""))
    try:
        return bool(await connection.fetchval("SELECT 1 FROM users WHERE username = $1", username))
    finally:
        await connection.close()


async def _publish(
    broker: TansuBroker, topics: Topics, payloads: list[tuple[Message, int]], seq: int
) -> None:
    async with EventProducer(KafkaConfig(bootstrap=broker.bootstrap)) as producer:
        for payload, epoch in payloads:
            event = new_event(
                payload,
                aggregate_id="site-forged",
                aggregate_seq=1,
                origin_site="mallory",
                global_seq=seq,
                epoch=epoch,
            )
            await producer.publish(topics.domain, event)


def test_promotions_that_cannot_be_are_refused(
    deployment: tuple[Site, Site, Site, Api, str], tmp_path: Path
) -> None:
    primary, first, second, api, token = deployment
    headers = {"PRIVATE-TOKEN": token}
    unknown = httpx.post(
        f"{second.http_url}/api/v4/geo/sites/999999/promote",
        json={"mode": "planned"},
        headers=headers,
    )
    assert unknown.status_code == 404, unknown.text
    other = site_state(first, token)["site_id"]
    elsewhere = httpx.post(
        f"{second.http_url}/api/v4/geo/sites/{other}/promote",
        json={"mode": "planned"},
        headers=headers,
    )
    assert elsewhere.status_code == 409 and "not this site" in elsewhere.json()["message"]
    already = promote(primary, token, "planned")
    assert already.status_code == 409 and "primary already" in already.json()["message"]
    reachable = promote(second, token, "force")
    assert (
        reachable.status_code == 409 and "reachable: use --planned" in reachable.json()["message"]
    )

    # A disabled site cannot be promoted.
    second_id = site_state(second, token)["site_id"]
    api.call("PUT", f"/geo/sites/{second_id}", json={"enabled": False})
    try:
        wait_until(
            lambda: promote(second, token, "planned").status_code == 409,
            what="the disabled flag on secondary-2",
        )
        disabled = promote(second, token, "planned")
        assert "is disabled" in disabled.json()["message"]
    finally:
        api.call("PUT", f"/geo/sites/{second_id}", json={"enabled": True})

    # While one promotion waits (a replica is behind), a second one is refused; the first gives
    # up saying what it waited for, and the primary takes writes again.
    owner = api.account()
    project = api.project(owner)
    first.supervisor.stop(first.process_name("replicator"))
    try:
        tree = make_work_tree(tmp_path / "behind", commits=1)
        git("push", "-q", clone_url(primary.http_url, project, owner), "main", cwd=tree)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(promote, first, token, "planned", timeout_seconds=8)
            wait_until(
                lambda: site_state(primary, token)["maintenance"] is not None,
                what="the primary in maintenance",
            )
            again = promote(first, token, "planned")
            assert again.status_code == 409, again.text
            assert "another promotion" in again.json()["message"]
            gave_up = waiting.result(timeout=120)
        assert gave_up.status_code == 504, gave_up.text
        assert "replicas not synced and verified yet" in gave_up.json()["message"]
        assert project["path_with_namespace"] in gave_up.json()["message"]
        assert site_state(primary, token)["maintenance"] is None
        assert site_state(primary, token)["role"] == "primary"
    finally:
        first.start_replicator()


def test_unplanned_failover_keeps_what_it_cannot_take_and_fences_the_old_primary(
    deployment: tuple[Site, Site, Site, Api, str], broker: TansuBroker, tmp_path: Path
) -> None:
    primary, first, second, api, token = deployment
    owner = api.account()
    shared = api.project(owner)  # pushed while only secondary-2 listens
    lonely = api.project(owner)  # pushed while no secondary listens
    for index, project in enumerate((shared, lonely)):
        tree = make_work_tree(tmp_path / f"base{index}", commits=1)
        git("push", "-q", clone_url(primary.http_url, project, owner), "main", cwd=tree)
        tip = _head(tree)
        for site in (first, second):
            wait_until(
                lambda site=site, project=project, tip=tip: served_locally(
                    site, project, owner, tip
                ),
                what=f"{site.name} current",
            )
    api_of = {site: site.process_name("internal-api") for site in (first, second)}

    # secondary-1 stops hearing the primary; secondary-2 gets one more push, then stops too;
    # the primary takes a last push nobody receives, and its region is lost, broker and all:
    # the sites follow the new primary through its event store until a broker is back.
    behind = site_state(first, token)["last_global_seq"]
    first.supervisor.stop(api_of[first])
    ahead = make_work_tree(tmp_path / "ahead", commits=1)
    git(
        "push", "-q", clone_url(primary.http_url, shared, owner), "HEAD:refs/heads/ahead", cwd=ahead
    )
    ahead_commit = _head(ahead)
    wait_until(
        lambda: (
            contains(second, shared["id"], ahead_commit)
            and site_state(second, token)["last_global_seq"] > behind
        ),
        what="secondary-2 ahead of secondary-1",
    )
    second.supervisor.stop(api_of[second])
    alone = make_work_tree(tmp_path / "alone", commits=1)
    git(
        "push", "-q", clone_url(primary.http_url, lonely, owner), "HEAD:refs/heads/alone", cwd=alone
    )
    alone_commit = _head(alone)
    primary.stop(kill=True)
    broker.stop()
    first.start_internal_api()
    second.start_internal_api()

    risk = preview(first, token, "force")
    assert risk["gap"] >= 1 and risk["highest_seen_seq"] > risk["candidate_seq"], str(risk)
    assert {s["site"]: s["reachable"] for s in risk["sites"]} == {
        "primary": False,
        "secondary-2": True,
    }
    epoch = risk["next_epoch"]
    answer = promote(first, token, "force")
    assert answer.status_code == 200, answer.text
    forced = answer.json()
    assert forced["at_risk"]["gap"] == risk["gap"] and forced["epoch"] == epoch
    assert {f["site"]: (f["followed"], f["rollback"]) for f in forced["followers"]} == {
        "primary": (False, False),
        "secondary-2": (True, True),
    }
    # secondary-2 had applied more than secondary-1: it rolled back, and the commit only it had
    # is kept and reported, not dropped.
    kept = f"{DIVERGED}epoch-{epoch}/refs/heads/ahead"
    wait_until(
        lambda: refs_on_disk(second, shared["id"]).get(kept) == ahead_commit,
        timeout=90,
        what="the diverged commit kept on secondary-2",
    )
    assert "refs/heads/ahead" not in refs_on_disk(second, shared["id"])
    wait_until(
        lambda: internal(second, "/geo/status").json()["diverged_refs"] >= 1,
        what="secondary-2 reporting what it kept",
    )

    broker.start()  # same port, empty: the relays and consumers recreate the topics
    # The old primary comes back: it learns of the new epoch before it takes a write, converges
    # as a secondary of secondary-1 with its partition-time push kept.
    primary.start()
    state = site_state(primary, token)
    assert (state["role"], state["epoch"], state["fenced"]) == ("secondary", epoch, True)
    refused = httpx.post(
        f"{primary.internal_api_url}/api/v4/users",
        headers={"PRIVATE-TOKEN": token},
        json={"username": "late", "email": "late@x.test", "name": "L", "password": "p" * 12},
    )
    assert refused.status_code == 403 and "secondary-1" in refused.json()["message"]
    wait_until(
        lambda: (
            refs_on_disk(primary, lonely["id"]).get(f"{DIVERGED}epoch-{epoch}/refs/heads/alone")
            == alone_commit
        ),
        timeout=90,
        what="the old primary keeping its partition-time push",
    )
    tree = make_work_tree(tmp_path / "new", commits=1)
    git("push", "-q", clone_url(primary.http_url, shared, owner), "HEAD:refs/heads/new", cwd=tree)
    assert contains(first, shared["id"], _head(tree)), "a push to the old primary's URL"
    wait_until(
        lambda: _converged([primary, first, second], [shared, lonely]),
        timeout=90,
        what="the same refs on every site",
    )
