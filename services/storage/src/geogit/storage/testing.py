"""Test and benchmark support: run the real geogit-storage process and drive it with git."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import grpc

from geogit.common.net import free_port
from geogit.common.paths import hashed_repository_path
from geogit.common.proto.storage.v1 import (
    repository_pb2,
    repository_pb2_grpc,
    shared_pb2,
)
from geogit.common.storage_client import storage_metadata, sync_channel
from geogit.common.tokens import STORAGE_AUDIENCE, issue_token
from geogit.storage.replication import ssh_helper_command
from geogit.storage.ssh_helper import SSH_PAYLOAD_ENV

STORAGE_SECRET = "storage-secret-for-tests-0123456789abcdef"
API_SECRET = "internal-api-secret-for-tests-0123456789"


class StorageProcess:
    def __init__(self, root: Path, internal_api_url: str, name: str = "default") -> None:
        self.root = root
        self.name = name
        self.port = free_port()
        self.ops_port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = root.parent / f"storage-{self.port}.log"
        self.env = {
            **os.environ,
            "GEOGIT_STORAGE_NAME": name,
            "GEOGIT_STORAGE_ROOT": str(root),
            "GEOGIT_LISTEN_ADDRESS": self.address,
            "GEOGIT_OPS_ADDRESS": f"127.0.0.1:{self.ops_port}",
            "GEOGIT_STORAGE_SECRET": STORAGE_SECRET,
            "GEOGIT_INTERNAL_API_URL": internal_api_url,
            "GEOGIT_INTERNAL_API_SECRET": API_SECRET,
            "GEOGIT_SHUTDOWN_GRACE_SECONDS": "20",
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "geogit.storage.server"],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 20
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"storage did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ops_port}/-/readiness", timeout=1):
                return True
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        return code

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = sync_channel(self.address)
        return self._channel

    def token(self, ttl: int = 60) -> str:
        return issue_token(STORAGE_SECRET, "tests", STORAGE_AUDIENCE, ttl_seconds=ttl)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return storage_metadata(self.token())

    @property
    def repositories(self) -> repository_pb2_grpc.RepositoryServiceStub:
        return repository_pb2_grpc.RepositoryServiceStub(self.channel)

    def create(
        self, project_id: int | None = None, default_branch: str = "main"
    ) -> shared_pb2.Repository:
        project_id = project_id or uuid.uuid4().int % 10**9
        repo = shared_pb2.Repository(
            storage_name=self.name,
            relative_path=hashed_repository_path(project_id),
            gl_repository=f"project-{project_id}",
            gl_project_path=f"group/project-{project_id}",
        )
        self.repositories.CreateRepository(
            repository_pb2.CreateRepositoryRequest(repository=repo, default_branch=default_branch),
            metadata=self.metadata(),
        )
        return repo

    def path_of(self, repo: shared_pb2.Repository) -> Path:
        return self.root / repo.relative_path

    def checksum(self, repo: shared_pb2.Repository) -> str:
        response = self.repositories.CalculateChecksum(
            repository_pb2.CalculateChecksumRequest(repository=repo), metadata=self.metadata()
        )
        return str(response.checksum)

    def git_env(
        self,
        repo: shared_pb2.Repository | None = None,
        gl_id: str = "user-1",
        username: str = "alice",
        correlation_id: str = "",
    ) -> dict[str, str]:
        """Environment that makes `git ... geogit-storage:<path>` talk to this storage."""
        payload = {
            "address": self.address,
            "token": self.token(),
            "storage_name": self.name,
            "gl_id": gl_id,
            "gl_username": username,
            "correlation_id": correlation_id,
        }
        if repo is not None:
            payload |= {
                "gl_repository": repo.gl_repository,
                "gl_project_path": repo.gl_project_path,
            }
        return {
            **os.environ,
            "GIT_SSH_COMMAND": ssh_helper_command(),
            "GIT_SSH_VARIANT": "ssh",
            SSH_PAYLOAD_ENV: json.dumps(payload),
            "GIT_TERMINAL_PROMPT": "0",
        }

    @staticmethod
    def url(repo: shared_pb2.Repository) -> str:
        return f"geogit-storage:{repo.relative_path}"


def git(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, input=input, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"git {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stderr.decode(errors='replace')}"
        )
    return result


def make_work_tree(path: Path, commits: int = 3, branch: str = "main") -> Path:
    git("init", "-q", "-b", branch, str(path))
    for i in range(commits):
        (path / f"file{i}.txt").write_text(f"content {i}\n" * (i + 1))
        commit_all(path, f"commit {i}")
    return path


def commit_all(path: Path, message: str) -> str:
    git("add", "-A", cwd=path)
    git(
        "-c",
        "user.name=Test",
        "-c",
        "user.email=test@example.com",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        message,
        cwd=path,
    )
    return git("rev-parse", "HEAD", cwd=path).stdout.decode().strip()


def _literal_object(repo: Path, kind: str, body: bytes) -> str:
    """An object written as given, unchecked, the way old tools wrote the quirks real
    histories carry."""
    out = git("hash-object", "--literally", "-w", "-t", kind, "--stdin", cwd=repo, input=body)
    return out.stdout.decode().strip()


def _tree(repo: Path, entries: list[tuple[bytes, bytes, str]]) -> str:
    body = b"".join(mode + b" " + name + b"\0" + bytes.fromhex(oid) for mode, name, oid in entries)
    return _literal_object(repo, "tree", body)


def _commit(repo: Path, tree: str, parent: str | None, author: bytes, message: bytes) -> str:
    lines = [b"tree " + tree.encode()]
    if parent:
        lines.append(b"parent " + parent.encode())
    lines += [b"author " + author, b"committer " + author, b"", message]
    return _literal_object(repo, "commit", b"\n".join(lines) + b"\n")


def make_quirky_history(path: Path, branch: str = "main") -> str:
    """A work tree whose `branch` holds the three quirks storage accepts (git.FSCK_IGNORED):
    a malformed time zone, a signature with no space before its date, and a tree with a
    zero-padded mode. Returns the head commit."""
    git("init", "-q", "-b", branch, str(path))
    blob = _literal_object(path, "blob", b"old history\n")
    flat = _tree(path, [(b"100644", b"README", blob)])
    first = _commit(path, flat, None, b"Old Tool <old@example.com> 1104537600 +051800", b"bad tz")
    second = _commit(path, flat, first, b"No Space <ns@example.com>1104537700 +0000", b"no space")
    padded = _tree(path, [(b"100644", b"README", blob), (b"040000", b"docs", flat)])
    third = _commit(path, padded, second, b"Grit <g@example.com> 1104537800 +0000", b"padded")
    git("update-ref", f"refs/heads/{branch}", third, cwd=path)
    git("reset", "-q", "--hard", cwd=path)
    return third


def make_dotgit_commit(path: Path, branch: str = "main") -> str:
    """A commit on `branch` whose tree has a `.git` directory: checking it out would let the
    repository write its own configuration (and hooks) into a victim's clone."""
    parent = git("rev-parse", branch, cwd=path).stdout.decode().strip()
    config = _literal_object(path, "blob", b"[core]\n\tfsmonitor = touch /tmp/pwned\n")
    dotgit = _tree(path, [(b"100644", b"config", config)])
    tree = _tree(path, [(b"40000", b".git", dotgit)])
    head = _commit(path, tree, parent, b"Mallory <m@example.com> 1104537900 +0000", b"dotgit")
    git("update-ref", f"refs/heads/{branch}", head, cwd=path)
    return head


def refs_of(repo_path: Path) -> dict[str, str]:
    out = git(
        "--git-dir", str(repo_path), "for-each-ref", "--format=%(refname) %(objectname)"
    ).stdout.decode()
    return dict(line.split(" ", 1) for line in out.splitlines())


def loose_and_packed_objects(repo_path: Path) -> set[str]:
    """Every object stored outside quarantine (objects/tmp_objdir-incoming-*)."""
    out = git(
        "--git-dir",
        str(repo_path),
        "cat-file",
        "--batch-all-objects",
        "--batch-check=%(objectname)",
        env={**os.environ, "GIT_QUARANTINE_PATH": ""},
    )
    return set(out.stdout.decode().split())
