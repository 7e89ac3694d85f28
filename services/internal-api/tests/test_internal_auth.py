"""Every internal endpoint refuses a missing, forged, expired or over-long-lived JWT with 401
and changes nothing."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from internal_api_support import Api, internal_headers, outbox_count

from geogit.common.tokens import API_REQUEST_HEADER, INTERNAL_API_AUDIENCE, issue_token
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.models import Project
from geogit.storage.testing import API_SECRET

ENDPOINTS = [
    ("POST", "/api/v4/internal/allowed", {"action": "git-upload-pack", "protocol": "ssh"}),
    ("POST", "/api/v4/internal/pre_receive", {"gl_repository": "project-1"}),
    (
        "POST",
        "/api/v4/internal/post_receive",
        {"gl_repository": "project-1", "identifier": "user-1", "changes": ""},
    ),
    (
        "POST",
        "/api/v4/internal/git_http/authorize",
        {"project": "a/b", "service": "git-upload-pack"},
    ),
    ("GET", "/api/v4/internal/authorized_keys?key=AAAA", None),
    ("GET", "/api/v4/geo/proxy", None),
    ("GET", "/api/v4/geo/events", None),
]


def _claims(**overrides: object) -> dict[str, object]:
    now = time.time()
    return {"iss": "forger", "aud": INTERNAL_API_AUDIENCE, "iat": now, "exp": now + 30, **overrides}


def _unsigned(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


FORGED = {
    "missing": None,
    "garbage": "not-a-jwt",
    "wrong secret": issue_token("another-secret-" + "x" * 32, "x", INTERNAL_API_AUDIENCE),
    "wrong audience": issue_token(API_SECRET, "x", "geogit-storage"),
    "expired": jwt.encode(
        _claims(iat=int(time.time()) - 600, exp=int(time.time()) - 300), API_SECRET
    ),
    "lives too long": issue_token(API_SECRET, "x", INTERNAL_API_AUDIENCE, ttl_seconds=3600),
    "alg none": _unsigned(_claims()),
    "HS512": jwt.encode(_claims(), API_SECRET * 2, algorithm="HS512"),
    "no exp": jwt.encode({k: v for k, v in _claims().items() if k != "exp"}, API_SECRET),
}


@pytest.mark.parametrize("case", list(FORGED))
async def test_forged_internal_tokens_are_refused(api: Api, db: SessionMaker, case: str) -> None:
    token = FORGED[case]
    headers = {} if token is None else {API_REQUEST_HEADER: token}
    before = await outbox_count(db)
    for method, path, body in ENDPOINTS:
        response = await api.client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (case, path, response.text)
        message = response.json()["message"]
        if token is None and path == "/api/v4/geo/events":
            # Users reach it through the edge: they are not told of internal tokens.
            assert message == "401 Unauthorized"
        else:
            assert message.startswith(f"401 Unauthorized - {API_REQUEST_HEADER}: "), message
    assert await outbox_count(db) == before


async def test_a_valid_token_opens_them(api: Api, db: SessionMaker) -> None:
    alice = await api.user("alice")
    project = await api.project(alice)
    response = await api.client.post(
        "/api/v4/internal/post_receive",
        json={"gl_repository": f"project-{project['id']}", "identifier": "user-1", "changes": ""},
        headers=internal_headers(),
    )
    assert response.status_code == 200
    async with db() as session:
        row = await session.get(Project, project["id"])
        assert row is not None and row.repository_seq == 2
    proxy = await api.client.get("/api/v4/geo/proxy", headers=internal_headers())
    assert proxy.json() == {"geo_epoch": 1}  # a primary: nothing to proxy to
    # The admin API's token does not open internal endpoints.
    refused = await api.client.get("/api/v4/geo/proxy", headers=api.admin)
    assert refused.status_code == 401
