"""Pushes that must change nothing: refused by the internal API, or cut off halfway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from geogit.storage.testing import (
    StorageProcess,
    commit_all,
    git,
    loose_and_packed_objects,
    make_work_tree,
    refs_of,
)


def _quarantines(repo_path: Path) -> list[Path]:
    return list((repo_path / "objects").glob("*incoming-*"))


def _seed(storage: StorageProcess, work: Path):
    repo = storage.create()
    tree = make_work_tree(work / "src")
    git("push", "-q", storage.url(repo), "main", cwd=tree, env=storage.git_env(repo))
    return repo, tree


def test_refused_push_changes_nothing_and_explains(
    storage: StorageProcess, work: Path, internal_api
) -> None:
    repo, tree = _seed(storage, work)
    path = storage.path_of(repo)
    refs_before, objects_before = refs_of(path), loose_and_packed_objects(path)
    internal_api.reset()
    internal_api.policy.refused_refs = {"refs/heads/main"}
    internal_api.policy.refusal_message = (
        "You are not allowed to push code to protected branches on this project."
    )
    (tree / "big.bin").write_bytes(os.urandom(256 * 1024))
    commit_all(tree, "refused change")

    result = git(
        "push", storage.url(repo), "main", cwd=tree, env=storage.git_env(repo), check=False
    )

    assert result.returncode != 0
    assert (
        b"remote: geogit: You are not allowed to push code to protected branches" in result.stderr
    )
    assert b"pre-receive hook declined" in result.stderr
    assert refs_of(path) == refs_before
    assert loose_and_packed_objects(path) == objects_before
    assert _quarantines(path) == []
    changes = internal_api.policy.allowed_calls[-1].changes
    assert changes.split()[2] == "refs/heads/main"
    assert internal_api.policy.post_receive_calls == []


def test_push_sees_quarantined_objects_directory(
    storage: StorageProcess, work: Path, internal_api
) -> None:
    """The internal API is told where the pushed objects wait, relative to the repository."""
    repo, tree = _seed(storage, work)
    commit_all(tree, "next")
    git("push", "-q", storage.url(repo), "main", cwd=tree, env=storage.git_env(repo))
    call = internal_api.policy.allowed_calls[-1]
    assert call.git_object_directory.startswith("objects/tmp_objdir-incoming-")
    assert call.git_alternate_object_directories == ["objects"]


def test_push_killed_halfway_changes_nothing(storage: StorageProcess, work: Path) -> None:
    repo, tree = _seed(storage, work)
    path = storage.path_of(repo)
    refs_before, objects_before = refs_of(path), loose_and_packed_objects(path)
    (tree / "huge.bin").write_bytes(os.urandom(96 * 1024 * 1024))
    commit_all(tree, "huge")

    client = subprocess.Popen(
        ["git", "push", "-q", storage.url(repo), "main"],
        cwd=tree,
        env=storage.git_env(repo),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not _quarantines(path):
        assert client.poll() is None, "push finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(client.pid, signal.SIGKILL)
    client.wait()

    deadline = time.monotonic() + 20
    while _quarantines(path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _quarantines(path) == []
    assert refs_of(path) == refs_before
    assert loose_and_packed_objects(path) == objects_before
    # The repository is still healthy and accepts the same push afterwards.
    git("push", "-q", storage.url(repo), "main", cwd=tree, env=storage.git_env(repo))
    assert (
        refs_of(path)["refs/heads/main"]
        == git("rev-parse", "HEAD", cwd=tree).stdout.decode().strip()
    )


def test_correlation_id_travels_through_the_hooks(storage: StorageProcess, work: Path) -> None:
    """Caller's id → gRPC metadata → hooks payload → hook socket → internal API request."""
    repo, tree = _seed(storage, work)
    commit_all(tree, "traced")
    correlation_id = f"trace-{uuid.uuid4().hex}"
    env = storage.git_env(repo, correlation_id=correlation_id)
    git("push", "-q", storage.url(repo), "main", cwd=tree, env=env)
    lines = [
        json.loads(line)
        for line in storage.log_path.read_text().splitlines()
        if correlation_id in line
    ]
    internal_calls = {line["msg"].split()[3] for line in lines if line["logger"] == "httpx"}
    assert {u.rsplit("/", 1)[1] for u in internal_calls} >= {"allowed", "post_receive"}
