"""Diverged refs: what a re-sync after an unplanned failover would drop is kept (DESIGN §10).

A replica may hold commits the new primary never received. ReplicateRepository with
`keep_diverged_prefix` snapshots the public refs before its fetch; afterwards every ref the
fetch moved or deleted whose old object no public ref reaches any more is kept as
`<prefix><refname>`, in one update-ref transaction, and reported. A fast-forward, or a deleted
branch whose commit another branch still holds, loses nothing and keeps nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection, Mapping
from pathlib import Path

from geogit.common.proto.storage.v1 import repository_pb2
from geogit.storage.errors import InvalidArgument
from geogit.storage.git import Git, GitCommand
from geogit.storage.repositories import PRIVATE_REFS, Repositories

log = logging.getLogger(__name__)

DIVERGED_REFS = f"{PRIVATE_REFS}diverged/"
MAX_PREFIX_CHARS = 1024


async def check_prefix(git: Git, prefix: str) -> None:
    """Refuse a prefix that is not a directory of valid ref names under DIVERGED_REFS.

    git's own check-ref-format decides validity (`..`, spaces, control characters, `.lock`
    components, ...), on the prefix followed by a ref name as the kept refs will be.
    """
    what = f"keep_diverged_prefix {prefix[:200]!r}"
    if len(prefix) > MAX_PREFIX_CHARS:
        raise InvalidArgument(f"{what} is longer than {MAX_PREFIX_CHARS} characters")
    if not prefix.startswith(DIVERGED_REFS):
        raise InvalidArgument(f"{what} must start with {DIVERGED_REFS!r}")
    if prefix == DIVERGED_REFS:
        raise InvalidArgument(
            f"{what} must name a directory under it, e.g. {DIVERGED_REFS}epoch-2/"
        )
    if not prefix.endswith("/"):
        raise InvalidArgument(f"{what} must end with '/'")
    # A NUL cannot even reach git's argv.
    if "\0" not in prefix:
        # check-ref-format takes no "--"; the name starts with "refs/", never with "-".
        result = await git.run(
            GitCommand("check-ref-format", args=[f"{prefix}refs"], separator=False)
        )
        if result.returncode == 0:
            return
    raise InvalidArgument(f"{what} is not a valid ref name prefix (git check-ref-format)")


class DivergedRefs:
    """A replica's public refs before a re-sync's fetch, and what the fetch made it lose."""

    def __init__(self, git: Git, repositories: Repositories) -> None:
        self.git = git
        self.repositories = repositories

    async def snapshot(self, path: Path) -> dict[str, str]:
        """The public refs, name to object id: what `keep` compares the fetched refs with."""
        return {name: oid async for oid, name in self.repositories.iter_public_refs(path)}

    async def keep(
        self, path: Path, prefix: str, before: Mapping[str, str]
    ) -> list[repository_pb2.DivergedRef]:
        """Keep under `prefix` each ref of `before` whose object the public refs lost.

        Called with the repository's lock held, right after the fetch. A kept ref is never
        overwritten: one kept by an earlier sync is not reported again, and one whose name
        another object already holds is reported without being kept.
        """
        after = await self.snapshot(path)
        moved = {name: oid for name, oid in before.items() if after.get(name) != oid}
        lost = await self._unreachable(path, set(moved.values()))
        if not lost:
            return []
        existing = {name: oid async for oid, name in self.repositories.iter_refs(path, [prefix])}
        diverged: list[repository_pb2.DivergedRef] = []
        created: list[tuple[str, str]] = []
        for name, oid in sorted(moved.items()):
            kept_as = prefix + name
            if oid not in lost or existing.get(kept_as) == oid:
                continue
            if _blocked(kept_as, existing):
                log.warning(
                    "diverged ref not kept: its name is taken",
                    extra={"path": str(path), "ref": name, "oid": oid, "kept_as": kept_as},
                )
                kept_as = ""
            else:
                created.append((kept_as, oid))
            diverged.append(repository_pb2.DivergedRef(ref=name, kept_as=kept_as, oid=oid))
        if created:
            await self._create(path, created)
        return diverged

    async def _unreachable(self, path: Path, oids: Collection[str]) -> set[str]:
        """Those of `oids` that no public ref reaches.

        One walk for all of them: from them, stopping wherever the public refs reach, so a
        fast-forward costs the few commits it added. With `--objects` a tag object counts by
        itself, not by the commit it points at. The output (everything only the lost refs
        reach) is streamed, never held.
        """
        if not oids:
            return set()
        command = GitCommand(
            "rev-list",
            options=[
                "--objects",
                "--no-object-names",
                "--stdin",
                "--not",
                f"--exclude={PRIVATE_REFS}*",
                "--all",
            ],
            git_dir=path,
        )
        lost: set[str] = set()
        async with self.git.process(command, stdin=True) as proc:
            stderr = asyncio.create_task(proc.drain_stderr())
            # rev-list reads all of its input before it writes anything: no deadlock.
            await proc.write_stdin(_lines(oids))
            assert proc.proc.stdout is not None
            async for line in proc.proc.stdout:
                if (oid := line.decode().strip()) in oids:
                    lost.add(oid)
            await stderr
            if (code := await proc.wait()) != 0:
                raise proc.failure(code)
        return lost

    async def _create(self, path: Path, refs: list[tuple[str, str]]) -> None:
        """All of them or none: one update-ref transaction, each ref created only if absent."""
        await self.git.check(
            GitCommand("update-ref", options=["--stdin"], git_dir=path),
            input="".join(f"create {name} {oid}\n" for name, oid in refs).encode(),
        )


async def _lines(oids: Collection[str]) -> AsyncIterator[bytes]:
    yield "".join(f"{oid}\n" for oid in oids).encode()


def _blocked(name: str, existing: Collection[str]) -> bool:
    """Whether `name` cannot be created beside `existing`: taken, or a file/directory clash
    (refs/x exists and refs/x/y is wanted, or the other way round)."""
    parts = name.split("/")
    if any("/".join(parts[:i]) in existing for i in range(1, len(parts) + 1)):
        return True
    return any(other.startswith(f"{name}/") for other in existing)
