"""ReplicateRepository: a second storage's replica becomes identical to the source, from
either kind of source, and stays identical through force pushes and branch deletions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from http_backend_server import HttpBackendServer

from geogit.common.proto.storage.v1 import repository_pb2, shared_pb2
from geogit.storage.testing import StorageProcess, commit_all, git, make_work_tree, refs_of

HEADER, SECRET = "X-Replication-Token", "replication-secret"


@pytest.fixture(scope="module")
def http_source(storage: StorageProcess) -> Iterator[HttpBackendServer]:
    server = HttpBackendServer(storage.root, HEADER, SECRET)
    server.start()
    yield server
    server.stop()


def _storage_source(storage: StorageProcess, repo: shared_pb2.Repository) -> dict[str, object]:
    return {
        "storage": repository_pb2.StorageSource(
            address=storage.address, token=storage.token(), repository=repo
        )
    }


def _http_source(server: HttpBackendServer, repo: shared_pb2.Repository) -> dict[str, object]:
    return {
        "http": repository_pb2.HttpSource(
            url=f"{server.url}/{repo.relative_path}",
            headers=[repository_pb2.HttpHeader(name=HEADER, value=SECRET)],
        )
    }


def _replicate(
    target: StorageProcess, repo: shared_pb2.Repository, **source: object
) -> repository_pb2.ReplicateRepositoryResponse:
    replica = shared_pb2.Repository(storage_name=target.name, relative_path=repo.relative_path)
    return target.repositories.ReplicateRepository(
        repository_pb2.ReplicateRepositoryRequest(repository=replica, sync_head=True, **source),
        metadata=target.metadata(),
        timeout=120,
    )


@pytest.mark.parametrize("kind", ["storage", "http"])
def test_replica_follows_source_through_rewrites(
    kind: str,
    storage: StorageProcess,
    second_storage: StorageProcess,
    http_source: HttpBackendServer,
    work: Path,
) -> None:
    repo = storage.create(default_branch="trunk")
    tree = make_work_tree(work / "src", commits=3, branch="trunk")
    env = storage.git_env(repo)
    git("checkout", "-q", "-b", "doomed", cwd=tree)
    commit_all(tree, "doomed work")
    git("checkout", "-q", "trunk", cwd=tree)
    git("tag", "v1", cwd=tree)
    git("push", "-q", storage.url(repo), "trunk", "doomed", "v1", cwd=tree, env=env)

    def source() -> dict[str, object]:
        return (
            _storage_source(storage, repo) if kind == "storage" else _http_source(http_source, repo)
        )

    first = _replicate(second_storage, repo, **source())
    assert first.created
    assert first.checksum == storage.checksum(repo)
    replica_path = second_storage.path_of(repo)
    assert refs_of(replica_path) == refs_of(storage.path_of(repo))
    assert (replica_path / "HEAD").read_text() == "ref: refs/heads/trunk\n"

    # Rewrite history, delete a branch, add a tag.
    git("reset", "-q", "--hard", "HEAD~1", cwd=tree)
    commit_all(tree, "rewritten")
    git("tag", "v2", cwd=tree)
    git("push", "-q", "--force", storage.url(repo), "trunk", ":doomed", "v2", cwd=tree, env=env)

    second = _replicate(second_storage, repo, **source())
    assert not second.created
    assert second.checksum == storage.checksum(repo) != first.checksum
    refs = refs_of(replica_path)
    assert "refs/heads/doomed" not in refs
    assert refs == refs_of(storage.path_of(repo))
    git("--git-dir", str(replica_path), "fsck", "--no-progress")


def test_failed_first_sync_leaves_nothing(
    storage: StorageProcess, second_storage: StorageProcess, http_source: HttpBackendServer
) -> None:
    repo = storage.create()
    source = repository_pb2.HttpSource(
        url=f"{http_source.url}/{repo.relative_path}",
        headers=[repository_pb2.HttpHeader(name=HEADER, value="wrong")],
    )
    with pytest.raises(grpc.RpcError) as failure:
        _replicate(second_storage, repo, http=source)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert failure.value.details() == "the replication source refused our credentials (HTTP 401)"
    assert not second_storage.path_of(repo).exists()


@pytest.mark.parametrize(
    "source",
    [
        {"http": repository_pb2.HttpSource(url="file:///etc")},
        {"http": repository_pb2.HttpSource(url="ext::sh -c touch% /tmp/pwned")},
        {
            "http": repository_pb2.HttpSource(
                url="http://127.0.0.1:1/x.git",
                headers=[repository_pb2.HttpHeader(name="X-Evil", value="a\r\nInjected: yes")],
            )
        },
        {
            "http": repository_pb2.HttpSource(
                url="http://127.0.0.1:1/x.git",
                headers=[repository_pb2.HttpHeader(name="Bad Name", value="x")],
            )
        },
        {},
    ],
)
def test_bad_sources_are_refused(source: dict[str, object], second_storage: StorageProcess) -> None:
    repo = shared_pb2.Repository(relative_path="@hashed/00/00/bad-source.git")
    with pytest.raises(grpc.RpcError) as failure:
        _replicate(second_storage, repo, **source)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not second_storage.path_of(repo).exists()


@pytest.mark.parametrize("kind", ["storage", "http"])
def test_without_a_prefix_diverged_commits_go_but_private_refs_stay(
    kind: str,
    storage: StorageProcess,
    second_storage: StorageProcess,
    http_source: HttpBackendServer,
    work: Path,
) -> None:
    """Today's behaviour: the replica becomes its source. But refs/geogit/ is storage's own on
    each side: the source's is never fetched, the replica's never pruned."""
    repo = storage.create()
    tree = make_work_tree(work / "src", commits=2)
    git("push", "-q", storage.url(repo), "main", cwd=tree, env=storage.git_env(repo))
    source = (
        _storage_source(storage, repo) if kind == "storage" else _http_source(http_source, repo)
    )
    _replicate(second_storage, repo, **source)
    replica_path = second_storage.path_of(repo)
    main = git("rev-parse", "main", cwd=tree).stdout.decode().strip()
    ahead = commit_all(tree, "only on the replica")
    git("push", "-q", str(replica_path), "main", cwd=tree)
    kept = "refs/geogit/diverged/epoch-1/refs/heads/main"
    git("update-ref", kept, ahead, cwd=replica_path)
    git("update-ref", "refs/geogit/source-only", main, cwd=storage.path_of(repo))

    response = _replicate(second_storage, repo, **source)

    assert list(response.diverged) == []
    refs = refs_of(replica_path)
    assert refs["refs/heads/main"] == main
    assert refs[kept] == ahead
    assert "refs/geogit/source-only" not in refs
    assert response.checksum == storage.checksum(repo)
