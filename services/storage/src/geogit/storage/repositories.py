"""What RepositoryService and ReplicaFetcher share about the repositories on this storage:
their refs and checksum, a scratch directory beside them, and the per-repository writer lock.

Both RPC families build on it, so neither needs the other: ReplicateRepository takes the lock
and computes the checksum. Housekeeping (OptimizeRepository) does not take it: git's repack
is safe beside writers, and a long repack must not hold replication up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from geogit.common.storage_client import EMPTY_CHECKSUM
from geogit.storage.git import AUTO_GC_OFF, Git, GitCommand

_REF_FORMAT = "--format=%(objectname) %(refname)"
# Refs only storage writes and reads (the diverged refs a re-sync keeps, DESIGN §10): clients
# never see or push them (git_services hides them), replication neither fetches nor prunes
# them, and the checksum leaves them out, so a replica keeping some still matches its primary.
PRIVATE_REFS = "refs/geogit/"


class Repositories:
    def __init__(self, git: Git, runtime_dir: Path) -> None:
        self.git = git
        self.runtime_dir = runtime_dir
        self._locks: dict[Path, asyncio.Lock] = {}

    def scratch_dir(self) -> Path:
        """A fresh path on the storage's filesystem, so a finished build is renamed in place."""
        scratch_root = self.runtime_dir / "tmp"
        scratch_root.mkdir(parents=True, exist_ok=True)
        return scratch_root / uuid.uuid4().hex

    async def disable_auto_gc(self, path: Path) -> None:
        """Written into a new repository's config: housekeeping is the only one to repack."""
        for key, value in AUTO_GC_OFF:
            await self.git.check(GitCommand("config", args=[key, value], git_dir=path))

    @contextlib.asynccontextmanager
    async def lock(self, path: Path) -> AsyncIterator[None]:
        """Serialize writers of one repository inside this process."""
        lock = self._locks.setdefault(path, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._locks.get(path) is lock:
                del self._locks[path]

    async def iter_refs(self, path: Path, patterns: list[str]) -> AsyncIterator[tuple[str, str]]:
        command = GitCommand("for-each-ref", options=[_REF_FORMAT], args=patterns, git_dir=path)
        async with self.git.process(command) as proc:
            stderr = asyncio.create_task(proc.drain_stderr())
            assert proc.proc.stdout is not None
            async for line in proc.proc.stdout:
                oid, _, name = line.decode().rstrip("\n").partition(" ")
                yield oid, name
            await stderr
            if (code := await proc.wait()) != 0:
                raise proc.failure(code)

    async def iter_public_refs(self, path: Path) -> AsyncIterator[tuple[str, str]]:
        """Every ref outside PRIVATE_REFS (for-each-ref excludes patterns only from git 2.42)."""
        async for oid, name in self.iter_refs(path, []):
            if not name.startswith(PRIVATE_REFS):
                yield oid, name

    async def checksum(self, path: Path) -> str:
        """XOR of SHA-1 over each public "<oid> <ref>" line: order-free, so equal refs give
        equal sums."""
        accumulator = 0
        async for oid, name in self.iter_public_refs(path):
            accumulator ^= int.from_bytes(hashlib.sha1(f"{oid} {name}".encode()).digest(), "big")
        return f"{accumulator:040x}" if accumulator else EMPTY_CHECKSUM
