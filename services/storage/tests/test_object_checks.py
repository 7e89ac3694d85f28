"""Object checks (git.FSCK_IGNORED): the quirks of real histories pass, over SSH, smart HTTP and
replication; a `.git` entry in a tree is refused on every path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from smart_http_bridge import SmartHttpBridge

from geogit.common.proto.storage.v1 import repository_pb2, shared_pb2
from geogit.storage.testing import (
    StorageProcess,
    git,
    make_dotgit_commit,
    make_quirky_history,
    make_work_tree,
    refs_of,
)


@pytest.fixture(scope="module")
def bridge(storage: StorageProcess) -> Iterator[SmartHttpBridge]:
    server = SmartHttpBridge(storage.address, storage.token, storage.name)
    server.start()
    yield server
    server.stop()


def _replicate(
    source: StorageProcess, target: StorageProcess, repo: shared_pb2.Repository
) -> repository_pb2.ReplicateRepositoryResponse:
    replica = shared_pb2.Repository(storage_name=target.name, relative_path=repo.relative_path)
    origin = repository_pb2.StorageSource(
        address=source.address, token=source.token(), repository=repo
    )
    return target.repositories.ReplicateRepository(
        repository_pb2.ReplicateRepositoryRequest(repository=replica, storage=origin),
        metadata=target.metadata(),
        timeout=120,
    )


def test_quirky_history_is_accepted_over_ssh_and_replicated(
    storage: StorageProcess, second_storage: StorageProcess, work: Path
) -> None:
    repo = storage.create()
    head = make_quirky_history(work / "src")
    git("push", "-q", storage.url(repo), "main", cwd=work / "src", env=storage.git_env(repo))
    assert refs_of(storage.path_of(repo)) == {"refs/heads/main": head}

    replicated = _replicate(storage, second_storage, repo)
    assert replicated.checksum == storage.checksum(repo)
    git("clone", "-q", storage.url(repo), str(work / "clone"), env=second_storage.git_env(repo))
    assert git("rev-parse", "HEAD", cwd=work / "clone").stdout.decode().strip() == head


def test_quirky_history_is_accepted_over_smart_http(
    storage: StorageProcess, bridge: SmartHttpBridge, work: Path
) -> None:
    repo = storage.create()
    head = make_quirky_history(work / "src")
    git("push", "-q", f"{bridge.url}/{repo.relative_path}", "main", cwd=work / "src")
    assert refs_of(storage.path_of(repo)) == {"refs/heads/main": head}


def test_a_dotgit_tree_is_refused_on_push_and_changes_nothing(
    storage: StorageProcess, bridge: SmartHttpBridge, work: Path
) -> None:
    repo = storage.create()
    tree = make_work_tree(work / "src", commits=1)
    git("push", "-q", storage.url(repo), "main", cwd=tree, env=storage.git_env(repo))
    before = refs_of(storage.path_of(repo))
    make_dotgit_commit(tree)
    for url, env in (
        (storage.url(repo), storage.git_env(repo)),
        (f"{bridge.url}/{repo.relative_path}", None),
    ):
        refused = git("push", url, "main", cwd=tree, env=env, check=False)
        assert refused.returncode != 0
        assert b"hasDotgit: contains '.git'" in refused.stderr
        assert refs_of(storage.path_of(repo)) == before


def test_replication_refuses_a_source_with_a_dotgit_tree(
    storage: StorageProcess, second_storage: StorageProcess, work: Path
) -> None:
    """A source that holds a dangerous object (written behind storage's back) does not spread."""
    repo = storage.create()
    tree = make_work_tree(work / "src", commits=1)
    make_dotgit_commit(tree)
    source = storage.path_of(repo)
    git("push", "-q", str(source), "main", cwd=tree)  # straight to disk: no checks on this path
    with pytest.raises(grpc.RpcError) as refused:
        _replicate(storage, second_storage, repo)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "hasDotgit" in (refused.value.details() or "")
    assert not second_storage.path_of(repo).exists()
