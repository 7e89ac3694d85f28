"""The real git client over HTTP through the real edge-proxy to the real storage."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from edge_harness import Project, git
from fake_internal_api import FakeInternalApi

from geogit.common.internal_api import PostReceiveMessage
from geogit.common.pktline import FLUSH_PKT, pkt_line
from geogit.edge_proxy.testing import EdgeProxyProcess
from geogit.storage.testing import (
    StorageProcess,
    commit_all,
    loose_and_packed_objects,
    make_work_tree,
    refs_of,
)

TRACE_CURL = {"GIT_TRACE_CURL": "1", "GIT_TRACE_CURL_NO_DATA": "1"}


@pytest.mark.parametrize("version", ["0", "2"])
def test_clone_with_protocol_v0_and_v2(
    populated: Project,
    populated_head: str,
    tmp_path: Path,
    env: dict[str, str],
    internal_api: FakeInternalApi,
    version: str,
) -> None:
    clone = tmp_path / "clone"
    git("-c", f"protocol.version={version}", "clone", "-q", populated.url, str(clone), env=env)
    assert git("rev-parse", "HEAD", cwd=clone, env=env).stdout.strip() == populated_head
    calls = internal_api.policy.git_http_calls
    assert {call.git_protocol for call in calls} == ({"version=2"} if version == "2" else {""})
    assert {(call.project, call.service) for call in calls} == {(populated.path, "git-upload-pack")}


def test_shallow_and_partial_clones(
    populated: Project, tmp_path: Path, env: dict[str, str]
) -> None:
    git("clone", "-q", "--depth", "1", populated.url, str(tmp_path / "shallow"), env=env)
    count = git("rev-list", "--count", "HEAD", cwd=tmp_path / "shallow", env=env).stdout
    assert count.strip() == "1"
    git("clone", "-q", "--filter=blob:none", populated.url, str(tmp_path / "partial"), env=env)
    assert (tmp_path / "partial" / "file3.txt").read_text() == "content 3\n" * 4


def test_fetch_brings_new_commits(project: Project, tmp_path: Path, env: dict[str, str]) -> None:
    tree = make_work_tree(tmp_path / "src", commits=1)
    git("push", "-q", project.url, "main", cwd=tree, env=env)
    clone = tmp_path / "clone"
    git("clone", "-q", project.url, str(clone), env=env)
    new = commit_all(tree, "after the clone")
    git("push", "-q", project.url, "main", cwd=tree, env=env)
    git("fetch", "-q", "origin", cwd=clone, env=env)
    assert git("rev-parse", "origin/main", cwd=clone, env=env).stdout.strip() == new


def test_push_branches_and_tags_runs_hooks(
    project: Project,
    storage: StorageProcess,
    internal_api: FakeInternalApi,
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    internal_api.policy.post_receive_messages = [PostReceiveMessage(message="Merge me at /mr/1")]
    tree = make_work_tree(tmp_path / "src", commits=1)
    git("checkout", "-q", "-b", "topic", cwd=tree, env=env)
    topic = commit_all(tree, "topic")
    git("tag", "v1", cwd=tree, env=env)
    result = git("push", project.url, "main", "topic", "v1", cwd=tree, env=env)
    refs = refs_of(storage.path_of(project.repo))
    assert refs["refs/heads/topic"] == topic and refs["refs/tags/v1"] == topic
    assert "refs/heads/main" in refs
    assert "remote: Merge me at /mr/1" in result.stderr
    allowed = internal_api.policy.allowed_calls[-1]
    assert (allowed.protocol, allowed.gl_id) == ("http", "user-1")
    assert "refs/heads/topic" in allowed.changes and "refs/tags/v1" in allowed.changes
    assert internal_api.policy.git_http_calls[-1].service == "git-receive-pack"


def test_gits_probe_before_a_large_push_is_marked_so(
    project: Project, internal_api: FakeInternalApi, tmp_path: Path, env: dict[str, str]
) -> None:
    """A pack over http.postBuffer is streamed only after a probe POST of one flush-pkt; the
    internal API is told which is which (a storage move waits for pushes, not probes)."""
    tree = make_work_tree(tmp_path / "src", commits=1)
    (tree / "blob.bin").write_bytes(os.urandom(64 * 1024))
    commit_all(tree, "big")
    calls = len(internal_api.policy.git_http_calls)
    git("-c", "http.postBuffer=4096", "push", "-q", project.url, "main", cwd=tree, env=env)
    posts = [
        call.probe
        for call in internal_api.policy.git_http_calls[calls:]
        if call.service == "git-receive-pack" and not call.path.split("?")[0].endswith("info/refs")
    ]
    assert posts == [True, False]


def test_refused_push_shows_the_reason(
    project: Project,
    storage: StorageProcess,
    internal_api: FakeInternalApi,
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    internal_api.policy.refused_refs = {"refs/heads/main"}
    tree = make_work_tree(tmp_path / "src", commits=1)
    result = git("push", project.url, "main", cwd=tree, env=env, check=False)
    assert result.returncode != 0
    assert "You are not allowed to push code to this project." in result.stderr
    assert refs_of(storage.path_of(project.repo)) == {}


def test_large_push_is_sent_chunked(
    project: Project, storage: StorageProcess, tmp_path: Path, env: dict[str, str]
) -> None:
    """A push bigger than http.postBuffer goes out with Transfer-Encoding: chunked."""
    tree = make_work_tree(tmp_path / "src", commits=1)
    (tree / "blob.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    new = commit_all(tree, "big")
    traced = {**env, **TRACE_CURL}
    result = git("-c", "http.postBuffer=65536", "push", project.url, "main", cwd=tree, env=traced)
    assert "Transfer-Encoding: chunked" in result.stderr
    assert refs_of(storage.path_of(project.repo))["refs/heads/main"] == new


def test_gzip_request_body(project: Project, tmp_path: Path, env: dict[str, str]) -> None:
    """git gzips fetch requests over 1 KiB: 40 annotated tags make 40 wants."""
    tree = make_work_tree(tmp_path / "src", commits=1)
    for i in range(40):
        git("tag", "-a", f"t{i}", "-m", f"tag {i}", cwd=tree, env=env)
    git("push", "-q", project.url, "main", "--tags", cwd=tree, env=env)
    clone = tmp_path / "clone"
    traced = {**env, **TRACE_CURL}
    result = git("-c", "protocol.version=0", "clone", project.url, str(clone), env=traced)
    assert "Content-Encoding: gzip" in result.stderr
    assert len(git("tag", cwd=clone, env=env).stdout.split()) == 40


def test_push_cut_off_halfway_changes_nothing(
    project: Project,
    storage: StorageProcess,
    edge: EdgeProxyProcess,
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    """The edge cancels the RPC instead of passing a short body on as if it were complete."""
    tree = make_work_tree(tmp_path / "src", commits=1)
    (tree / "blob.bin").write_bytes(os.urandom(1024 * 1024))
    new = commit_all(tree, "big")
    pack = subprocess.run(
        ["git", "pack-objects", "--stdout", "--revs", "-q"],
        input=f"{new}\n".encode(),
        cwd=tree,
        env=env,
        capture_output=True,
        check=True,
    ).stdout
    command = f"{'0' * 40} {new} refs/heads/main\0report-status\n".encode()
    body = pkt_line(command) + FLUSH_PKT + pack
    repo_path = storage.path_of(project.repo)
    objects_before = loose_and_packed_objects(repo_path)
    with socket.create_connection(("127.0.0.1", edge.port)) as sock:
        sock.sendall(
            f"POST /{project.path}.git/git-receive-pack HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nContent-Type: application/x-git-receive-pack-request\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 2]
        )
        time.sleep(0.2)  # let the first half reach storage
    deadline = time.monotonic() + 10
    answered = 'geogit_edge_http_requests_total{route="git_receive_pack",status="none"} 1.0'
    while answered not in httpx.get(edge.url + "/metrics").text:
        assert time.monotonic() < deadline, "the edge never finished the cut-off push"
        time.sleep(0.05)
    assert refs_of(repo_path) == {}
    assert loose_and_packed_objects(repo_path) == objects_before
