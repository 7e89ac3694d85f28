"""Text PostgreSQL cannot store (NUL, lone surrogates) is a 400 naming the field, for every
kind of string the API takes; the request changes nothing and the keep-alive connection it
came on serves the next request (a 500 used to close it under the edge's pool)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from internal_api_support import Api, Person, ServerInfo, outbox_count
from sqlalchemy import func, select

from geogit.common.http_testing import OneConnection
from geogit.common.text import UNSTORABLE_MESSAGE
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.models import (
    PersonalAccessToken,
    Project,
    ProtectedBranch,
    SshKey,
    User,
)

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHyR1OFQlR5gwOfKNL/6XIl2anZMpNOm3uz55icgc6cy t@h"
BAD = {"nul": "a\x00b", "surrogate": "a\ud800b"}

USER = {"username": "u{bad}", "email": "u@example.com", "name": "U", "password": "12345678"}
# (method, path, body or None, the field named in the answer); {bad} is the unstorable text.
BODIES = [
    ("POST", "/api/v4/users", {**USER, "username": "{bad}"}, "username"),
    ("POST", "/api/v4/users", {**USER, "username": "fine", "name": "{bad}"}, "name"),
    (
        "POST",
        "/api/v4/users",
        {**USER, "username": "fine", "password": "{bad}xxxxxxxx"},
        "password",
    ),
    ("POST", "/api/v4/projects", {"name": "{bad}"}, "name"),
    ("POST", "/api/v4/projects", {"path": "p", "description": "{bad}"}, "description"),
    ("POST", "/api/v4/projects", {"path": "p", "default_branch": "{bad}"}, "default_branch"),
    ("PUT", "/api/v4/projects/{project}", {"description": "{bad}"}, "description"),
    ("POST", "/api/v4/user/keys", {"title": "{bad}", "key": KEY}, "title"),
    ("POST", "/api/v4/user/keys", {"title": "t", "key": KEY + "{bad}"}, "key"),
    (
        "POST",
        "/api/v4/users/{user}/personal_access_tokens",
        {"name": "{bad}", "scopes": ["api"]},
        "name",
    ),
    ("POST", "/api/v4/projects/{project}/protected_branches", {"name": "{bad}"}, "name"),
]
QUERIES = [
    ("GET", "/api/v4/projects?search=%00", "search"),
    ("GET", "/api/v4/users?search=%00", "search"),
    ("GET", "/api/v4/users?username=a%00", "username"),
    ("PUT", "/api/v4/projects/{project}/transfer?namespace=%00", "namespace"),
    ("GET", "/api/v4/projects/a%00b", "id"),
    ("GET", "/api/v4/projects/{project}/protected_branches/%00", "name"),
]


def _fill(value: Any, bad: str, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: _fill(item, bad, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, bad, names) for item in value]
    return value.replace("{bad}", bad).format(**names) if isinstance(value, str) else value


async def _rows(db: SessionMaker) -> tuple[int, ...]:
    async with db() as session:
        counts = []
        for model in (User, Project, SshKey, PersonalAccessToken, ProtectedBranch):
            counts.append(int(await session.scalar(select(func.count()).select_from(model)) or 0))
        return (*counts, await outbox_count(db))


@pytest.fixture
async def owner(api: Api) -> Person:
    return await api.user("nul")


@pytest.fixture
def connection(server: ServerInfo, owner: Person) -> Iterator[OneConnection]:
    one = OneConnection(server.url, owner.headers)
    yield one
    one.close()


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize(("method", "path", "body", "field"), BODIES)
async def test_unstorable_text_in_a_body_is_refused(
    api: Api,
    db: SessionMaker,
    owner: Person,
    connection: OneConnection,
    kind: str,
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    project = await api.project(owner)
    names = {"project": str(project["id"]), "user": str(owner.id)}
    admin = api.admin if path.startswith("/api/v4/users") else {}
    before = await _rows(db)
    answer = connection.request(
        method, _fill(path, "", names), _fill(body, BAD[kind], names), headers=admin
    )
    assert answer.status == 400, answer.body
    assert answer.json() == {
        "message": f"400 Bad request - {field} is invalid: {UNSTORABLE_MESSAGE}"
    }
    assert await _rows(db) == before
    # The same connection still serves the next caller.
    assert connection.request("GET", f"/api/v4/projects/{project['id']}").status == 200


@pytest.mark.parametrize(("method", "path", "field"), QUERIES)
async def test_nul_in_a_query_or_path_is_refused(
    api: Api,
    db: SessionMaker,
    owner: Person,
    connection: OneConnection,
    method: str,
    path: str,
    field: str,
) -> None:
    project = await api.project(owner)
    before = await _rows(db)
    answer = connection.request(method, path.format(project=project["id"]), headers=api.admin)
    assert answer.status == 400, answer.body
    assert answer.json() == {
        "message": f"400 Bad request - {field} is invalid: {UNSTORABLE_MESSAGE}"
    }
    assert await _rows(db) == before
    assert connection.request("GET", f"/api/v4/projects/{project['id']}").status == 200
