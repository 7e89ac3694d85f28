"""Small edges of the admin API: each a clear answer, and nothing changed.

Searches match `%` and `_` literally; names that are routes cannot be usernames; a transfer
names the namespace it could not find, and takes it as python-gitlab sends it (JSON body).
"""

from __future__ import annotations

import pytest
from internal_api_support import Api, outbox_count, unique
from sqlalchemy import func, select

from geogit.internal_api.accounts.usernames import RESERVED_USERNAMES
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.models import User

# A sample of the reserved list, in the cases people try; every entry is checked below too.
RESERVED = ["api", "help", "admin", "explore", "groups", "projects", "users", "API", "Help"]


def _user(username: str) -> dict[str, str]:
    return {
        "username": username,
        "email": f"{unique('e')}@example.com",
        "name": "N",
        "password": "correct horse battery",
    }


@pytest.mark.parametrize("username", RESERVED)
async def test_reserved_usernames_are_refused(api: Api, db: SessionMaker, username: str) -> None:
    before = await outbox_count(db)
    response = await api.client.post("/api/v4/users", headers=api.admin, json=_user(username))
    assert response.status_code == 400
    assert response.json() == {
        "message": {"username": [f"'{username}' is reserved: it is a route of this site"]}
    }
    assert await outbox_count(db) == before
    async with db() as session:
        taken = select(func.count()).where(func.lower(User.username) == username.lower())
        assert await session.scalar(taken) == 0


async def test_every_reserved_name_is_refused(api: Api, db: SessionMaker) -> None:
    before = await outbox_count(db)
    for username in sorted(RESERVED_USERNAMES):
        response = await api.client.post("/api/v4/users", headers=api.admin, json=_user(username))
        assert response.status_code == 400, username
        assert "username" in response.json()["message"], username
    assert await outbox_count(db) == before


@pytest.mark.parametrize("wildcard", ["%", "_"])
async def test_search_matches_wildcards_literally(api: Api, wildcard: str) -> None:
    person = await api.user("plain")
    await api.project(person)
    for path in ("/api/v4/users", "/api/v4/projects"):
        response = await api.client.get(path, headers=api.admin, params={"search": wildcard})
        assert response.status_code == 200
        assert response.json() == [], path
    # A name that really holds the character is found by it.
    named = await api.project(person, name=f"100{wildcard} done")
    found = await api.client.get(
        "/api/v4/projects", headers=api.admin, params={"search": f"0{wildcard} d"}
    )
    assert [p["id"] for p in found.json()] == [named["id"]]


async def test_transfer_to_a_missing_namespace_names_it(api: Api, db: SessionMaker) -> None:
    owner = await api.user("owner")
    project = await api.project(owner)
    url = f"/api/v4/projects/{project['id']}/transfer"
    before = await outbox_count(db)
    for kwargs in (
        {"params": {"namespace": "nobody-here"}},
        {"json": {"namespace": "nobody-here"}},
    ):
        response = await api.client.put(url, headers=api.admin, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 404, kwargs
        assert response.json() == {
            "message": "404 Namespace Not Found - namespace 'nobody-here' does not exist"
        }
    missing = await api.client.put(url, headers=api.admin)
    assert missing.status_code == 400
    assert missing.json() == {"message": "400 Bad request - namespace is missing"}
    assert await outbox_count(db) == before
    shown = await api.client.get(f"/api/v4/projects/{project['id']}", headers=api.admin)
    assert shown.json()["namespace"]["path"] == owner.username


async def test_transfer_takes_the_namespace_in_a_body_or_by_id(api: Api) -> None:
    owner, first, second = await api.user("o"), await api.user("f"), await api.user("s")
    project = await api.project(owner)
    url = f"/api/v4/projects/{project['id']}/transfer"
    by_body = await api.client.put(url, headers=api.admin, json={"namespace": first.username})
    assert by_body.status_code == 200, by_body.text
    assert by_body.json()["path_with_namespace"] == f"{first.username}/{project['path']}"
    by_id = await api.client.put(url, headers=api.admin, params={"namespace": str(second.id)})
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["path_with_namespace"] == f"{second.username}/{project['path']}"
