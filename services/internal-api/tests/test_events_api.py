"""GET /geo/events: the outbox read back in global order, as the consumers' JSON."""

from __future__ import annotations

from internal_api_support import Api, internal_headers

from geogit.common.events import event_from_json
from geogit.common.proto.events.v1 import domain_pb2


async def _page(api: Api, after: int, limit: int) -> dict:  # type: ignore[type-arg]
    response = await api.client.get(
        "/api/v4/geo/events", params={"after": after, "limit": limit}, headers=internal_headers()
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_events_page_in_global_order(api: Api) -> None:
    head = (await _page(api, 0, 1000))["events"]
    start = head[-1]["global_seq"] if head else 0
    alice = await api.user("alice")
    await api.project(alice)

    first = await _page(api, start, 2)
    assert [e["global_seq"] for e in first["events"]] == [start + 1, start + 2]
    assert first["last"] == start + 2
    rest = await _page(api, first["last"], 1000)
    events = [event_from_json(e) for e in first["events"] + rest["events"]]
    assert [e.global_seq for e in events] == list(range(start + 1, start + 1 + len(events)))
    types = [e.type for e in events]
    assert types[:2] == ["UserCreated", "TokenCreated"]
    assert types[2:] == ["ProjectCreated", "MemberSet", "RepositoryCreated"]
    created = events[0].payload
    assert isinstance(created, domain_pb2.UserCreated) and created.username == alice.username
    assert events[0].aggregate_id == f"user-{alice.id}" and events[0].origin_site == "primary"

    empty = await _page(api, rest["last"], 10)
    assert empty == {"events": [], "last": rest["last"]}


async def test_event_queries_are_validated(api: Api) -> None:
    for params in ({"after": -1}, {"limit": 0}, {"limit": 5000}, {"after": "x"}):
        response = await api.client.get(
            "/api/v4/geo/events", params=params, headers=internal_headers()
        )
        assert response.status_code == 400, params
