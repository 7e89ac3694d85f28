"""Git over SSH end to end: the real OpenSSH client and git, the gateway process, a real site."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e import Api, git
from ssh_harness import (
    GatewayProcess,
    SshUser,
    make_key,
    new_ssh_user,
    port_open,
    ssh,
    ssh_command,
    ssh_options,
)

from geogit.common.net import free_port
from geogit.storage.testing import commit_all, make_work_tree

DEVELOPER, MAINTAINER = 30, 40
LARGE_PACK_MB = 200


def git_env(user: SshUser, gateway: GatewayProcess) -> dict[str, str]:
    return {"GIT_SSH_COMMAND": ssh_command(user.key, gateway.port)}


def url(project: dict[str, Any]) -> str:
    return f"git@127.0.0.1:{project['path_with_namespace']}.git"


@pytest.fixture
def populated(api: Api, user: SshUser, gateway: GatewayProcess, tmp_path: Path) -> dict[str, Any]:
    """A project of `user` with three commits on main, pushed over SSH."""
    project = api.project(user.account)
    tree = make_work_tree(tmp_path / "seed", commits=3)
    git("push", "-q", url(project), "main", cwd=tree, env=git_env(user, gateway))
    return project


def test_welcome_names_the_user(user: SshUser, gateway: GatewayProcess) -> None:
    result = ssh(user.key, gateway.port, "git@127.0.0.1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Welcome to geogit, @{user.account.username}!\n"


def test_clone_v0_v2_shallow_partial_fetch(
    user: SshUser, gateway: GatewayProcess, populated: dict[str, Any], tmp_path: Path
) -> None:
    env = git_env(user, gateway)
    trace = {**env, "GIT_TRACE_PACKET": str(tmp_path / "trace")}
    git("-c", "protocol.version=2", "clone", "-q", url(populated), str(tmp_path / "v2"), env=trace)
    assert "< version 2" in (tmp_path / "trace").read_text()
    assert len(git("log", "--format=%H", cwd=tmp_path / "v2").stdout.split()) == 3

    git("-c", "protocol.version=0", "clone", "-q", url(populated), str(tmp_path / "v0"), env=env)
    assert len(git("log", "--format=%H", cwd=tmp_path / "v0").stdout.split()) == 3

    git("clone", "-q", "--depth=1", url(populated), str(tmp_path / "shallow"), env=env)
    assert len(git("log", "--format=%H", cwd=tmp_path / "shallow").stdout.split()) == 1

    git("clone", "-q", "--filter=blob:none", url(populated), str(tmp_path / "partial"), env=env)
    assert git("config", "remote.origin.partialclonefilter", cwd=tmp_path / "partial").stdout

    # ssh:// form with a leading slash and no .git; then a fetch of a new commit.
    path = populated["path_with_namespace"]
    git("clone", "-q", f"ssh://git@127.0.0.1/{path}", str(tmp_path / "slash"), env=env)
    commit_all(tmp_path / "v2", "one more")
    git("push", "-q", "origin", "main", cwd=tmp_path / "v2", env=env)
    git("fetch", "-q", "origin", cwd=tmp_path / "slash", env=env)
    assert (
        git("rev-parse", "origin/main", cwd=tmp_path / "slash").stdout
        == git("rev-parse", "main", cwd=tmp_path / "v2").stdout
    )


def test_push_branches_and_tags_and_archive(
    user: SshUser, gateway: GatewayProcess, populated: dict[str, Any], tmp_path: Path
) -> None:
    env = git_env(user, gateway)
    work = tmp_path / "work"
    git("clone", "-q", url(populated), str(work), env=env)
    git("checkout", "-q", "-b", "feature", cwd=work)
    commit_all(work, "feature work")
    git("tag", "v1.0", cwd=work)
    git("-c", "user.name=T", "-c", "user.email=t@e", "tag", "-a", "-m", "x", "v1.1", cwd=work)
    git("push", "-q", "origin", "feature", "--tags", cwd=work, env=env)
    refs = git("ls-remote", url(populated), env=env).stdout
    for ref in ("refs/heads/feature", "refs/tags/v1.0", "refs/tags/v1.1"):
        assert ref in refs

    archive = subprocess.run(
        ["git", "archive", "--format=tar", f"--remote={url(populated)}", "feature"],
        capture_output=True,
        env={**os.environ, **env},
        timeout=60,
    )
    assert archive.returncode == 0, archive.stderr
    listing = subprocess.run(
        ["tar", "-t"], input=archive.stdout, capture_output=True, check=True
    ).stdout.decode()
    assert "file0.txt" in listing.split()


def test_unknown_key_refused(gateway: GatewayProcess, tmp_path: Path) -> None:
    stranger = make_key(tmp_path, "stranger")
    result = ssh(stranger, gateway.port, "git@127.0.0.1")
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr


def test_blocked_user_and_revoked_key(
    api: Api, gateway: GatewayProcess, populated: dict[str, Any], keys_dir: Path, tmp_path: Path
) -> None:
    blocked = new_ssh_user(api, keys_dir)
    api.member(populated, blocked.account, DEVELOPER)
    api.call("POST", f"/users/{blocked.account.id}/block")
    result = git(
        "clone", url(populated), str(tmp_path / "b"), env=git_env(blocked, gateway), check=False
    )
    assert result.returncode != 0
    assert "blocked" in result.stderr or "Permission denied" in result.stderr, result.stderr

    revoked = new_ssh_user(api, keys_dir)
    api.member(populated, revoked.account, DEVELOPER)
    api.call("DELETE", f"/users/{revoked.account.id}/keys/{revoked.key_id}")
    result = git(
        "clone", url(populated), str(tmp_path / "r"), env=git_env(revoked, gateway), check=False
    )
    assert result.returncode != 0
    assert "Permission denied (publickey)" in result.stderr


def test_non_member_and_protected_branch_and_force_push(
    api: Api, gateway: GatewayProcess, populated: dict[str, Any], keys_dir: Path, tmp_path: Path
) -> None:
    outsider = new_ssh_user(api, keys_dir)
    result = git(
        "clone", url(populated), str(tmp_path / "o"), env=git_env(outsider, gateway), check=False
    )
    assert result.returncode != 0
    assert "geogit: " in result.stderr, result.stderr

    developer = new_ssh_user(api, keys_dir)
    api.member(populated, developer.account, DEVELOPER)
    api.protect(populated, "main", MAINTAINER)
    env = git_env(developer, gateway)
    work = tmp_path / "dev"
    git("clone", "-q", url(populated), str(work), env=env)
    before = git("ls-remote", url(populated), "refs/heads/main", env=env).stdout
    commit_all(work, "not allowed")
    result = git("push", "origin", "main", cwd=work, env=env, check=False)
    assert result.returncode != 0
    assert "not allowed" in result.stderr.lower() or "protected" in result.stderr.lower(), (
        result.stderr
    )
    git("reset", "-q", "--hard", "HEAD~2", cwd=work)
    commit_all(work, "rewrite")
    result = git("push", "--force", "origin", "main", cwd=work, env=env, check=False)
    assert result.returncode != 0
    assert git("ls-remote", url(populated), "refs/heads/main", env=env).stdout == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["-T", "git@127.0.0.1", "ls"], "geogit: command not allowed: 'ls'"),
        (["-T", "git@127.0.0.1", "bash -c id"], "geogit: command not allowed: 'bash'"),
        (["-tt", "git@127.0.0.1"], "geogit: interactive sessions (pty) are not allowed"),
        (["-tt", "git@127.0.0.1", "git-upload-pack 'a/b'"], "(pty) are not allowed"),
        (["-s", "git@127.0.0.1", "sftp"], "subsystem request failed"),
        (["-s", "git@127.0.0.1", "other"], "geogit: subsystem 'other' is not allowed"),
        (["-W", "127.0.0.1:22", "git@127.0.0.1"], "stdio forwarding failed"),
    ],
)
def test_refused_requests(
    user: SshUser, gateway: GatewayProcess, args: list[str], message: str
) -> None:
    result = ssh(user.key, gateway.port, *args)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Welcome" not in result.stdout


def test_sftp_refused(user: SshUser, gateway: GatewayProcess) -> None:
    options = ssh_options(user.key, gateway.port)
    options[options.index("-p")] = "-P"
    result = subprocess.run(
        ["sftp", "-b", "-", *options, "git@127.0.0.1"],
        input=b"ls\n",
        capture_output=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert b"subsystem request failed" in result.stderr or b"Connection closed" in result.stderr


def test_local_port_forwarding_refused(user: SshUser, gateway: GatewayProcess) -> None:
    local_port = free_port()
    options = ssh_options(user.key, gateway.port)
    forward = subprocess.Popen(
        [
            "ssh",
            *[o if o != "LogLevel=ERROR" else "LogLevel=INFO" for o in options],
            "-N",
            "-L",
            f"127.0.0.1:{local_port}:127.0.0.1:{gateway.ops_port}",
            "git@127.0.0.1",
        ],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30  # generous: a loaded machine is slow to log in
        while not port_open(local_port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert port_open(local_port), "ssh -L never listened"
        # The local end accepts, but the gateway refuses the channel: nothing gets through.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{local_port}/-/liveness", timeout=5)
    finally:
        forward.terminate()
        _, stderr = forward.communicate(timeout=10)
    assert b"administratively prohibited" in stderr, stderr


def test_concurrent_clones(
    user: SshUser, gateway: GatewayProcess, populated: dict[str, Any], tmp_path: Path
) -> None:
    env = {**os.environ, **git_env(user, gateway), "GIT_TERMINAL_PROMPT": "0"}

    def clone(index: int) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["git", "clone", "-q", url(populated), str(tmp_path / f"c{index}")],
            capture_output=True,
            env=env,
            timeout=120,
        )

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(clone, range(100)))
    failures = [r.stderr.decode() for r in results if r.returncode != 0]
    assert not failures, failures[:3]


def test_client_killed_mid_push_changes_no_ref(
    user: SshUser, gateway: GatewayProcess, populated: dict[str, Any], tmp_path: Path
) -> None:
    env = git_env(user, gateway)
    work = tmp_path / "work"
    git("clone", "-q", url(populated), str(work), env=env)
    before = git("ls-remote", url(populated), env=env).stdout
    (work / "big.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    new = commit_all(work, "big").strip() or git("rev-parse", "HEAD", cwd=work).stdout.strip()
    old = git("rev-parse", "HEAD~1", cwd=work).stdout.strip()
    pack = subprocess.run(
        ["git", "pack-objects", "--stdout", "--revs"],
        input=f"{new}\n^{old}\n".encode(),
        cwd=work,
        capture_output=True,
        check=True,
    ).stdout
    command = f"{old} {new} refs/heads/main\0report-status\n"
    line = f"{len(command) + 4:04x}{command}".encode() + b"0000"
    client = subprocess.Popen(
        [
            "ssh",
            *ssh_options(user.key, gateway.port),
            "git@127.0.0.1",
            f"git-receive-pack '{populated['path_with_namespace']}.git'",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert client.stdin is not None and client.stdout is not None
    assert client.stdout.read(4)  # the ref advertisement has started
    client.stdin.write(line + pack[: len(pack) // 2])
    client.stdin.flush()
    time.sleep(0.5)
    client.send_signal(signal.SIGKILL)
    client.wait(10)
    time.sleep(1)
    assert git("ls-remote", url(populated), env=env).stdout == before


def test_ops_endpoints(gateway: GatewayProcess) -> None:
    assert httpx.get(f"{gateway.ops_url}/-/liveness").status_code == 200
    assert httpx.get(f"{gateway.ops_url}/-/readiness").status_code == 200
    assert "geogit_ssh_sessions_total" in httpx.get(f"{gateway.ops_url}/metrics").text


def test_push_of_a_large_pack(
    user: SshUser, gateway: GatewayProcess, populated: dict[str, Any], tmp_path: Path
) -> None:
    """A pack of a few hundred MB streams through (nothing holds it whole in memory)."""
    env = git_env(user, gateway)
    work = tmp_path / "work"
    git("clone", "-q", url(populated), str(work), env=env)
    chunk = os.urandom(1024 * 1024)
    with (work / "large.bin").open("wb") as handle:
        for index in range(LARGE_PACK_MB):
            handle.write(index.to_bytes(8, "big") + chunk[8:])
    git("-c", "core.compression=0", "-c", "pack.compression=0", "add", "large.bin", cwd=work)
    commit_all(work, "large")
    git("-c", "pack.compression=0", "push", "-q", "origin", "main", cwd=work, env=env)
    head = git("rev-parse", "HEAD", cwd=work).stdout.split()[0]
    assert head in git("ls-remote", url(populated), "refs/heads/main", env=env).stdout
