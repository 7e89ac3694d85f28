"""Bad input to the admin API: each a clear 4xx in GitLab's shape, and nothing changes."""

from __future__ import annotations

import pytest
from internal_api_support import Api, internal_headers, outbox_count

from geogit.internal_api.db import SessionMaker

USER = {"username": "mallory", "email": "m@example.com", "name": "M", "password": "12345678"}


@pytest.fixture
async def unchanged(db: SessionMaker):  # type: ignore[no-untyped-def]
    before = await outbox_count(db)
    yield
    assert await outbox_count(db) == before


async def test_malformed_json(api: Api, unchanged: None) -> None:
    for body in (b"{", b"[1, 2]", b'"text"', b"\xff\xfe"):
        response = await api.client.post(
            "/api/v4/users",
            content=body,
            headers={**api.admin, "Content-Type": "application/json"},
        )
        assert response.status_code == 400, body
        assert response.json()["message"].startswith("400 Bad request")


async def test_unknown_fields_are_refused(api: Api, unchanged: None) -> None:
    response = await api.client.post(
        "/api/v4/users", headers=api.admin, json={**USER, "is_superuser": True}
    )
    assert response.status_code == 400
    assert response.json() == {"message": "400 Bad request - is_superuser is not a known parameter"}
    missing = await api.client.post("/api/v4/users", headers=api.admin, json={"username": "x"})
    assert "email is missing" in missing.json()["message"]


async def test_oversized_bodies_are_refused(api: Api, unchanged: None) -> None:
    huge = {**USER, "name": "x" * (2 * 1024 * 1024)}
    response = await api.client.post("/api/v4/users", headers=api.admin, json=huge)
    assert response.status_code == 413
    assert "413" in response.json()["message"]

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 65536

    streamed = await api.client.post(
        "/api/v4/users",
        headers={**api.admin, "Content-Type": "application/json"},
        content=chunks(),
    )
    assert streamed.status_code == 413, streamed.text


async def test_bad_credentials(api: Api, unchanged: None) -> None:
    for headers in (
        {"PRIVATE-TOKEN": "glpat-nope"},
        {"Authorization": "Bearer glpat-nope"},
        {"PRIVATE-TOKEN": ""},
    ):
        response = await api.client.post("/api/v4/users", headers=headers, json=USER)
        assert response.status_code == 401, headers
        assert response.json() == {"message": "401 Unauthorized"}


async def test_bad_ids_and_paths(api: Api, unchanged: None) -> None:
    for path in (
        "/api/v4/users/0",
        "/api/v4/users/-1",
        "/api/v4/users/99999999999999999999999",
        "/api/v4/users/abc",
    ):
        response = await api.client.get(path, headers=api.admin)
        assert response.status_code == 400, path
    traversal = await api.client.get("/api/v4/projects/..%2F..%2Fetc%2Fpasswd", headers=api.admin)
    assert traversal.status_code == 400
    assert "'..'" in traversal.json()["message"] or ".." in traversal.json()["message"]
    wrong_method = await api.client.patch("/api/v4/users", headers=api.admin)
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"message": "405 Method Not Allowed"}


async def test_out_of_range_cursors_are_refused(api: Api) -> None:
    """Found by the schemathesis run: a cursor past int64 reached the driver (500)."""
    for path in ("/api/v4/internal/geo/replicables", "/api/v4/geo/events"):
        response = await api.client.get(
            path, params={"after": str(2**63)}, headers=internal_headers()
        )
        assert response.status_code == 400, (path, response.text)
        assert response.json()["message"].startswith("400 Bad request - after is invalid"), path
