"""ReplicateRepository with keep_diverged_prefix: a replica re-synced from a new primary keeps,
under the prefix, every ref whose commits the new primary lacks, and reports it (DESIGN §10)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from geogit.common.proto.storage.v1 import repository_pb2, shared_pb2
from geogit.storage.testing import StorageProcess, commit_all, git, make_work_tree, refs_of

EPOCH_2 = "refs/geogit/diverged/epoch-2/"


def _on(storage: StorageProcess, repo: shared_pb2.Repository) -> shared_pb2.Repository:
    return shared_pb2.Repository(storage_name=storage.name, relative_path=repo.relative_path)


def _resync(
    source: StorageProcess, replica: StorageProcess, repo: shared_pb2.Repository, prefix: str
) -> repository_pb2.ReplicateRepositoryResponse:
    return replica.repositories.ReplicateRepository(
        repository_pb2.ReplicateRepositoryRequest(
            repository=_on(replica, repo),
            storage=repository_pb2.StorageSource(
                address=source.address, token=source.token(), repository=repo
            ),
            sync_head=True,
            keep_diverged_prefix=prefix,
        ),
        metadata=replica.metadata(),
        timeout=120,
    )


def _reported(response: repository_pb2.ReplicateRepositoryResponse) -> set[tuple[str, str, str]]:
    return {(d.ref, d.kept_as, d.oid) for d in response.diverged}


def _rev(tree: Path, rev: str) -> str:
    return git("rev-parse", rev, cwd=tree).stdout.decode().strip()


@pytest.fixture
def replicated(storage: StorageProcess, second_storage: StorageProcess, work: Path):
    """A source repository with main and a merged branch, and its replica on second_storage."""
    repo = storage.create()
    tree = make_work_tree(work / "src", commits=3)
    git("branch", "merged", "HEAD~1", cwd=tree)
    git("push", "-q", storage.url(repo), "main", "merged", cwd=tree, env=storage.git_env(repo))
    assert _resync(storage, second_storage, repo, EPOCH_2).created
    return repo, tree, second_storage.path_of(repo)


def _diverge(replica_path: Path, work: Path) -> dict[str, str]:
    """Commits only the replica holds, written straight into it (as an old primary's pushes
    would be): one more on main, a branch and an annotated tag. Returns their refs."""
    tree = work / "replica-work"
    git("clone", "-q", str(replica_path), str(tree))
    commit_all(tree, "only on the replica")
    git("checkout", "-q", "-b", "lost-work", cwd=tree)
    commit_all(tree, "a branch the source never had")
    git(
        "-c",
        "user.name=T",
        "-c",
        "user.email=t@example.com",
        "tag",
        "-am",
        "t",
        "lost-tag",
        cwd=tree,
    )
    git("push", "-q", "origin", "main", "lost-work", "lost-tag", cwd=tree)
    return {
        "refs/heads/main": _rev(tree, "main"),
        "refs/heads/lost-work": _rev(tree, "lost-work"),
        "refs/tags/lost-tag": _rev(tree, "lost-tag"),
    }


def test_resync_keeps_and_reports_what_the_source_lacks(
    storage: StorageProcess, second_storage: StorageProcess, replicated, work: Path
) -> None:
    repo, tree, replica_path = replicated
    lost = _diverge(replica_path, work)
    assert git("cat-file", "-t", lost["refs/tags/lost-tag"], cwd=replica_path).stdout == b"tag\n"

    response = _resync(storage, second_storage, repo, EPOCH_2)

    assert _reported(response) == {(ref, EPOCH_2 + ref, oid) for ref, oid in lost.items()}
    refs = refs_of(replica_path)
    # A tag is kept as the tag object it was.
    assert {ref: refs[EPOCH_2 + ref] for ref in lost} == lost
    assert refs["refs/heads/main"] == _rev(tree, "main")
    assert "refs/heads/lost-work" not in refs and "refs/tags/lost-tag" not in refs
    # The kept refs are storage's own: the replica still matches its source.
    assert (
        response.checksum
        == storage.checksum(repo)
        == second_storage.checksum(_on(second_storage, repo))
    )
    git("--git-dir", str(replica_path), "fsck", "--no-progress")

    again = _resync(storage, second_storage, repo, EPOCH_2)
    assert list(again.diverged) == []
    assert refs_of(replica_path) == refs
    assert again.checksum == storage.checksum(repo)


def test_fast_forward_and_reachable_deletion_are_not_kept(
    storage: StorageProcess, second_storage: StorageProcess, replicated
) -> None:
    repo, tree, replica_path = replicated
    commit_all(tree, "a fast-forward")
    # "merged" is deleted, but main still holds its commit.
    git("push", "-q", storage.url(repo), "main", ":merged", cwd=tree, env=storage.git_env(repo))

    response = _resync(storage, second_storage, repo, EPOCH_2)

    assert list(response.diverged) == []
    assert refs_of(replica_path) == refs_of(storage.path_of(repo))


def test_a_commit_only_a_private_ref_holds_is_kept_again(
    storage: StorageProcess, second_storage: StorageProcess, replicated, work: Path
) -> None:
    """Reachability counts public refs only: an epoch-2 ref does not make a ref the epoch-3
    re-sync drops safe to lose."""
    repo, _, replica_path = replicated
    main = _diverge(replica_path, work)["refs/heads/main"]
    git("update-ref", f"{EPOCH_2}refs/heads/main", main, cwd=replica_path)
    epoch_3 = "refs/geogit/diverged/epoch-3/"

    response = _resync(storage, second_storage, repo, epoch_3)

    assert ("refs/heads/main", f"{epoch_3}refs/heads/main", main) in _reported(response)
    assert refs_of(replica_path)[f"{EPOCH_2}refs/heads/main"] == main


def test_a_kept_name_is_never_overwritten(
    storage: StorageProcess, second_storage: StorageProcess, replicated, work: Path
) -> None:
    repo, tree, replica_path = replicated
    earlier = _rev(tree, "main~1")
    git("update-ref", f"{EPOCH_2}refs/heads/main", earlier, cwd=replica_path)
    lost = _diverge(replica_path, work)

    response = _resync(storage, second_storage, repo, EPOCH_2)

    reported = _reported(response)
    assert ("refs/heads/main", "", lost["refs/heads/main"]) in reported
    kept = ("refs/heads/lost-work", f"{EPOCH_2}refs/heads/lost-work", lost["refs/heads/lost-work"])
    assert kept in reported
    assert refs_of(replica_path)[f"{EPOCH_2}refs/heads/main"] == earlier


@pytest.mark.parametrize(
    "prefix",
    [
        "refs/heads/",
        "refs/geogit/elsewhere/",
        "refs/geogit/diverged/",
        "refs/geogit/diverged/epoch-2",
        "refs/geogit/diverged/a..b/",
        "refs/geogit/diverged/epoch 2/",
        "refs/geogit/diverged/epoch\x01/",
        "refs/geogit/diverged/epoch\0/",
        "refs/geogit/diverged/x.lock/",
        "refs/geogit/diverged/.hidden/",
        "refs/geogit/diverged//",
        "refs/geogit/diverged/a*/",
        "refs/geogit/diverged/" + "e" * 2000 + "/",
    ],
)
def test_bad_prefix_is_refused(
    prefix: str, storage: StorageProcess, second_storage: StorageProcess
) -> None:
    repo = storage.create()
    with pytest.raises(grpc.RpcError) as failure:
        _resync(storage, second_storage, repo, prefix)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details().startswith(f"keep_diverged_prefix {prefix[:200]!r} ")
    assert not second_storage.path_of(repo).exists()
