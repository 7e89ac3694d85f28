"""POST /internal/git_http/authorize: the edge-proxy's decisions before smart HTTP."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from internal_api_support import Api, Person, basic

from geogit.common.internal_api import GitHttpServe
from geogit.common.paths import hashed_repository_path
from geogit.common.proto.storage.v1 import repository_pb2, repository_pb2_grpc, shared_pb2
from geogit.common.storage_client import storage_metadata, sync_channel
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.models import PushReferenceCounter
from geogit.storage.testing import StorageProcess

UPLOAD, RECEIVE = "git-upload-pack", "git-receive-pack"


async def _authorize(
    api: Api, project: dict[str, Any] | str, service: str, authorization: str = ""
) -> tuple[int, dict[str, Any]]:
    path = project if isinstance(project, str) else project["path_with_namespace"]
    response = await api.internal(
        "git_http/authorize",
        {"project": path, "service": service, "authorization": authorization},
    )
    return response.status_code, response.json()


async def test_owner_is_served_with_a_working_storage_token(
    api: Api, storage: StorageProcess
) -> None:
    alice = await api.user("alice")
    project = await api.project(alice)
    status, body = await _authorize(api, project, RECEIVE, basic(alice))
    assert status == 200, body
    serve = GitHttpServe.model_validate(body)
    assert serve.storage.address == storage.address and serve.storage.name == "default"
    assert serve.gl_id == f"user-{alice.id}" and serve.gl_username == alice.username
    assert serve.gl_repository == f"project-{project['id']}"
    assert serve.repository.relative_path == hashed_repository_path(project["id"])
    # The minted token is accepted by the real storage.
    with sync_channel(serve.storage.address) as channel:
        exists = repository_pb2_grpc.RepositoryServiceStub(channel).RepositoryExists(
            repository_pb2.RepositoryExistsRequest(
                repository=shared_pb2.Repository(
                    storage_name="default", relative_path=serve.repository.relative_path
                )
            ),
            metadata=storage_metadata(serve.storage.token),
        )
    assert exists.exists


async def test_public_projects_are_readable_anonymously(api: Api) -> None:
    bob = await api.user("bob")
    project = await api.project(bob, visibility="public")
    status, body = await _authorize(api, project, UPLOAD)
    assert status == 200 and body["gl_id"] == "" and body["action"] == "serve"
    status, body = await _authorize(api, project, RECEIVE)
    assert (status, body) == (401, {"message": "HTTP Basic: Access denied"})
    # The .git suffix in the URL's project path is tolerated.
    status, _ = await _authorize(api, project["path_with_namespace"] + ".git", UPLOAD)
    assert status == 200


async def test_private_projects_ask_for_credentials_then_hide(api: Api) -> None:
    carol, dave = await api.user("carol"), await api.user("dave")
    project = await api.project(carol)
    assert await _authorize(api, project, UPLOAD) == (401, {"message": "HTTP Basic: Access denied"})
    status, body = await _authorize(api, project, UPLOAD, basic(dave))
    assert (status, body) == (
        404,
        {"message": "The project you were looking for could not be found."},
    )
    # Anonymous requests for projects that do not exist look like private ones: 401.
    assert (await _authorize(api, f"{carol.username}/nope", UPLOAD))[0] == 401
    assert (await _authorize(api, f"{carol.username}/nope", UPLOAD, basic(dave)))[0] == 404


async def test_internal_projects_need_any_account(api: Api) -> None:
    erin, frank = await api.user("erin"), await api.user("frank")
    project = await api.project(erin, visibility="internal")
    assert (await _authorize(api, project, UPLOAD))[0] == 401
    assert (await _authorize(api, project, UPLOAD, basic(frank)))[0] == 200
    status, body = await _authorize(api, project, RECEIVE, basic(frank))
    assert (status, body["message"]) == (403, "You are not allowed to push code to this project.")


@pytest.mark.parametrize(
    ("level", "fetch", "push"), [(10, 403, 403), (20, 200, 403), (30, 200, 200), (40, 200, 200)]
)
async def test_member_levels(api: Api, level: int, fetch: int, push: int) -> None:
    owner, member = await api.user("owner"), await api.user("member")
    project = await api.project(owner)
    await api.add_member(project, member, level)
    assert (await _authorize(api, project, UPLOAD, basic(member)))[0] == fetch
    status, body = await _authorize(api, project, RECEIVE, basic(member))
    assert status == push
    if level == 10:
        assert body["message"] == "You are not allowed to download code from this project."
    elif push == 403:
        assert body["message"] == "You are not allowed to push code to this project."


async def test_token_scopes_bearer_and_bad_credentials(api: Api) -> None:
    grace = await api.user("grace")
    project = await api.project(grace)
    reader = Person(grace.id, grace.username, await api.token(grace.id, ["read_repository"]))
    writer = Person(grace.id, grace.username, await api.token(grace.id, ["write_repository"]))
    assert (await _authorize(api, project, UPLOAD, basic(reader)))[0] == 200
    assert (await _authorize(api, project, RECEIVE, basic(reader)))[0] == 403
    assert (await _authorize(api, project, RECEIVE, basic(writer)))[0] == 200
    assert (await _authorize(api, project, UPLOAD, f"Bearer {grace.token}"))[0] == 200
    # The username beside a token is not checked, as on GitLab (e.g. "oauth2").
    oauth = "Basic " + base64.b64encode(f"oauth2:{grace.token}".encode()).decode()
    assert (await _authorize(api, project, UPLOAD, oauth))[0] == 200
    for header in (
        "Basic " + base64.b64encode(f"{grace.username}:wrong".encode()).decode(),
        "Basic " + base64.b64encode(grace.username.encode()).decode(),
        "Basic !!!not-base64!!!",
        "Digest abc",
        "Bearer ",
    ):
        assert await _authorize(api, project, UPLOAD, header) == (
            401,
            {"message": "HTTP Basic: Access denied"},
        ), header


async def test_revoked_tokens_and_blocked_users_are_refused(api: Api) -> None:
    heidi = await api.user("heidi")
    project = await api.project(heidi, visibility="public")
    tokens = await api.client.get("/api/v4/personal_access_tokens", headers=heidi.headers)
    await api.client.delete(
        f"/api/v4/personal_access_tokens/{tokens.json()[0]['id']}", headers=heidi.headers
    )
    # Even on a public project: wrong credentials are an error, not anonymity.
    assert (await _authorize(api, project, UPLOAD, basic(heidi)))[0] == 401

    ivan = await api.user("ivan")
    await api.client.post(f"/api/v4/users/{ivan.id}/block", headers=api.admin)
    status, body = await _authorize(api, project, UPLOAD, basic(ivan))
    assert (status, body) == (403, {"message": "Your account has been blocked."})


async def test_malformed_requests(api: Api) -> None:
    judy = await api.user("judy")
    for path in ("../etc/passwd", "a/b/c", "/abs/path", "", "x/..", f"{judy.username}/.."):
        status, _ = await _authorize(api, path, UPLOAD, basic(judy))
        assert status == 404, path
    response = await api.internal(
        "git_http/authorize", {"project": "a/b", "service": "git-upload-archive"}
    )
    assert response.status_code == 400
    unknown = await api.internal(
        "git_http/authorize", {"project": "a/b", "service": UPLOAD, "sudo": True}
    )
    assert unknown.status_code == 400


async def test_a_push_on_its_way_is_counted_but_not_its_advertisement_or_gits_probe(
    api: Api, db: SessionMaker
) -> None:
    """A storage move waits for the pushes counted here to reach pre-receive: git's probe
    POST (a lone flush-pkt before a large push) never does, so it is not counted."""
    alice = await api.user("alice")
    project = await api.project(alice)

    async def authorize(path: str, probe: bool = False) -> int:
        response = await api.internal(
            "git_http/authorize",
            {
                "project": project["path_with_namespace"],
                "service": RECEIVE,
                "authorization": basic(alice),
                "path": f"/{project['path_with_namespace']}.git/{path}",
                "probe": probe,
            },
        )
        assert response.status_code == 200, response.text
        async with db() as session:
            counter = await session.get(PushReferenceCounter, project["id"])
        return counter.authorized if counter is not None else 0

    assert await authorize("info/refs?service=git-receive-pack") == 0
    assert await authorize("git-receive-pack", probe=True) == 0
    assert await authorize("git-receive-pack") == 1
