"""RepositoryService queries and lifecycle against real repositories."""

from __future__ import annotations

import os
import time
from pathlib import Path

import grpc
import pytest

from geogit.common.proto.storage.v1 import repository_pb2
from geogit.storage.testing import StorageProcess, commit_all, git, make_work_tree


@pytest.fixture
def seeded(storage: StorageProcess, work: Path):
    repo = storage.create(default_branch="develop")
    tree = make_work_tree(work / "src", commits=2, branch="develop")
    first = git("rev-parse", "HEAD~1", cwd=tree).stdout.decode().strip()
    head = git("rev-parse", "HEAD", cwd=tree).stdout.decode().strip()
    git("tag", "v1", cwd=tree)
    git("push", "-q", storage.url(repo), "develop", "v1", cwd=tree, env=storage.git_env(repo))
    return repo, tree, first, head


def test_create_sets_default_branch_and_refuses_duplicates(storage: StorageProcess) -> None:
    repo = storage.create(default_branch="trunk")
    assert (storage.path_of(repo) / "HEAD").read_text() == "ref: refs/heads/trunk\n"
    assert storage.checksum(repo) == "0" * 40
    with pytest.raises(grpc.RpcError) as failure:
        storage.repositories.CreateRepository(
            repository_pb2.CreateRepositoryRequest(repository=repo), metadata=storage.metadata()
        )
    assert failure.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_list_refs(storage: StorageProcess, seeded) -> None:
    repo, _, _, head = seeded
    responses = storage.repositories.ListRefs(
        repository_pb2.ListRefsRequest(repository=repo, head=True), metadata=storage.metadata()
    )
    refs = {r.name: r.target for response in responses for r in response.references}
    assert refs == {"HEAD": "refs/heads/develop", "refs/heads/develop": head, "refs/tags/v1": head}
    tags = storage.repositories.ListRefs(
        repository_pb2.ListRefsRequest(repository=repo, patterns=["refs/tags/"]),
        metadata=storage.metadata(),
    )
    assert [r.name for response in tags for r in response.references] == ["refs/tags/v1"]


def test_has_objects_and_ancestry(storage: StorageProcess, seeded) -> None:
    repo, _, first, head = seeded
    unknown = "1" * 40
    has = storage.repositories.HasObjects(
        repository_pb2.HasObjectsRequest(repository=repo, object_ids=[first, unknown, head]),
        metadata=storage.metadata(),
    )
    assert list(has.missing) == [unknown]

    def is_ancestor(a: str, b: str) -> bool:
        return storage.repositories.CommitIsAncestor(
            repository_pb2.CommitIsAncestorRequest(repository=repo, ancestor_id=a, child_id=b),
            metadata=storage.metadata(),
        ).value

    assert is_ancestor(first, head)
    assert not is_ancestor(head, first)


def test_checksum_changes_with_refs_and_only_with_refs(storage: StorageProcess, seeded) -> None:
    repo, tree, _, _ = seeded
    before = storage.checksum(repo)
    assert storage.checksum(repo) == before
    # Storage's private refs (a replica's diverged refs) are not part of what sites compare.
    head = git("rev-parse", "HEAD", cwd=tree).stdout.decode().strip()
    git("update-ref", "refs/geogit/diverged/epoch-2/refs/heads/x", head, cwd=storage.path_of(repo))
    assert storage.checksum(repo) == before
    commit_all(tree, "more")
    git("push", "-q", storage.url(repo), "develop", cwd=tree, env=storage.git_env(repo))
    assert storage.checksum(repo) != before


def test_optimize_then_remove(storage: StorageProcess, seeded) -> None:
    repo, _, _, _ = seeded
    before = storage.checksum(repo)
    path = storage.path_of(repo)
    stale, fresh = (
        path / "objects/tmp_objdir-incoming-old",
        path / "objects/tmp_objdir-incoming-new",
    )
    stale.mkdir()
    fresh.mkdir()
    os.utime(stale, (time.time() - 2 * 24 * 3600,) * 2)
    storage.repositories.OptimizeRepository(
        repository_pb2.OptimizeRepositoryRequest(repository=repo), metadata=storage.metadata()
    )
    assert list((path / "objects" / "pack").glob("*.bitmap"))
    assert not stale.exists() and fresh.exists()
    assert storage.checksum(repo) == before
    git("--git-dir", str(path), "fsck", "--no-progress")

    storage.repositories.RemoveRepository(
        repository_pb2.RemoveRepositoryRequest(repository=repo), metadata=storage.metadata()
    )
    assert not path.exists()
    exists = storage.repositories.RepositoryExists(
        repository_pb2.RepositoryExistsRequest(repository=repo), metadata=storage.metadata()
    )
    assert not exists.exists
    with pytest.raises(grpc.RpcError) as failure:
        storage.repositories.RemoveRepository(
            repository_pb2.RemoveRepositoryRequest(repository=repo), metadata=storage.metadata()
        )
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND


def test_set_head(storage: StorageProcess, seeded) -> None:
    repo, _, _, _ = seeded
    storage.repositories.SetHead(
        repository_pb2.SetHeadRequest(repository=repo, branch="feature/x"),
        metadata=storage.metadata(),
    )
    assert (storage.path_of(repo) / "HEAD").read_text() == "ref: refs/heads/feature/x\n"
    for bad in ("bad..name", "-x", ""):
        with pytest.raises(grpc.RpcError) as failure:
            storage.repositories.SetHead(
                repository_pb2.SetHeadRequest(repository=repo, branch=bad),
                metadata=storage.metadata(),
            )
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
