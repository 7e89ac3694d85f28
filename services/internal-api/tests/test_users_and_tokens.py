"""Users and personal access tokens through the admin API, in GitLab's shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from internal_api_support import Api, outbox_rows, unique
from sqlalchemy import select

from geogit.common.events import EVENT_TYPES
from geogit.internal_api.accounts.credentials import token_digest
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.models import PersonalAccessToken, User


async def test_admin_creates_a_user_who_sees_themselves(api: Api, db: SessionMaker) -> None:
    username = unique("alice")
    created = await api.client.post(
        "/api/v4/users",
        headers=api.admin,
        json={
            "username": username,
            "email": f"{username}@example.com",
            "name": "Alice",
            "password": "s3cret-passw0rd",
            "skip_confirmation": True,
        },
    )
    assert created.status_code == 201
    user = created.json()
    assert user["username"] == username and user["state"] == "active"
    assert user["email"] == f"{username}@example.com" and user["is_admin"] is False
    assert user["web_url"] == f"http://git.example.test/{username}"

    async with db() as session:
        row = await session.get(User, user["id"])
        assert row is not None
        assert row.password_hash.startswith("$argon2id$")
    events = await outbox_rows(db, f"user-{user['id']}")
    assert [e.type for e in events] == ["UserCreated"]
    payload = EVENT_TYPES["UserCreated"].FromString(events[0].payload)
    assert payload.username == username  # type: ignore[attr-defined]

    token = await api.token(user["id"], ["api"])
    me = await api.client.get("/api/v4/user", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]


async def test_duplicate_usernames_and_emails_conflict(api: Api) -> None:
    alice = await api.user("dup")
    body = {"email": "other@example.com", "name": "X", "password": "long enough"}
    again = await api.client.post(
        "/api/v4/users", headers=api.admin, json={"username": alice.username.upper(), **body}
    )
    assert again.status_code == 409
    assert again.json() == {"message": "Username has already been taken"}
    email = await api.client.post(
        "/api/v4/users",
        headers=api.admin,
        json={**body, "username": unique("x"), "email": f"{alice.username}@EXAMPLE.com"},
    )
    assert email.status_code == 409


async def test_non_admins_cannot_create_users_or_see_emails(api: Api) -> None:
    bob = await api.user("bob")
    response = await api.client.post(
        "/api/v4/users",
        headers=bob.headers,
        json={"username": unique("x"), "email": "x@example.com", "name": "X", "password": "p" * 9},
    )
    assert response.status_code == 403
    assert response.json() == {"message": "403 Forbidden"}
    shown = (await api.client.get("/api/v4/users/1", headers=bob.headers)).json()
    assert "email" not in shown and shown["username"] == "root"


async def test_user_list_is_paginated_like_gitlab(api: Api) -> None:
    for _ in range(3):
        await api.user("page")
    first = await api.client.get("/api/v4/users?per_page=2", headers=api.admin)
    assert first.status_code == 200
    total = int(first.headers["X-Total"])
    assert total >= 4 and len(first.json()) == 2
    assert first.headers["X-Page"] == "1" and first.headers["X-Per-Page"] == "2"
    assert first.headers["X-Next-Page"] == "2" and first.headers["X-Prev-Page"] == ""
    assert first.headers["X-Total-Pages"] == str((total + 1) // 2)
    assert 'rel="next"' in first.headers["Link"] and 'rel="last"' in first.headers["Link"]
    last_page = first.headers["X-Total-Pages"]
    last = await api.client.get(f"/api/v4/users?per_page=2&page={last_page}", headers=api.admin)
    assert last.headers["X-Next-Page"] == ""
    ids = [u["id"] for u in first.json()] + [u["id"] for u in last.json()]
    assert len(set(ids)) == len(ids)
    capped = await api.client.get("/api/v4/users?per_page=1000", headers=api.admin)
    assert capped.headers["X-Per-Page"] == "100"
    by_name = await api.client.get("/api/v4/users?username=ROOT", headers=api.admin)
    assert [u["username"] for u in by_name.json()] == ["root"]


async def test_blocked_users_lose_api_access_and_unblock_restores_it(
    api: Api, db: SessionMaker
) -> None:
    carol = await api.user("carol")
    blocked = await api.client.post(f"/api/v4/users/{carol.id}/block", headers=api.admin)
    assert blocked.status_code == 201 and blocked.json() is True
    assert (await api.client.get("/api/v4/user", headers=carol.headers)).status_code == 401
    await api.client.post(f"/api/v4/users/{carol.id}/unblock", headers=api.admin)
    assert (await api.client.get("/api/v4/user", headers=carol.headers)).status_code == 200
    types = [e.type for e in await outbox_rows(db, f"user-{carol.id}")]
    assert types == ["UserCreated", "TokenCreated", "UserBlocked", "UserUpdated"]


async def test_deleting_a_user_removes_their_tokens(api: Api, db: SessionMaker) -> None:
    dave = await api.user("dave")
    assert (
        await api.client.delete(f"/api/v4/users/{dave.id}", headers=api.admin)
    ).status_code == 204
    assert (await api.client.get("/api/v4/user", headers=dave.headers)).status_code == 401
    assert (await api.client.get(f"/api/v4/users/{dave.id}", headers=api.admin)).json() == {
        "message": "404 User Not Found"
    }
    async with db() as session:
        left = await session.scalars(
            select(PersonalAccessToken).where(PersonalAccessToken.user_id == dave.id)
        )
        assert left.all() == []
    assert (await outbox_rows(db, f"user-{dave.id}"))[-1].type == "UserDeleted"


async def test_a_user_who_owns_projects_cannot_be_deleted(api: Api) -> None:
    erin = await api.user("erin")
    await api.project(erin)
    response = await api.client.delete(f"/api/v4/users/{erin.id}", headers=api.admin)
    assert response.status_code == 409


async def test_tokens_are_shown_once_and_stored_as_digests(api: Api, db: SessionMaker) -> None:
    frank = await api.user("frank")
    created = await api.client.post(
        f"/api/v4/users/{frank.id}/personal_access_tokens",
        headers=api.admin,
        json={"name": "ci", "scopes": ["read_repository"], "expires_at": "2999-01-01"},
    )
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith("glpat-")
    assert body["scopes"] == ["read_repository"] and body["expires_at"] == "2999-01-01"
    assert body["active"] is True and body["revoked"] is False
    async with db() as session:
        row = await session.get(PersonalAccessToken, body["id"])
        assert row is not None and row.token_digest == token_digest(body["token"])
    listed = await api.client.get("/api/v4/personal_access_tokens", headers=frank.headers)
    assert {t["id"] for t in listed.json()} >= {body["id"]}
    assert all("token" not in t for t in listed.json())
    assert all(t["user_id"] == frank.id for t in listed.json())


async def test_a_token_without_api_scope_cannot_use_the_api(api: Api) -> None:
    grace = await api.user("grace")
    read_only = await api.token(grace.id, ["read_repository"])
    response = await api.client.get("/api/v4/user", headers={"PRIVATE-TOKEN": read_only})
    assert response.status_code == 403


async def test_revoked_and_expired_tokens_are_refused(api: Api, db: SessionMaker) -> None:
    heidi = await api.user("heidi")
    other = await api.token(heidi.id, ["api"])
    listed = await api.client.get("/api/v4/personal_access_tokens", headers=heidi.headers)
    other_id = next(t["id"] for t in listed.json() if t["id"] != listed.json()[0]["id"])
    revoked = await api.client.delete(
        f"/api/v4/personal_access_tokens/{other_id}", headers=heidi.headers
    )
    assert revoked.status_code == 204
    assert (await api.client.get("/api/v4/user", headers={"PRIVATE-TOKEN": other})).json() == {
        "message": "401 Unauthorized"
    }
    assert (await outbox_rows(db, f"user-{heidi.id}"))[-1].type == "TokenRevoked"

    # An expiry date in the past cannot be requested; age one in the database instead.
    expiring = await api.token(heidi.id, ["api"], expires_at="2999-01-01")
    async with db() as session:
        row = await session.scalar(
            select(PersonalAccessToken).where(
                PersonalAccessToken.token_digest == token_digest(expiring)
            )
        )
        assert row is not None
        row.expires_at = (datetime.now(UTC) - timedelta(days=1)).date()
        await session.commit()
    response = await api.client.get("/api/v4/user", headers={"PRIVATE-TOKEN": expiring})
    assert response.status_code == 401


async def test_users_cannot_see_or_revoke_others_tokens(api: Api) -> None:
    ivan, judy = await api.user("ivan"), await api.user("judy")
    ivans = (await api.client.get("/api/v4/personal_access_tokens", headers=ivan.headers)).json()
    token_id = ivans[0]["id"]
    assert (
        await api.client.get(f"/api/v4/personal_access_tokens/{token_id}", headers=judy.headers)
    ).status_code == 404
    assert (
        await api.client.delete(f"/api/v4/personal_access_tokens/{token_id}", headers=judy.headers)
    ).status_code == 404
    assert (await api.client.get("/api/v4/user", headers=ivan.headers)).status_code == 200


async def test_token_requests_are_validated(api: Api) -> None:
    kim = await api.user("kim")
    url = f"/api/v4/users/{kim.id}/personal_access_tokens"
    bad_scope = await api.client.post(
        url, headers=api.admin, json={"name": "x", "scopes": ["sudo"]}
    )
    assert bad_scope.status_code == 400
    assert "scopes" in bad_scope.json()["message"]
    past = await api.client.post(
        url, headers=api.admin, json={"name": "x", "scopes": ["api"], "expires_at": "2000-01-01"}
    )
    assert past.status_code == 400
    assert past.json() == {"message": {"expires_at": ["must be in the future"]}}
    missing = await api.client.post(
        "/api/v4/users/999999999/personal_access_tokens",
        headers=api.admin,
        json={"name": "x", "scopes": ["api"]},
    )
    assert missing.status_code == 404
