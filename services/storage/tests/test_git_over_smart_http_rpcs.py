"""The real git client over HTTP against storage's SmartHTTPService (through a thin bridge)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from smart_http_bridge import SmartHttpBridge

from geogit.storage.testing import StorageProcess, commit_all, git, make_work_tree, refs_of


@pytest.fixture(scope="module")
def bridge(storage: StorageProcess) -> Iterator[SmartHttpBridge]:
    server = SmartHttpBridge(storage.address, storage.token, storage.name)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pushed(storage: StorageProcess, bridge: SmartHttpBridge, work: Path):
    repo = storage.create()
    tree = make_work_tree(work / "src", commits=4)
    url = f"{bridge.url}/{repo.relative_path}"
    git("push", "-q", url, "main", cwd=tree)
    return repo, tree, url


@pytest.mark.parametrize("version", ["0", "2"])
def test_push_then_clone_over_http(pushed, work: Path, version: str) -> None:
    _, tree, url = pushed
    git("-c", f"protocol.version={version}", "clone", "-q", url, str(work / "c"))
    assert (
        git("rev-parse", "HEAD", cwd=work / "c").stdout == git("rev-parse", "HEAD", cwd=tree).stdout
    )


def test_shallow_and_partial_clone_over_http(pushed, work: Path) -> None:
    _, _, url = pushed
    git("clone", "-q", "--depth", "1", url, str(work / "shallow"))
    assert git("rev-list", "--count", "HEAD", cwd=work / "shallow").stdout.strip() == b"1"
    git("clone", "-q", "--filter=blob:none", url, str(work / "partial"))
    assert (work / "partial" / "file3.txt").read_text() == "content 3\n" * 4


def test_push_branch_tag_and_delete_over_http(pushed, storage: StorageProcess, work: Path) -> None:
    repo, tree, url = pushed
    git("checkout", "-q", "-b", "topic", cwd=tree)
    topic = commit_all(tree, "topic")
    git("tag", "v2", cwd=tree)
    git("push", "-q", url, "topic", "v2", cwd=tree)
    refs = refs_of(storage.path_of(repo))
    assert refs["refs/heads/topic"] == topic and refs["refs/tags/v2"] == topic
    git("push", "-q", url, ":topic", cwd=tree)
    assert "refs/heads/topic" not in refs_of(storage.path_of(repo))


def test_large_push_is_gzip_free_and_streams(pushed, storage: StorageProcess, work: Path) -> None:
    """A push bigger than git's http.postBuffer is sent chunked; storage takes it as a stream."""
    import os

    repo, tree, url = pushed
    (tree / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    head = commit_all(tree, "big")
    git("-c", "http.postBuffer=65536", "push", "-q", url, "main", cwd=tree)
    assert refs_of(storage.path_of(repo))["refs/heads/main"] == head


def test_private_refs_are_hidden_and_refused_over_http(
    pushed, storage: StorageProcess, work: Path
) -> None:
    repo, tree, url = pushed
    path = storage.path_of(repo)
    kept = "refs/geogit/diverged/epoch-2/refs/heads/main"
    git("update-ref", kept, git("rev-parse", "main", cwd=tree).stdout.decode().strip(), cwd=path)
    assert b"refs/geogit/" not in git("ls-remote", url).stdout
    pushed_private = git("push", url, "main:refs/geogit/x", cwd=tree, check=False)
    assert b"deny updating a hidden ref" in pushed_private.stderr
    assert refs_of(path).keys() == {"refs/heads/main", kept}
