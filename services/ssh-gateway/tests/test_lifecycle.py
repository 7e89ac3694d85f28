"""Gateway processes of their own: host keys across restarts, limits, timeouts, SIGTERM."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e import Api, git
from ssh_harness import GatewayProcess, SshUser, port_open, ssh_command, ssh_options

from geogit.devstack.site import Site
from geogit.storage.testing import make_work_tree


def start_gateway(site: Site, base: Path, **settings: str) -> GatewayProcess:
    gateway = GatewayProcess(
        base, site.internal_api_url, site.secrets.internal_api_secret, **settings
    )
    gateway.start()
    return gateway


@pytest.fixture
def project(api: Api, user: SshUser, gateway: GatewayProcess, tmp_path: Path) -> dict[str, Any]:
    created = api.project(user.account)
    tree = make_work_tree(tmp_path / "seed", commits=1)
    env = {"GIT_SSH_COMMAND": ssh_command(user.key, gateway.port)}
    git(
        "push",
        "-q",
        f"git@127.0.0.1:{created['path_with_namespace']}.git",
        "main",
        cwd=tree,
        env=env,
    )
    return created


def stalled_push(user: SshUser, port: int, project: dict[str, Any]) -> subprocess.Popen[bytes]:
    """A receive-pack whose client reads the advertisement and then sends nothing."""
    client = subprocess.Popen(
        [
            "ssh",
            *ssh_options(user.key, port),
            "git@127.0.0.1",
            f"git-receive-pack '{project['path_with_namespace']}'",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert client.stdout is not None
    assert client.stdout.read(4)
    return client


@pytest.fixture
def own_site(ssh_site: tuple[Site, str]) -> Site:
    return ssh_site[0]


def test_host_keys_stable_across_restarts(own_site: Site, tmp_path: Path) -> None:
    first = start_gateway(own_site, tmp_path)
    keys = first.host_key_line()
    assert {kind for kind, _ in keys} == {"ssh-ed25519", "ssh-rsa"}
    assert first.stop() == 0
    second = start_gateway(own_site, tmp_path)
    try:
        assert second.host_key_line() == keys
    finally:
        second.stop()


def test_idle_client_loses_its_session(
    own_site: Site, user: SshUser, project: dict[str, Any], tmp_path: Path
) -> None:
    gateway = start_gateway(own_site, tmp_path, idle_timeout_seconds="1")
    try:
        client = stalled_push(user, gateway.port, project)
        # stdin stays open: the client is alive but sends nothing.
        assert client.wait(15) == 1
        assert client.stderr is not None
        assert b"geogit: idle timeout" in client.stderr.read()
    finally:
        gateway.stop()


def test_sessions_per_user_limited(
    own_site: Site, user: SshUser, project: dict[str, Any], tmp_path: Path
) -> None:
    gateway = start_gateway(own_site, tmp_path, max_sessions_per_user="1")
    try:
        held = stalled_push(user, gateway.port, project)
        second = subprocess.run(
            ["ssh", *ssh_options(user.key, gateway.port), "git@127.0.0.1"],
            capture_output=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert b"too many concurrent sessions for @" in second.stderr
        held.kill()
        held.wait()
    finally:
        gateway.stop()


def test_login_grace(own_site: Site, tmp_path: Path) -> None:
    gateway = start_gateway(own_site, tmp_path, login_grace_seconds="1")
    try:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
            sock.sendall(b"SSH-2.0-OpenSSH_9.0\r\n")
            started = time.monotonic()
            while sock.recv(4096):
                pass
            assert time.monotonic() - started < 8
    finally:
        gateway.stop()


def test_sigterm_drains(
    own_site: Site, user: SshUser, project: dict[str, Any], tmp_path: Path
) -> None:
    gateway = start_gateway(
        own_site, tmp_path, idle_timeout_seconds="60", shutdown_grace_seconds="2"
    )
    client = stalled_push(user, gateway.port, project)
    assert gateway.process is not None
    gateway.process.terminate()
    time.sleep(0.5)
    # Stopped accepting, not ready, but still running the session.
    assert gateway.process.poll() is None
    assert not port_open(gateway.port)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{gateway.ops_url}/-/readiness", timeout=2).raise_for_status()
    # The grace ends the stalled session; the gateway exits cleanly.
    assert gateway.process.wait(15) == 0
    client.kill()
    client.wait()
