"""The hooks' Unix socket: every malformed, forged or unreachable call refuses the push.

The payload a real push carries is captured by a repository's own custom_hooks/update (which
git runs with the push's environment); the tests then replay it, altered, through the hook
client storage installed, exactly as git would run it.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from geogit.storage.hook_client import (
    EXIT,
    FRAME,
    HEADER,
    MAX_FRAME_BYTES,
    PAYLOAD_ENV,
    STDIN,
    encode_frame,
)
from geogit.storage.hooks import CLIENT_FILE
from geogit.storage.testing import StorageProcess, commit_all, git, make_work_tree, refs_of

UPDATE_HOOK = """#!/bin/sh
printf '%s' "$GEOGIT_HOOKS_PAYLOAD" > captured-payload
case "$1" in refs/heads/frozen*) echo "frozen branches stay put" >&2; exit 1;; esac
"""


@pytest.fixture
def captured(storage: StorageProcess, work: Path) -> dict[str, object]:
    """The payload of a real push, decoded (the update hook runs in the repository)."""
    repo = storage.create()
    path = storage.path_of(repo)
    _install_update_hook(path)
    tree = make_work_tree(work / "src")
    git("push", "-q", storage.url(repo), "main", cwd=tree, env=storage.git_env(repo))
    payload: dict[str, object] = json.loads(
        base64.b64decode((path / "captured-payload").read_text())
    )
    return payload


def _install_update_hook(repo_path: Path) -> None:
    hooks = repo_path / "custom_hooks"
    hooks.mkdir()
    (hooks / "update").write_text(UPDATE_HOOK)
    (hooks / "update").chmod(0o755)


def _client(storage: StorageProcess) -> Path:
    return storage.root / "+geogit" / "hooks" / CLIENT_FILE


def _run_hook(
    storage: StorageProcess, payload: dict[str, object] | str, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    raw = payload if isinstance(payload, str) else base64.b64encode(json.dumps(payload).encode())
    env = {PAYLOAD_ENV: raw if isinstance(raw, str) else raw.decode(), "PATH": os.environ["PATH"]}
    return subprocess.run(
        [sys.executable, "-S", "-I", str(_client(storage)), "pre-receive"],
        input=stdin,
        env=env,
        capture_output=True,
        timeout=30,
    )


def _exchange(socket_path: str, data: bytes) -> tuple[bytes, int | None]:
    """Send raw bytes to the hook socket; what it wrote to stderr and its exit status."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(socket_path)
        sock.sendall(data)
        stream = sock.makefile("rb")
        stderr, status = b"", None
        while header := stream.read(FRAME.size):
            kind, size = FRAME.unpack(header)
            body = stream.read(size)
            if kind == EXIT:
                status = int(body)
            else:
                stderr += body
        return stderr, status


def test_the_hook_client_runs_without_site_packages(storage: StorageProcess) -> None:
    """`-S -I` hides grpc, pydantic and jwt: the hook would fail if it imported them."""
    usage = subprocess.run(
        [sys.executable, "-S", "-I", str(_client(storage))], capture_output=True, timeout=30
    )
    assert usage.returncode == 2
    assert b"usage:" in usage.stderr


def test_socket_is_private_to_storage(captured: dict[str, object]) -> None:
    socket_path = Path(str(captured["socket_path"]))
    assert stat.S_ISSOCK(socket_path.stat().st_mode)
    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700


def test_custom_update_hook_refuses_a_ref(storage: StorageProcess, work: Path) -> None:
    repo = storage.create()
    path = storage.path_of(repo)
    _install_update_hook(path)
    tree = make_work_tree(work / "src")
    env = storage.git_env(repo)
    git("push", "-q", storage.url(repo), "main", cwd=tree, env=env)
    git("checkout", "-q", "-b", "frozen-1", cwd=tree)
    commit_all(tree, "on a frozen branch")
    result = git("push", storage.url(repo), "frozen-1", cwd=tree, env=env, check=False)
    assert result.returncode != 0
    assert b"frozen branches stay put" in result.stderr
    assert "refs/heads/frozen-1" not in refs_of(path)


def test_a_forged_token_is_refused(storage: StorageProcess, captured: dict[str, object]) -> None:
    result = _run_hook(storage, {**captured, "token": "guessed"})
    assert result.returncode == 1
    assert b"geogit: push refused: the hook's token is not this storage's" in result.stderr


def test_a_garbage_payload_is_refused(storage: StorageProcess) -> None:
    result = _run_hook(storage, "%%%")
    assert result.returncode == 1
    assert b"geogit: push refused: invalid GEOGIT_HOOKS_PAYLOAD" in result.stderr


def test_an_unreachable_storage_refuses_the_push(
    storage: StorageProcess, captured: dict[str, object], work: Path
) -> None:
    result = _run_hook(storage, {**captured, "socket_path": str(work / "gone.sock")})
    assert result.returncode == 1
    assert b"geogit: push refused: cannot reach storage's hook socket" in result.stderr


def test_a_hostile_repository_path_is_refused(
    storage: StorageProcess, captured: dict[str, object]
) -> None:
    repository = {**captured["repository"], "relative_path": "../../etc.git"}  # type: ignore[dict-item]
    result = _run_hook(storage, {**captured, "repository": repository})
    assert result.returncode == 1
    assert b"geogit: push refused: repository path must not contain '..'" in result.stderr


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        (encode_frame(STDIN, b"x"), b"does not start with its header"),
        (encode_frame(HEADER, b"{not json"), b"unreadable hook header"),
        (encode_frame(HEADER, b'{"hook": "pre-receive"}'), b"must have exactly"),
        (FRAME.pack(HEADER, MAX_FRAME_BYTES + 1), b"over the"),
    ],
)
def test_malformed_frames_get_a_refusal(
    captured: dict[str, object], frames: bytes, reason: bytes
) -> None:
    stderr, status = _exchange(str(captured["socket_path"]), frames)
    assert status == 1
    assert reason in stderr


def _call(captured: dict[str, object], **fields: object) -> bytes:
    header = {
        "hook": "pre-receive",
        "args": [],
        "payload": base64.b64encode(json.dumps(captured).encode()).decode(),
        "object_directory": "",
        "alternate_object_directories": [],
        "push_options": [],
        **fields,
    }
    return encode_frame(HEADER, json.dumps(header).encode()) + encode_frame(STDIN)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"hook": "update"}, b"unknown hook 'update'"),
        ({"object_directory": "/etc"}, b"object directory outside the repository: '/etc'"),
        ({"push_options": [1]}, b"push options must be strings"),
    ],
)
def test_a_call_storage_must_not_serve_is_refused(
    captured: dict[str, object], fields: dict[str, object], reason: bytes
) -> None:
    stderr, status = _exchange(str(captured["socket_path"]), _call(captured, **fields))
    assert status == 1
    assert reason in stderr


def test_a_push_the_api_does_not_count_is_refused(
    storage: StorageProcess, work: Path, internal_api
) -> None:
    repo = storage.create()
    path = storage.path_of(repo)
    tree = make_work_tree(work / "src")
    internal_api.policy.busy = True
    result = git(
        "push", storage.url(repo), "main", cwd=tree, env=storage.git_env(repo), check=False
    )
    assert result.returncode != 0
    assert b"geogit: push refused: the repository is busy" in result.stderr
    assert refs_of(path) == {}
    assert internal_api.policy.allowed_calls[-1].count_push
