"""The common internal-API client against a small stand-in API served by a real uvicorn: what
each answer becomes (a typed answer, a `Denied`, or which error), and what every call carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn

from geogit.common.internal_api import (
    AllowedRequest,
    AllowedResponse,
    GeoProxyToPrimary,
    GitHttpAuthorizeRequest,
    GitHttpServe,
    PostReceiveRequest,
    RegistryEntry,
)
from geogit.common.internal_api_client import (
    ApiUnavailable,
    Denied,
    InternalApiClient,
    InternalApiError,
)
from geogit.common.logging import CORRELATION_HEADER, bound_correlation_id
from geogit.common.net import free_port
from geogit.common.tokens import API_REQUEST_HEADER, INTERNAL_API_AUDIENCE, verify_token

SECRET = "test-secret-for-the-internal-api-client"
ISSUER = "geogit-test"
JSON = "application/json"


@dataclass
class Answer:
    status: int
    body: Any = None
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StandIn:
    """Answers each (method, path) as the test says, and keeps every request it saw."""

    answers: dict[tuple[str, str], Callable[[Seen], Answer]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def on(self, method: str, path: str, *answers: Answer) -> None:
        queue = list(answers)
        self.answers[(method, path)] = lambda _: queue.pop(0) if len(queue) > 1 else queue[0]

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        request = Seen(
            scope["method"], scope["path"], scope["query_string"].decode(), headers, body
        )
        self.seen.append(request)
        handler = self.answers.get((request.method, request.path))
        answer = handler(request) if handler else Answer(404, {"detail": "Not Found"})
        await asyncio.sleep(answer.delay)
        content = answer.body if isinstance(answer.body, bytes) else b""
        if answer.body is not None and not isinstance(answer.body, bytes):
            content = json.dumps(answer.body).encode()
        head = {"content-type": answer.content_type, **answer.headers}
        raw = [(k.encode(), v.encode()) for k, v in head.items()]
        await send({"type": "http.response.start", "status": answer.status, "headers": raw})
        await send({"type": "http.response.body", "body": content})


@pytest.fixture
async def api() -> AsyncIterator[tuple[StandIn, str]]:
    stand_in = StandIn()
    config = uvicorn.Config(stand_in, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    sock = config.bind_socket()
    sock.listen()
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield stand_in, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def client(api: tuple[StandIn, str]) -> AsyncIterator[InternalApiClient]:
    client = InternalApiClient(api[1] + "/", SECRET, ISSUER, timeout=2.0)
    yield client
    await client.aclose()


@pytest.fixture
def stand_in(api: tuple[StandIn, str]) -> StandIn:
    return api[0]


AUTHORIZE = "/api/v4/internal/git_http/authorize"
ALLOWED = "/api/v4/internal/allowed"
KEYS = "/api/v4/internal/authorized_keys"
QUESTION = GitHttpAuthorizeRequest(project="alice/demo", service="git-upload-pack")
SSH_QUESTION = AllowedRequest(action="git-upload-pack", protocol="ssh", key_id=7, project="a/b")
UNAVAILABLE = Answer(
    503, {"message": "the site's database is unavailable"}, headers={"retry-after": "5"}
)
SERVE = {
    "action": "serve",
    "storage": {"name": "default", "address": "127.0.0.1:1", "token": "t"},
    "repository": {
        "storage_name": "default",
        "relative_path": "@hashed/aa/bb/x.git",
        "gl_repository": "project-1",
        "gl_project_path": "alice/demo",
    },
    "gl_repository": "project-1",
}


async def test_every_call_is_signed_and_carries_the_correlation_id(
    client: InternalApiClient, stand_in: StandIn
) -> None:
    stand_in.on("POST", AUTHORIZE, Answer(200, SERVE))
    with bound_correlation_id("trace-42"):
        answer = await client.authorize(QUESTION)
    assert isinstance(answer, GitHttpServe) and answer.gl_repository == "project-1"
    (seen,) = stand_in.seen
    claims = verify_token(seen.headers[API_REQUEST_HEADER.lower()], SECRET, INTERNAL_API_AUDIENCE)
    assert claims["iss"] == ISSUER
    assert seen.headers[CORRELATION_HEADER.lower()] == "trace-42"
    assert seen.headers["content-type"] == JSON
    assert GitHttpAuthorizeRequest.model_validate_json(seen.body) == QUESTION


@pytest.mark.parametrize(("timeout", "lifetime"), [(2.0, 30), (45.0, 45), (60.0, 60), (600.0, 60)])
async def test_the_token_outlives_the_call(
    api: tuple[StandIn, str], timeout: float, lifetime: int
) -> None:
    """A call that waits at a busy API for most of its timeout must not arrive expired (it would
    be a misleading 401); no token lives longer than a verifier accepts."""
    stand_in, url = api
    stand_in.on("GET", "/api/v4/geo/proxy", Answer(200, {}))
    client = InternalApiClient(url, SECRET, ISSUER, timeout=timeout)
    try:
        await client.geo_proxy()
    finally:
        await client.aclose()
    claims = verify_token(
        stand_in.seen[0].headers[API_REQUEST_HEADER.lower()], SECRET, INTERNAL_API_AUDIENCE
    )
    assert claims["exp"] - claims["iat"] == lifetime


async def test_without_a_correlation_id_none_is_sent(
    client: InternalApiClient, stand_in: StandIn
) -> None:
    stand_in.on("GET", "/api/v4/geo/proxy", Answer(200, {}))
    await client.geo_proxy()
    assert CORRELATION_HEADER.lower() not in stand_in.seen[0].headers


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_refusal_with_a_message_is_denied(
    client: InternalApiClient, stand_in: StandIn, status: int
) -> None:
    stand_in.on("POST", AUTHORIZE, Answer(status, {"message": "HTTP Basic: Access denied"}))
    assert await client.authorize(QUESTION) == Denied(status, "HTTP Basic: Access denied")


@pytest.mark.parametrize(
    "answer",
    [
        Answer(401, {"detail": "token expired"}),  # our JWT refused, not the user
        Answer(200, {"action": "shrug"}),
        Answer(200, SERVE, content_type="text/html"),
        Answer(500, {"message": "boom"}),
        Answer(503, b"<html>bad gateway</html>", content_type="text/html"),  # not the API's own
    ],
    ids=["foreign-401", "unknown-action", "not-json", "500", "foreign-503"],
)
async def test_answers_outside_the_contract_are_bad_answers(
    client: InternalApiClient, stand_in: StandIn, answer: Answer
) -> None:
    stand_in.on("POST", AUTHORIZE, answer)
    with pytest.raises(InternalApiError) as raised:
        await client.authorize(QUESTION)
    assert type(raised.value) is InternalApiError
    assert raised.value.kind == "bad_answer"


async def test_the_apis_own_503_is_unavailable_with_its_message_and_retry_after(
    client: InternalApiClient, stand_in: StandIn
) -> None:
    for method, path in [("POST", AUTHORIZE), ("POST", ALLOWED), ("GET", KEYS)]:
        stand_in.on(method, path, UNAVAILABLE)
    calls = [
        client.authorize(QUESTION),
        client.allowed(SSH_QUESTION),
        client.authorized_key(b"blob"),
    ]
    for call in calls:
        with pytest.raises(ApiUnavailable) as raised:
            await call
        assert str(raised.value) == "the site's database is unavailable"
        assert (raised.value.retry_after, raised.value.status) == ("5", 503)


async def test_an_api_that_is_down_or_slow_is_unavailable_or_a_timeout(
    stand_in: StandIn, api: tuple[StandIn, str]
) -> None:
    down = InternalApiClient(f"http://127.0.0.1:{free_port()}", SECRET, ISSUER, timeout=2.0)
    with pytest.raises(InternalApiError, match="internal API unreachable") as raised:
        await down.post_receive(
            PostReceiveRequest(gl_repository="project-1", identifier="user-1", changes="")
        )
    assert (raised.value.kind, raised.value.status) == ("unavailable", None)
    assert not await down.reachable()
    await down.aclose()

    stand_in.on("GET", "/api/v4/geo/proxy", Answer(200, {}, delay=1.0))
    slow = InternalApiClient(api[1], SECRET, ISSUER, timeout=0.2)
    with pytest.raises(InternalApiError) as raised:
        await slow.geo_proxy()
    assert raised.value.kind == "timeout"
    await slow.aclose()


async def test_allowed_grants_refuses_or_sends_to_the_primary(
    client: InternalApiClient, stand_in: StandIn
) -> None:
    proxy = {
        "payload": {
            "action": "geo_proxy_to_primary",
            "data": {"primary_repo": "http://primary/a/b.git", "request_headers": {}},
        }
    }
    stand_in.on(
        "POST",
        ALLOWED,
        Answer(200, {"status": True, "gl_id": "user-1", "storage": {"name": "default"}}),
        Answer(403, {"status": False, "message": "You are not allowed to push code."}),
        Answer(200, {"status": False}),
        Answer(300, proxy),
        Answer(300, {"status": True}),
    )
    granted = await client.allowed(SSH_QUESTION)
    assert isinstance(granted, AllowedResponse) and granted.gl_id == "user-1"
    assert (granted.model_extra or {})["storage"] == {"name": "default"}
    assert await client.allowed(SSH_QUESTION) == Denied(403, "You are not allowed to push code.")
    assert await client.allowed(SSH_QUESTION) == Denied(200, "access denied")
    to_primary = await client.allowed(SSH_QUESTION)
    assert isinstance(to_primary, GeoProxyToPrimary)
    assert to_primary.payload.data.primary_repo == "http://primary/a/b.git"
    with pytest.raises(InternalApiError, match="without a Geo proxy action"):
        await client.allowed(SSH_QUESTION)


async def test_refusals_of_allowed_in_any_shape_are_denied(
    client: InternalApiClient, stand_in: StandIn
) -> None:
    """The hooks and the SSH gateway show the API's words: a refusal without `status` (the
    internal-JWT check's 401), one without a message, and a 400 in the answer's own shape."""
    stand_in.on(
        "POST",
        ALLOWED,
        Answer(401, {"message": "401 Unauthorized - Geogit-Api-Request: token expired"}),
        Answer(403, {}),
        Answer(400, {"status": False, "message": "400 Bad request - changes are malformed"}),
        Answer(400, {"status": True}),
    )
    expired = "401 Unauthorized - Geogit-Api-Request: token expired"
    assert await client.allowed(SSH_QUESTION) == Denied(401, expired)
    assert await client.allowed(SSH_QUESTION) == Denied(403, "access denied (403)")
    malformed = "400 Bad request - changes are malformed"
    assert await client.allowed(SSH_QUESTION) == Denied(400, malformed)
    with pytest.raises(InternalApiError, match="answered 400"):
        await client.allowed(SSH_QUESTION)


async def test_an_unknown_key_is_none(client: InternalApiClient, stand_in: StandIn) -> None:
    known = {"id": 3, "key": "ssh-ed25519 AAAA", "user_id": 1, "username": "alice"}
    stand_in.on("GET", KEYS, Answer(200, known), Answer(404, {"message": "not found"}))
    found = await client.authorized_key(b"\x00key")
    assert found is not None and found.username == "alice"
    assert stand_in.seen[0].query == "key=AGtleQ%3D%3D"
    assert await client.authorized_key(b"\x00other") is None


async def test_the_replicators_calls(client: InternalApiClient, stand_in: StandIn) -> None:
    replicable = {
        "project_id": 1,
        "full_path": "alice/demo",
        "storage_shard": "default",
        "disk_path": "@hashed/aa/bb/x.git",
        "default_branch": "main",
        "seq": 4,
        "checksum": "0" * 40,
    }
    stand_in.on("GET", "/api/v4/internal/geo/replicables/1", Answer(200, replicable))
    stand_in.on("GET", "/api/v4/internal/geo/replicables/2", Answer(404, {"message": "gone"}))
    stand_in.on(
        "GET",
        "/api/v4/internal/geo/replicables",
        Answer(200, {"replicables": [replicable], "next_after": 1}),
        Answer(200, {"replicables": [], "orphans": [9]}),
    )
    stand_in.on("PUT", "/api/v4/internal/geo/registry/1", Answer(204))
    stand_in.on("DELETE", "/api/v4/internal/geo/registry/1", Answer(500, {"message": "boom"}))
    stand_in.on("POST", "/api/v4/internal/geo/reports", Answer(400, {"message": "refused"}))

    found = await client.replicable(1)
    assert found is not None and found.seq == 4
    assert await client.replicable(2) is None
    pages = [page async for page in client.pages()]
    assert [page.orphans for page in pages] == [[], [9]]
    assert [seen.query for seen in stand_in.seen[-2:]] == ["after=0&limit=500", "after=1&limit=500"]
    await client.save(1, RegistryEntry(state="synced", synced_seq=4))
    assert RegistryEntry.model_validate_json(stand_in.seen[-1].body).state == "synced"
    with pytest.raises(InternalApiError, match="internal API answered 500: boom") as failed:
        await client.forget(1)
    assert failed.value.status == 500
    with pytest.raises(InternalApiError) as refused:
        await client.report("ReplicaSynced", 1, "AAAA")
    assert refused.value.status == 400


async def test_reachable_asks_the_liveness_probe(
    client: InternalApiClient, stand_in: StandIn
) -> None:
    assert not await client.reachable()  # the stand-in has no /-/liveness yet: 404
    stand_in.on("GET", "/-/liveness", Answer(200, {"status": "ok"}))
    assert await client.reachable()


async def test_denied_can_be_raised_through_a_context_manager() -> None:
    """The API raises Denied inside session and push-queue contexts, which set its traceback."""

    @contextlib.asynccontextmanager
    async def context() -> AsyncIterator[None]:
        yield

    with pytest.raises(Denied) as raised:
        async with context():
            raise Denied(403, "You are not allowed to push code.")
    assert raised.value == Denied(403, "You are not allowed to push code.")
    assert str(raised.value) == "You are not allowed to push code."
