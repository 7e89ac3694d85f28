"""/internal/pre_receive and /post_receive: a push is recorded as the project's next repository
sequence and a RepositoryUpdated event in the outbox, together or not at all."""

from __future__ import annotations

import shutil
from pathlib import Path

from internal_api_support import ZERO, Api, outbox_count, outbox_rows, push, storage_repo

from geogit.common.events import EVENT_TYPES
from geogit.common.proto.events.v1 import repository_pb2
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.models import OutboxEvent, Project, PushReferenceCounter
from geogit.storage.testing import StorageProcess, git, make_work_tree


async def _repository_events(db: SessionMaker, project_id: int) -> list[OutboxEvent]:
    rows = await outbox_rows(db, f"project-{project_id}")
    return [row for row in rows if row.stream == "repository"]


def _payload(row: OutboxEvent) -> repository_pb2.RepositoryUpdated:
    payload = EVENT_TYPES[row.type].FromString(row.payload)
    assert isinstance(payload, repository_pb2.RepositoryUpdated)
    return payload


async def test_a_push_becomes_a_repository_updated_event(
    api: Api, db: SessionMaker, storage: StorageProcess, work: Path
) -> None:
    alice = await api.user("alice")
    project = await api.project(alice)
    tree = make_work_tree(work / "tree")
    git("branch", "topic", cwd=tree)
    stderr = push(storage, storage_repo(project), tree, alice, "main", "topic")

    # No merge request hint: there is no merge request page to link to.
    assert "remote:" not in stderr, stderr
    events = await _repository_events(db, project["id"])
    assert [(e.type, e.aggregate_seq) for e in events] == [
        ("RepositoryCreated", 1),
        ("RepositoryUpdated", 2),
    ]
    updated = _payload(events[1])
    head = git("rev-parse", "HEAD", cwd=tree).stdout.decode().strip()
    assert updated.project_id == project["id"] and updated.seq == 2
    assert {(c.old_oid, c.new_oid, c.ref) for c in updated.changes} == {
        (ZERO, head, "refs/heads/main"),
        (ZERO, head, "refs/heads/topic"),
    }
    assert updated.checksum == storage.checksum(storage_repo(project))
    assert updated.checksum != "0" * 40
    assert updated.pushed_at.seconds > 0
    async with db() as session:
        row = await session.get(Project, project["id"])
        assert row is not None and row.repository_seq == 2


async def test_post_receive_assigns_consecutive_sequences(
    api: Api, db: SessionMaker, storage: StorageProcess
) -> None:
    bob = await api.user("bob")
    project = await api.project(bob, default_branch="develop")
    gl_repository = f"project-{project['id']}"
    change = f"{ZERO} {'a' * 40} refs/heads/develop\n{ZERO} {'c' * 40} refs/heads/feature/x"
    for expected_seq in (2, 3):
        response = await api.internal(
            "post_receive",
            {"gl_repository": gl_repository, "identifier": bob.gl_id, "changes": change},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["reference_counter_decreased"] is True
        assert body["messages"] == []
        latest = (await _repository_events(db, project["id"]))[-1]
        assert latest.aggregate_seq == expected_seq and _payload(latest).seq == expected_seq
        assert latest.sent_at is None  # the relay publishes it; post_receive never does
    assert len(_payload(latest).changes) == 2


async def test_a_first_push_of_another_branch_makes_it_the_default(
    api: Api, db: SessionMaker, storage: StorageProcess, work: Path
) -> None:
    bob = await api.user("bob")
    project = await api.project(bob)  # default branch "main", HEAD -> refs/heads/main
    repo = storage_repo(project)
    tree = make_work_tree(work / "tree", branch="trunk")
    stderr = push(storage, repo, tree, bob, "trunk")
    assert "merge request" not in stderr
    head = storage.path_of(repo) / "HEAD"
    assert head.read_text().strip() == "ref: refs/heads/trunk"
    shown = await api.client.get(f"/api/v4/projects/{project['id']}", headers=bob.headers)
    assert shown.json()["default_branch"] == "trunk"
    types = [e.type for e in await outbox_rows(db, f"project-{project['id']}")]
    assert types[-2:] == ["RepositoryUpdated", "ProjectUpdated"]

    # Once the default exists, new branches are just branches.
    git("branch", "topic", cwd=tree)
    assert "remote:" not in push(storage, repo, tree, bob, "topic")
    assert head.read_text().strip() == "ref: refs/heads/trunk"

    # The default can be moved to a branch that exists, and only to one.
    url = f"/api/v4/projects/{project['id']}"
    moved = await api.client.put(url, headers=bob.headers, json={"default_branch": "topic"})
    assert moved.status_code == 200 and moved.json()["default_branch"] == "topic"
    assert head.read_text().strip() == "ref: refs/heads/topic"
    missing = await api.client.put(url, headers=bob.headers, json={"default_branch": "nope"})
    assert missing.status_code == 400
    assert missing.json() == {"message": {"default_branch": ["branch 'nope' does not exist"]}}
    assert head.read_text().strip() == "ref: refs/heads/topic"


async def test_nothing_is_recorded_when_post_receive_fails(
    api: Api, db: SessionMaker, storage: StorageProcess
) -> None:
    carol = await api.user("carol")
    project = await api.project(carol)
    gl_repository = f"project-{project['id']}"
    before = await outbox_count(db)
    malformed = await api.internal(
        "post_receive",
        {"gl_repository": gl_repository, "identifier": "user-1", "changes": "garbage"},
    )
    assert malformed.status_code == 400
    unknown = await api.internal(
        "post_receive", {"gl_repository": "project-999999999", "identifier": "x", "changes": ""}
    )
    assert unknown.status_code == 404
    # Storage cannot checksum a repository that vanished: the sequence must not move either.
    shutil.rmtree(storage.path_of(storage_repo(project)))
    failed = await api.internal(
        "post_receive",
        {"gl_repository": gl_repository, "identifier": "user-1", "changes": ""},
    )
    assert failed.status_code == 502
    assert "NOT_FOUND" in failed.json()["message"]
    assert await outbox_count(db) == before
    async with db() as session:
        row = await session.get(Project, project["id"])
        assert row is not None and row.repository_seq == 1


async def test_a_push_of_many_refs_is_recorded(api: Api, db: SessionMaker) -> None:
    """Far more than the admin API's 1 MiB body cap: the hooks' calls have their own."""
    erin = await api.user("erin")
    project = await api.project(erin)
    changes = "".join(f"{ZERO} {'a' * 40} refs/tags/v{i}\n" for i in range(30_000))
    assert len(changes) > 2 * 1024 * 1024
    response = await api.internal(
        "post_receive",
        {"gl_repository": f"project-{project['id']}", "identifier": erin.gl_id, "changes": changes},
    )
    assert response.status_code == 200, response.text
    latest = (await _repository_events(db, project["id"]))[-1]
    assert len(_payload(latest).changes) == 30_000


async def test_pre_receive(api: Api) -> None:
    dave = await api.user("dave")
    project = await api.project(dave)
    ok = await api.internal("pre_receive", {"gl_repository": f"project-{project['id']}"})
    assert ok.json() == {"reference_counter_increased": True}
    missing = await api.internal("pre_receive", {"gl_repository": "project-0"})
    assert missing.status_code == 404


async def _push_count(db: SessionMaker, project_id: int) -> int:
    async with db() as session:
        counter = await session.get(PushReferenceCounter, project_id)
    return counter.count if counter is not None else 0


async def test_allowed_counts_only_a_push_it_grants(api: Api, db: SessionMaker) -> None:
    """pre-receive's one round trip: `count_push` counts the push if, and only if, allowed."""
    owner, stranger = await api.user("erin"), await api.user("frank")
    project = await api.project(owner)

    def ask(user_id: int, action: str) -> dict[str, object]:
        return {
            "action": action,
            "protocol": "http",
            "gl_id": f"user-{user_id}",
            "gl_repository": f"project-{project['id']}",
            "changes": "_any",
            "count_push": True,
        }

    refused = await api.internal("allowed", ask(stranger.id, "git-receive-pack"))
    assert refused.status_code == 404 and refused.json()["status"] is False
    fetch = await api.internal("allowed", ask(owner.id, "git-upload-pack"))
    assert fetch.json()["reference_counter_increased"] is False
    assert await _push_count(db, project["id"]) == 0

    granted = await api.internal("allowed", ask(owner.id, "git-receive-pack"))
    assert granted.json()["reference_counter_increased"] is True
    assert await _push_count(db, project["id"]) == 1
