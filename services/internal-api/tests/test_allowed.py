"""/internal/allowed, exercised the way it is used: real `git push`es into the real storage,
whose pre-receive hook asks this API with the push's changes and quarantine, and direct calls
as the SSH gateway makes them."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

from internal_api_support import ZERO, Api, Person, push, storage_repo

from geogit.common.internal_api import AllowedResponse, RepositoryRef, StorageAccess
from geogit.common.paths import hashed_repository_path
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.models import SshKey
from geogit.storage.testing import StorageProcess, commit_all, git, make_work_tree, refs_of

PUSH_DENIED = "You are not allowed to push code to this project."
PROTECTED_DENIED = "You are not allowed to push code to protected branches on this project."
FORCE_DENIED = "You are not allowed to force push code to a protected branch on this project."
DELETE_DENIED = "You can only delete protected branches using the API."


async def _seeded(
    api: Api, storage: StorageProcess, work: Path
) -> tuple[Person, dict[str, Any], Path]:
    """A project whose owner pushed main (three commits) and release/1 through the hooks."""
    owner = await api.user("owner")
    project = await api.project(owner)
    tree = make_work_tree(work / "tree")
    git("branch", "release/1", cwd=tree)
    push(storage, storage_repo(project), tree, owner, "main", "release/1")
    return owner, project, tree


def _refs(storage: StorageProcess, project: dict[str, Any]) -> dict[str, str]:
    return refs_of(storage.path_of(storage_repo(project)))


async def test_pushes_through_the_hooks_are_policed(
    api: Api, storage: StorageProcess, work: Path
) -> None:
    """Refusals reach the git client's terminal and change nothing; a fast-forward onto a
    protected branch passes, which needs storage to see the commits still in quarantine."""
    owner, project, tree = await _seeded(api, storage, work)
    reporter, developer = await api.user("reporter"), await api.user("developer")
    await api.add_member(project, reporter, 20)
    await api.add_member(project, developer, 30)
    await api.protect(project, "main", push_access_level=40)
    repo = storage_repo(project)
    before = _refs(storage, project)
    commit_all(tree, "next")

    assert f"remote: geogit: {PUSH_DENIED}" in push(
        storage, repo, tree, reporter, "main", check=False
    )
    stderr = push(storage, repo, tree, developer, "main", check=False)
    assert f"remote: geogit: {PROTECTED_DENIED}" in stderr
    assert _refs(storage, project) == before
    push(storage, repo, tree, owner, "main")
    fast_forwarded = _refs(storage, project)["refs/heads/main"]
    assert fast_forwarded == git("rev-parse", "HEAD", cwd=tree).stdout.decode().strip()

    git("reset", "-q", "--hard", "HEAD~1", cwd=tree)
    commit_all(tree, "rewritten history")
    stderr = push(storage, repo, tree, owner, "+main", check=False)
    assert f"remote: geogit: {FORCE_DENIED}" in stderr
    assert _refs(storage, project)["refs/heads/main"] == fast_forwarded
    url = f"/api/v4/projects/{project['id']}/protected_branches/main"
    assert (await api.client.delete(url, headers=api.admin)).status_code == 204
    await api.protect(project, "main", push_access_level=40, allow_force_push=True)
    push(storage, repo, tree, owner, "+main")
    rewritten = git("rev-parse", "HEAD", cwd=tree).stdout.decode().strip()
    assert _refs(storage, project)["refs/heads/main"] == rewritten


async def test_ref_change_decisions(api: Api, storage: StorageProcess, work: Path) -> None:
    """The pre-receive questions asked directly, against real commits in the repository."""
    owner, project, tree = await _seeded(api, storage, work)
    developer, maintainer = await api.user("dev"), await api.user("maint")
    await api.add_member(project, developer, 30)
    await api.add_member(project, maintainer, 40)
    await api.protect(project, "main", push_access_level=40)
    await api.protect(project, "release/*", push_access_level=30)
    tip = git("rev-parse", "HEAD", cwd=tree).stdout.decode().strip()
    parent = git("rev-parse", "HEAD~1", cwd=tree).stdout.decode().strip()

    async def decide(person: Person, old: str, new: str, ref: str) -> tuple[int, str]:
        status, body = await _allowed(
            api,
            protocol="http",
            action="git-receive-pack",
            gl_id=person.gl_id,
            gl_repository=f"project-{project['id']}",
            changes=f"{old} {new} {ref}\n",
        )
        return status, body.get("message", "")

    assert await decide(developer, parent, tip, "refs/heads/main") == (403, PROTECTED_DENIED)
    assert await decide(maintainer, parent, tip, "refs/heads/main") == (200, "")
    assert await decide(maintainer, tip, parent, "refs/heads/main") == (403, FORCE_DENIED)
    assert await decide(developer, ZERO, tip, "refs/heads/release/9") == (200, "")
    assert await decide(developer, tip, parent, "refs/heads/release/1") == (403, FORCE_DENIED)
    assert await decide(developer, tip, parent, "refs/heads/feature") == (200, "")
    assert await decide(developer, tip, parent, "refs/tags/v1") == (200, "")
    assert await decide(owner, tip, ZERO, "refs/heads/release/1") == (403, DELETE_DENIED)
    status, message = await decide(developer, tip, ZERO, "refs/heads/release/1")
    assert status == 403 and "Only a project maintainer or owner" in message
    assert await decide(developer, tip, ZERO, "refs/heads/feature") == (200, "")
    for ref in ("refs/heads/HEAD", "refs/heads/-x", "refs/heads/@", f"refs/heads/{tip}"):
        status, message = await decide(developer, ZERO, tip, ref)
        assert status == 403 and message.startswith(f"refusing to create {ref}: "), message
        # One that exists already (made before this check) may be moved or deleted.
        assert await decide(developer, parent, tip, ref) == (200, "")
        assert await decide(developer, tip, ZERO, ref) == (200, "")
    status, message = await decide(developer, ZERO, tip, "refs/tags/HEAD")
    assert (status, message) == (
        403,
        "refusing to create refs/tags/HEAD: the name 'HEAD' is "
        "reserved: git reads it as the current commit",
    )
    await api.client.post(f"/api/v4/users/{developer.id}/block", headers=api.admin)
    assert await decide(developer, parent, tip, "refs/heads/feature") == (
        403,
        "Your account has been blocked.",
    )


async def _allowed(api: Api, **body: Any) -> tuple[int, dict[str, Any]]:
    response = await api.internal("allowed", {"protocol": "ssh", **body})
    return response.status_code, response.json()


async def test_ssh_answer_names_the_storage_and_repository(
    api: Api, db: SessionMaker, storage: StorageProcess, tmp_path: Path
) -> None:
    alice = await api.user("alice")
    project = await api.project(alice)
    key_file = tmp_path / "id"
    await asyncio.to_thread(
        subprocess.run,
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_file)],
        check=True,
    )
    key = await api.client.post(
        "/api/v4/user/keys",
        headers=alice.headers,
        json={"title": "k", "key": key_file.with_suffix(".pub").read_text()},
    )
    key_id = key.json()["id"]
    path = f"/{project['path_with_namespace']}.git"
    status, body = await _allowed(api, action="git-upload-pack", key_id=key_id, project=path)
    assert status == 200, body
    answer = AllowedResponse.model_validate(body)
    assert answer.status and answer.gl_id == f"user-{alice.id}"
    assert answer.gl_username == alice.username
    assert answer.gl_repository == f"project-{project['id']}"
    assert StorageAccess.model_validate(body["storage"]).address == storage.address
    assert RepositoryRef.model_validate(body["repository"]).relative_path == (
        hashed_repository_path(project["id"])
    )
    status, body = await _allowed(
        api, action="git-receive-pack", gl_id=f"key-{key_id}", project=path
    )
    assert status == 200 and body["gl_id"] == f"user-{alice.id}"

    async with db() as session:
        row = await session.get(SshKey, key_id)
        assert row is not None
        row.expires_at = row.created_at  # already in the past
        await session.commit()
    status, body = await _allowed(api, action="git-upload-pack", key_id=key_id, project=path)
    assert (status, body) == (401, {"status": False, "message": "Your SSH key has expired."})


async def test_allowed_refusals(api: Api) -> None:
    bob, eve = await api.user("bob"), await api.user("eve")
    private = await api.project(bob)
    public = await api.project(bob, visibility="public")
    guest = await api.user("guest")
    await api.add_member(private, guest, 10)
    cases = [
        ({"gl_id": eve.gl_id, "project": private["path_with_namespace"]}, "git-upload-pack", 404),
        (
            {"gl_id": guest.gl_id, "gl_repository": f"project-{private['id']}"},
            "git-upload-pack",
            403,
        ),
        ({"gl_id": eve.gl_id, "project": public["path_with_namespace"]}, "git-upload-pack", 200),
        ({"gl_id": eve.gl_id, "project": public["path_with_namespace"]}, "git-receive-pack", 403),
        ({"project": public["path_with_namespace"]}, "git-upload-archive", 200),
        (
            {"gl_id": "user-999999999", "project": public["path_with_namespace"]},
            "git-upload-pack",
            401,
        ),
        ({"gl_id": "root", "project": public["path_with_namespace"]}, "git-upload-pack", 401),
        ({"key_id": 999999999, "project": public["path_with_namespace"]}, "git-upload-pack", 401),
        ({"username": eve.username, "project": "../../etc"}, "git-upload-pack", 404),
        ({"username": eve.username, "gl_repository": "project-x"}, "git-upload-pack", 404),
    ]
    for identity, action, expected in cases:
        status, body = await _allowed(api, action=action, **identity)
        assert status == expected, (identity, action, body)
        assert body["status"] is (expected == 200)
    status, body = await _allowed(
        api,
        action="git-receive-pack",
        gl_id=bob.gl_id,
        gl_repository=f"project-{private['id']}",
        changes=f"{ZERO} not-an-oid refs/heads/main",
    )
    assert status == 400 and body["status"] is False


async def test_allowed_validates_its_body(api: Api) -> None:
    response = await api.internal("allowed", {"action": "git-upload-pack", "protocol": "ftp"})
    assert response.status_code == 400
    response = await api.internal(
        "allowed", {"action": "rm -rf", "protocol": "ssh", "project": "a/b"}
    )
    assert response.status_code == 400
    no_jwt = await api.client.post(
        "/api/v4/internal/allowed", json={"action": "git-upload-pack", "protocol": "ssh"}
    )
    assert no_jwt.status_code == 401
