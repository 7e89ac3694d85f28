"""The real git client against storage's SSHService, through the git-ssh helper."""

from __future__ import annotations

from pathlib import Path

import pytest

from geogit.storage.testing import StorageProcess, commit_all, git, make_work_tree, refs_of


@pytest.fixture
def seeded(storage: StorageProcess, work: Path) -> tuple[StorageProcess, object, Path]:
    repo = storage.create()
    tree = make_work_tree(work / "src", commits=5)
    git("push", "-q", storage.url(repo), "main", cwd=tree, env=storage.git_env())
    return storage, repo, tree


@pytest.mark.parametrize("version", ["0", "2"])
def test_clone_with_protocol_version(seeded, work: Path, version: str) -> None:
    storage, repo, tree = seeded
    env = {**storage.git_env(), "GIT_TRACE_PACKET": str(work / "packets")}
    git(
        "-c",
        f"protocol.version={version}",
        "clone",
        "-q",
        storage.url(repo),
        str(work / "c"),
        env=env,
    )
    assert (
        git("rev-parse", "HEAD", cwd=work / "c").stdout == git("rev-parse", "HEAD", cwd=tree).stdout
    )
    trace = (work / "packets").read_text()
    assert ("version 2" in trace) == (version == "2")


def test_shallow_clone(seeded, work: Path) -> None:
    storage, repo, _ = seeded
    git("clone", "-q", "--depth", "1", storage.url(repo), str(work / "c"), env=storage.git_env())
    assert git("rev-list", "--count", "HEAD", cwd=work / "c").stdout.strip() == b"1"
    assert (work / "c" / ".git" / "shallow").exists()


def test_partial_clone_fetches_blobs_lazily(seeded, work: Path) -> None:
    storage, repo, _ = seeded
    env = storage.git_env()
    git(
        "clone",
        "-q",
        "--filter=blob:none",
        "--no-checkout",
        storage.url(repo),
        str(work / "c"),
        env=env,
    )
    missing = git("rev-list", "--objects", "--all", "--missing=print", cwd=work / "c", env=env)
    assert any(line.startswith(b"?") for line in missing.stdout.splitlines())
    git("checkout", "-q", "main", cwd=work / "c", env=env)  # fetches the blobs on demand
    assert (work / "c" / "file4.txt").read_text() == "content 4\n" * 5


def test_fetch_new_commits(seeded, work: Path) -> None:
    storage, repo, tree = seeded
    env = storage.git_env()
    git("clone", "-q", storage.url(repo), str(work / "c"), env=env)
    (tree / "new.txt").write_text("new\n")
    head = commit_all(tree, "another")
    git("push", "-q", storage.url(repo), "main", cwd=tree, env=env)
    git("fetch", "-q", "origin", cwd=work / "c", env=env)
    assert git("rev-parse", "origin/main", cwd=work / "c").stdout.decode().strip() == head


def test_push_new_branch_and_tags(seeded, work: Path, internal_api) -> None:
    storage, repo, tree = seeded
    git("checkout", "-q", "-b", "feature", cwd=tree)
    feature = commit_all(tree, "feature work")
    git("tag", "v1.0", cwd=tree)
    git(
        "-c",
        "user.name=T",
        "-c",
        "user.email=t@e",
        "tag",
        "-a",
        "-m",
        "annotated",
        "v1.1",
        cwd=tree,
    )
    result = git(
        "push", storage.url(repo), "feature", "v1.0", "v1.1", cwd=tree, env=storage.git_env(repo)
    )
    refs = refs_of(storage.path_of(repo))
    assert refs["refs/heads/feature"] == feature
    assert refs["refs/tags/v1.0"] == feature
    assert "refs/tags/v1.1" in refs
    assert b"[new branch]" in result.stderr and b"[new tag]" in result.stderr
    # The hooks reported the push with the real changes.
    reported = internal_api.policy.post_receive_calls[-1]
    assert reported.gl_repository == repo.gl_repository
    assert "refs/heads/feature" in reported.changes and "refs/tags/v1.1" in reported.changes
    assert internal_api.policy.allowed_calls[-1].protocol == "ssh"


def test_post_receive_messages_reach_the_client(seeded, work: Path, internal_api) -> None:
    from geogit.common.internal_api import PostReceiveMessage

    storage, repo, tree = seeded
    internal_api.policy.post_receive_messages = [
        PostReceiveMessage(message="To create a merge request for topic, visit:\n  http://x/mr")
    ]
    git("checkout", "-q", "-b", "topic", cwd=tree)
    commit_all(tree, "topic")
    result = git("push", storage.url(repo), "topic", cwd=tree, env=storage.git_env())
    assert b"remote: To create a merge request for topic, visit:" in result.stderr


def test_upload_archive(seeded, work: Path) -> None:
    storage, repo, _ = seeded
    result = git(
        "archive", "--format=tar", f"--remote={storage.url(repo)}", "main", env=storage.git_env()
    )
    listing = git(
        "-c", "tar.tar.command=cat", "get-tar-commit-id", input=result.stdout, check=False
    )
    assert listing.returncode == 0
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
        names = archive.getnames()
    assert {"file0.txt", "file4.txt"} <= set(names)


@pytest.mark.parametrize("version", ["0", "2"])
def test_private_refs_are_hidden_and_refused(seeded, work: Path, version: str) -> None:
    """refs/geogit/ (diverged refs a re-sync kept) is storage's own: clients neither see nor
    push it."""
    storage, repo, tree = seeded
    path = storage.path_of(repo)
    head = git("rev-parse", "main", cwd=tree).stdout.decode().strip()
    kept = "refs/geogit/diverged/epoch-2/refs/heads/main"
    git("update-ref", kept, head, cwd=path)
    env = storage.git_env(repo)
    listed = git("-c", f"protocol.version={version}", "ls-remote", storage.url(repo), env=env)
    assert b"refs/geogit/" not in listed.stdout and b"refs/heads/main" in listed.stdout
    git("clone", "-q", "--mirror", storage.url(repo), str(work / "mirror"), env=env)
    assert not any(name.startswith("refs/geogit/") for name in refs_of(work / "mirror"))

    pushed = git("push", storage.url(repo), "main:refs/geogit/x", cwd=tree, env=env, check=False)
    assert pushed.returncode != 0
    assert b"deny updating a hidden ref" in pushed.stderr
    assert "refs/geogit/x" not in refs_of(path)
