"""The gateway as a real process against a real site, and the OpenSSH client around it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from e2e import Account, Api

from geogit.common.net import free_port

GATEWAY_BIN = str(Path(sys.executable).parent / "geogit-ssh-gateway")


class GatewayProcess:
    def __init__(self, base: Path, internal_api_url: str, secret: str, **settings: str) -> None:
        self.base = base
        self.port = free_port()
        self.ops_port = free_port()
        self.host_keys_dir = base / "host-keys"
        self.log_path = base / f"gateway-{self.port}.log"
        self.env = {
            **os.environ,
            "GEOGIT_SSH_ADDRESS": f"127.0.0.1:{self.port}",
            "GEOGIT_OPS_ADDRESS": f"127.0.0.1:{self.ops_port}",
            "GEOGIT_HOST_KEYS_DIR": str(self.host_keys_dir),
            "GEOGIT_INTERNAL_API_URL": internal_api_url,
            "GEOGIT_INTERNAL_API_SECRET": secret,
            **{f"GEOGIT_{name.upper()}": value for name, value in settings.items()},
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.ops_port}"

    def start(self, timeout: float = 20.0) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [GATEWAY_BIN], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.ops_url}/-/readiness", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway not ready:\n{self.log_path.read_text()}")

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def host_key_line(self) -> set[tuple[str, str]]:
        """The host keys as (type, base64) pairs, as ssh-keyscan sees them."""
        output = subprocess.run(
            ["ssh-keyscan", "-t", "ed25519,rsa", "-p", str(self.port), "127.0.0.1"],
            capture_output=True,
            check=True,
            timeout=20,
        ).stdout.decode()
        return {
            (fields[1], fields[2])
            for fields in (line.split() for line in output.splitlines())
            if len(fields) == 3 and not fields[0].startswith("#")
        }


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class SshKey:
    private: Path
    public: str


def make_key(directory: Path, name: str) -> SshKey:
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
        check=True,
        timeout=20,
    )
    return SshKey(path, path.with_suffix(".pub").read_text().strip())


def ssh_options(key: SshKey, port: int) -> list[str]:
    return [
        "-i",
        str(key.private),
        "-p",
        str(port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-F",
        "/dev/null",
    ]


def ssh_command(key: SshKey, port: int) -> str:
    return " ".join(["ssh", *ssh_options(key, port)])


def ssh(
    key: SshKey, port: int, *args: str, timeout: float = 30, input: bytes = b""
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["ssh", *ssh_options(key, port), *args],
        capture_output=True,
        timeout=timeout,
        input=input,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
    )


@dataclass(frozen=True)
class SshUser:
    account: Account
    key: SshKey
    key_id: int


def new_ssh_user(api: Api, keys_dir: Path) -> SshUser:
    account = api.account()
    key = make_key(keys_dir, account.username)
    added = api.call(
        "POST", f"/users/{account.id}/keys", json={"title": "laptop", "key": key.public}
    )
    return SshUser(account, key, int(added["id"]))
