"""ReplicateRepository: make a local repository's refs equal to a source's.

Two sources (DESIGN §5): another storage's SSHUploadPack through the git-ssh helper (same
site), or a smart-HTTP URL with extra headers (a secondary fetching through the primary's
front door). A first sync builds the repository in a scratch directory and renames it into
place, so a failed or killed first sync leaves nothing behind; later syncs fetch with
`--atomic`, so refs move all together or not at all. Storage's private refs (refs/geogit/) are
neither fetched nor pruned; a later sync may keep the refs it would drop (diverged.py).
"""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

from geogit.common.proto.storage.v1 import repository_pb2
from geogit.storage.diverged import DivergedRefs, check_prefix
from geogit.storage.errors import InvalidArgument, Unavailable
from geogit.storage.git import AUTO_GC_OFF, Git, GitCommand, GitError, object_check_config
from geogit.storage.housekeeping import Housekeeper
from geogit.storage.locator import RepositoryLocator
from geogit.storage.repositories import PRIVATE_REFS, Repositories
from geogit.storage.ssh_helper import SSH_PAYLOAD_ENV, SshPayload

_HEADER_NAME = re.compile(r"\A[A-Za-z0-9!#$%&'*+.^_`|~-]+\Z")
_FETCH_OPTIONS = ["--quiet", "--prune", "--force", "--atomic", "--no-write-fetch-head"]
# Every ref, except the private ones: a negative refspec keeps the source's out of the fetch
# and ours out of --prune (git 2.29+).
_REFSPECS = ["+refs/*:refs/*", f"^{PRIVATE_REFS}*"]
STORAGE_URL_HOST = "geogit-storage"


def ssh_helper_command() -> str:
    return f"{shlex.quote(sys.executable)} -m geogit.storage.ssh_helper"


class FetchSource:
    """A URL plus the configuration and environment git needs to reach it."""

    def __init__(
        self, url: str, config: list[tuple[str, str]], env: dict[str, str], protocol: str = "2"
    ) -> None:
        self.url = url
        # A replica checks what it receives as the primary did: a corrupt source must not
        # spread.
        self.config = [
            ("protocol.version", protocol),
            *object_check_config("fetch"),
            # No `gc --auto` after the fetch: housekeeping follows the replication instead.
            *AUTO_GC_OFF,
            *config,
        ]
        self.env = env

    @classmethod
    def from_request(cls, request: repository_pb2.ReplicateRepositoryRequest) -> FetchSource:
        which = request.WhichOneof("source")
        if which == "storage":
            return cls.from_storage(request.storage)
        if which == "http":
            return cls.from_http(request.http)
        raise InvalidArgument("replication source is missing (storage or http)")

    @classmethod
    def from_storage(cls, source: repository_pb2.StorageSource) -> FetchSource:
        if not source.address or not source.repository.relative_path:
            raise InvalidArgument("storage source needs an address and a repository")
        payload = SshPayload(
            address=source.address,
            token=source.token,
            storage_name=source.repository.storage_name,
            relative_path=source.repository.relative_path,
        )
        env = {
            "GIT_SSH_COMMAND": ssh_helper_command(),
            # Makes git pass GIT_PROTOCOL to the helper, so protocol v2 is used.
            "GIT_SSH_VARIANT": "ssh",
            SSH_PAYLOAD_ENV: payload.to_json(),
        }
        return cls(f"{STORAGE_URL_HOST}:{source.repository.relative_path}", [], env)

    @classmethod
    def from_http(cls, source: repository_pb2.HttpSource) -> FetchSource:
        parts = urlsplit(source.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidArgument(f"http source must be an http(s) URL: {source.url[:200]!r}")
        config = [("http.extraHeader", _header_line(h.name, h.value)) for h in source.headers]
        # A replica wants every ref, so v2's separate ls-refs request buys nothing over
        # another region's link: v0 fetches in two requests (refs, then the pack), v2 in three.
        return cls(source.url, config, {}, protocol="0")


def _header_line(name: str, value: str) -> str:
    if not _HEADER_NAME.match(name):
        raise InvalidArgument(f"invalid HTTP header name: {name[:80]!r}")
    if any(c in value for c in "\r\n\0"):
        raise InvalidArgument(f"invalid value for HTTP header {name}")
    return f"{name}: {value}"


class ReplicaFetcher:
    """Fetches a replica's refs from its source (ReplicateRepository); `timeout` bounds one
    fetch, so a first sync of a large repository may take long but not forever."""

    def __init__(
        self,
        git: Git,
        locator: RepositoryLocator,
        repositories: Repositories,
        timeout: float,
        housekeeper: Housekeeper | None = None,
    ) -> None:
        self.git = git
        self.housekeeper = housekeeper
        self.locator = locator
        self.repositories = repositories
        self.timeout = timeout
        self.diverged = DivergedRefs(git, repositories)

    async def replicate(
        self, request: repository_pb2.ReplicateRepositoryRequest
    ) -> repository_pb2.ReplicateRepositoryResponse:
        path = self.locator.path(request.repository)
        source = FetchSource.from_request(request)
        prefix = request.keep_diverged_prefix
        if prefix:
            await check_prefix(self.git, prefix)
        diverged: list[repository_pb2.DivergedRef] = []
        async with self.repositories.lock(path):
            created = not (path / "HEAD").is_file()
            if created:
                await self._replicate_new(path, source)
            else:
                before = await self.diverged.snapshot(path) if prefix else {}
                await self._fetch(path, source)
                if before:
                    diverged = await self.diverged.keep(path, prefix, before)
                if request.sync_head:
                    await self._sync_head(path, source)
            checksum = await self.repositories.checksum(path)
        if self.housekeeper is not None:
            # A replica gets the same housekeeping as its primary, decided by its own layout.
            self.housekeeper.after_replication(path)
        return repository_pb2.ReplicateRepositoryResponse(
            checksum=checksum, created=created, diverged=diverged
        )

    async def _replicate_new(self, path: Path, source: FetchSource) -> None:
        scratch = self.repositories.scratch_dir()
        try:
            await self.git.check(
                GitCommand("init", options=["--bare", "--quiet"], args=[str(scratch)])
            )
            await self.repositories.disable_auto_gc(scratch)
            await self._fetch(scratch, source)
            await self._sync_head(scratch, source)
            path.parent.mkdir(parents=True, exist_ok=True)
            scratch.rename(path)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    async def _fetch(self, path: Path, source: FetchSource) -> None:
        command = GitCommand(
            "fetch",
            options=_FETCH_OPTIONS,
            args=[source.url, *_REFSPECS],
            git_dir=path,
            config=source.config,
            env=source.env,
        )
        try:
            await self.git.check(command, timeout=self.timeout)
        except GitError as exc:
            if b"could not read Username" in exc.stderr:
                raise Unavailable(
                    "the replication source refused our credentials (HTTP 401)"
                ) from exc
            raise Unavailable(f"fetching from the replication source failed: {exc}") from exc

    async def _sync_head(self, path: Path, source: FetchSource) -> None:
        output = await self.git.check(
            GitCommand(
                "ls-remote",
                options=["--symref"],
                args=[source.url, "HEAD"],
                config=source.config,
                env=source.env,
            )
        )
        for line in output.decode().splitlines():
            target, _, name = line.partition("\t")
            if name == "HEAD" and target.startswith("ref: refs/heads/"):
                await self.git.check(
                    GitCommand(
                        "symbolic-ref", args=["HEAD", target.removeprefix("ref: ")], git_dir=path
                    )
                )
                return
