"""A primary's read-only maintenance for a planned failover (DESIGN §10), on the session's
primary: writes of every kind get the failover message while reads work, a push already past
pre-receive still lands, and the drain answers only once it has, with the final sequence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from internal_api_support import Api, ServerInfo
from secondary_support import Registration, register_secondary
from sqlalchemy import func, select

from geogit.internal_api.db import SessionMaker
from geogit.internal_api.models import OutboxEvent


@pytest.fixture
async def target(server: ServerInfo, admin_token: str, api: Api) -> AsyncIterator[Registration]:
    site = await asyncio.to_thread(register_secondary, server, admin_token)
    yield site
    # Whatever the test did, the session's primary takes writes again.
    response = await api.client.delete("/api/v4/geo/maintenance", headers=api.admin)
    assert response.status_code == 204, response.text


def _counted_push(user_id: int, gl_repository: str) -> dict[str, object]:
    """What storage's pre-receive hook asks: the access check and the push count at once."""
    return {
        "action": "git-receive-pack",
        "protocol": "http",
        "gl_id": f"user-{user_id}",
        "gl_repository": gl_repository,
        "changes": "_any",
        "count_push": True,
    }


def _failing_over(site: Registration) -> str:
    return f"this site is being failed over to {site.name}; retry in a moment"


async def test_writes_wait_for_the_new_primary_while_reads_go_on(
    api: Api, db: SessionMaker, target: Registration
) -> None:
    alice = await api.user("alice")
    project = await api.project(alice)
    gl_repository = f"project-{project['id']}"
    # A push is between pre-receive (allowed, counted) and post-receive when maintenance begins.
    started = await api.internal("allowed", _counted_push(alice.id, gl_repository))
    assert started.status_code == 200, started.text
    assert started.json()["reference_counter_increased"] is True
    drain = asyncio.create_task(
        api.client.post(
            "/api/v4/geo/maintenance",
            json={"target": target.name, "drain_timeout_seconds": 30},
            headers=api.admin,
        )
    )
    await _until_writes_are_refused(api)
    assert not drain.done(), "the drain answered while a push was still in flight"

    refused = await api.client.post(
        "/api/v4/users",
        headers=api.admin,
        json={"username": "late", "email": "l@x.test", "name": "L", "password": "p" * 12},
    )
    assert refused.status_code == 503
    assert refused.json()["message"].endswith(_failing_over(target))
    push = await api.internal(
        "allowed",
        {
            "action": "git-receive-pack",
            "protocol": "ssh",
            "gl_id": f"user-{alice.id}",
            "project": project["path_with_namespace"],
            "changes": "_any",
        },
    )
    assert push.status_code == 503 and push.json()["message"] == _failing_over(target)
    another = await api.internal("allowed", _counted_push(alice.id, gl_repository))
    assert another.status_code == 503 and another.json()["message"] == _failing_over(target)
    # Reads go on: the project, and a clone's access check.
    assert (
        await api.client.get(f"/api/v4/projects/{project['id']}", headers=alice.headers)
    ).status_code == 200
    fetch = await api.internal(
        "allowed",
        {
            "action": "git-upload-pack",
            "protocol": "ssh",
            "gl_id": f"user-{alice.id}",
            "project": project["path_with_namespace"],
            "changes": "_any",
        },
    )
    assert fetch.status_code == 200, fetch.text

    # The push in flight lands and records its event; only then is the drain over.
    landed = await api.internal(
        "post_receive",
        {"gl_repository": gl_repository, "identifier": f"user-{alice.id}", "changes": ""},
    )
    assert landed.status_code == 200, landed.text
    answer = await asyncio.wait_for(drain, 30)
    assert answer.status_code == 200, answer.text
    async with db() as session:
        last = await session.scalar(select(func.max(OutboxEvent.id)))
        newest = await session.scalar(select(OutboxEvent).order_by(OutboxEvent.id.desc()).limit(1))
    assert answer.json() == {"epoch": 1, "last_global_seq": last, "pushes_in_flight": 0}
    assert newest is not None and newest.type == "RepositoryUpdated"
    assert newest.aggregate_id == f"project-{project['id']}"

    # Out of maintenance, writes work again.
    left = await api.client.delete("/api/v4/geo/maintenance", headers=api.admin)
    assert left.status_code == 204
    assert (await api.internal("pre_receive", {"gl_repository": gl_repository})).status_code == 200
    await api.internal(
        "post_receive",
        {"gl_repository": gl_repository, "identifier": f"user-{alice.id}", "changes": ""},
    )


async def _until_writes_are_refused(api: Api) -> None:
    for _ in range(100):
        state = await api.client.get("/api/v4/geo/site_state", headers=api.admin)
        if state.json()["maintenance"] is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"maintenance never began: {state.text}")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"target": "no-such-site"},
            404,
            "404 Not Found - Geo Site 'no-such-site' is not registered",
        ),
        (
            {"target": "primary"},
            409,
            "409 Conflict - primary is this site: nothing to fail over to",
        ),
        ({"target": ""}, 400, None),
        ({"target": "x", "drain_timeout_seconds": 0}, 400, None),
    ],
)
async def test_maintenance_for_a_site_that_cannot_take_over_is_refused(
    api: Api, body: dict[str, object], status: int, message: str | None
) -> None:
    response = await api.client.post("/api/v4/geo/maintenance", json=body, headers=api.admin)
    assert response.status_code == status, response.text
    if message is not None:
        assert response.json()["message"] == message
    state = await api.client.get("/api/v4/geo/site_state", headers=api.admin)
    assert state.json()["maintenance"] is None


async def test_only_admins_and_sites_may_ask(api: Api, server: ServerInfo) -> None:
    alice = await api.user("alice")
    for headers in ({}, alice.headers, {"PRIVATE-TOKEN": "glpat-forged"}):
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.post(
                "/api/v4/geo/maintenance", json={"target": "x"}, headers=headers
            )
        assert response.status_code in (401, 403), response.text
