"""PUT/GET /api/v4/geo/sites/:id with GitLab's selective sync fields, on the primary: the
selection round-trips, a wrong field is refused with what is wrong and changes nothing, and
the SiteUpdated event carries the whole selection to every site's copy of the table."""

from __future__ import annotations

from typing import Any

import httpx
from internal_api_support import Api, ServerInfo, outbox_rows
from secondary_support import register_secondary

from geogit.common.proto.events.v1 import domain_pb2
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.events.outbox import site_aggregate

EVERYTHING = {
    "selective_sync_type": None,
    "selective_sync_namespace_ids": [],
    "selective_sync_shards": [],
}


def _selection(site: dict[str, Any]) -> dict[str, Any]:
    return {name: site[name] for name in EVERYTHING}


async def test_the_selection_round_trips_and_travels_in_the_site_event(
    server: ServerInfo, admin_token: str, api: Api, db: SessionMaker
) -> None:
    site = register_secondary(server, admin_token)
    path = f"/api/v4/geo/sites/{site.site_id}"
    client = api.client
    assert _selection((await client.get(path, headers=api.admin)).json()) == EVERYTHING
    one, two = await api.user("ns-a"), await api.user("ns-b")
    wanted = {
        "selective_sync_type": "namespaces",
        "selective_sync_namespace_ids": [two.id, one.id, two.id],
    }
    response = await client.put(path, headers=api.admin, json=wanted)
    assert response.status_code == 200, response.text
    stored = {**wanted, "selective_sync_namespace_ids": sorted([one.id, two.id])}
    assert _selection(response.json()) == {**EVERYTHING, **stored}
    listed = (await client.get("/api/v4/geo/sites", headers=api.admin)).json()
    assert _selection(next(s for s in listed if s["id"] == site.site_id)) == {
        **EVERYTHING,
        **stored,
    }

    # A PUT of other fields keeps the selection; the event carries all of it every time.
    response = await client.put(path, headers=api.admin, json={"enabled": True})
    assert _selection(response.json()) == {**EVERYTHING, **stored}
    event = domain_pb2.SiteUpdated.FromString(
        (await outbox_rows(db, site_aggregate(site.site_id)))[-1].payload
    )
    assert event.selective_sync_type == "namespaces"
    assert list(event.selective_sync_namespace_ids) == sorted([one.id, two.id])

    shards = {"selective_sync_type": "shards", "selective_sync_shards": ["default"]}
    response = await client.put(path, headers=api.admin, json=shards)
    assert response.status_code == 200, response.text
    assert response.json()["selective_sync_shards"] == ["default"]
    # Empty (or null) is everything again, as on GitLab.
    for everything in ("", None):
        response = await client.put(
            path, headers=api.admin, json={"selective_sync_type": everything}
        )
        assert response.json()["selective_sync_type"] is None
    event = domain_pb2.SiteUpdated.FromString(
        (await outbox_rows(db, site_aggregate(site.site_id)))[-1].payload
    )
    assert (event.selective_sync_type, list(event.selective_sync_shards)) == ("", ["default"])


async def test_a_wrong_selection_is_refused_with_its_reason(
    server: ServerInfo, admin_token: str, api: Api
) -> None:
    site = register_secondary(server, admin_token)
    path = f"/api/v4/geo/sites/{site.site_id}"
    client: httpx.AsyncClient = api.client
    cases = [
        (
            {"selective_sync_type": "groups"},
            "selective_sync_type",
            "'groups' is not a selective sync type: use 'namespaces', 'shards',"
            " or empty for everything",
        ),
        (
            {"selective_sync_type": "namespaces", "selective_sync_namespace_ids": [2**40, 2**41]},
            "selective_sync_namespace_ids",
            f"no namespace with id {2**40}, {2**41}",
        ),
        (
            {"selective_sync_type": "shards", "selective_sync_shards": ["default", "nfs-9"]},
            "selective_sync_shards",
            "no storage shard named nfs-9 (configured: default)",
        ),
    ]
    for body, field, problem in cases:
        response = await client.put(path, headers=api.admin, json=body)
        assert response.status_code == 400, response.text
        assert response.json() == {"message": {field: [problem]}}
    # Wrong shapes are the schema's 400.
    for body in ({"selective_sync_namespace_ids": [0]}, {"selective_sync_shards": "default"}):
        assert (await client.put(path, headers=api.admin, json=body)).status_code == 400
    assert _selection((await client.get(path, headers=api.admin)).json()) == EVERYTHING
    # A new site may be registered with its selection.
    other = await client.post(
        "/api/v4/geo/sites",
        headers=api.admin,
        json={
            "name": f"{site.name}-b",
            "url": "http://b.example.test",
            "public_key": site.public_key,
            "selective_sync_type": "shards",
            "selective_sync_shards": ["default"],
        },
    )
    assert other.status_code == 201, other.text
    assert _selection(other.json()) == {
        **EVERYTHING,
        "selective_sync_type": "shards",
        "selective_sync_shards": ["default"],
    }
    assert (
        await client.delete(f"/api/v4/geo/sites/{other.json()['id']}", headers=api.admin)
    ).status_code == 204
