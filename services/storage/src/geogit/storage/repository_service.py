"""RepositoryService: lifecycle and queries of one bare repository."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from geogit.common.proto.storage.v1 import repository_pb2, repository_pb2_grpc
from geogit.storage.errors import AlreadyExists, InvalidArgument
from geogit.storage.git import Git, GitCommand, GitError
from geogit.storage.housekeeping import Housekeeper
from geogit.storage.locator import RepositoryLocator, check_object_id
from geogit.storage.replication import ReplicaFetcher
from geogit.storage.repositories import Repositories

REFS_PER_MESSAGE = 1000


class RepositoryService(repository_pb2_grpc.RepositoryServiceServicer):
    def __init__(
        self,
        git: Git,
        locator: RepositoryLocator,
        repositories: Repositories,
        fetcher: ReplicaFetcher,
        housekeeper: Housekeeper,
    ) -> None:
        self.git = git
        self.locator = locator
        self.repositories = repositories
        self.fetcher = fetcher
        self.housekeeper = housekeeper

    async def CreateRepository(
        self, request: repository_pb2.CreateRepositoryRequest, context: grpc.aio.ServicerContext
    ) -> repository_pb2.CreateRepositoryResponse:
        path = self.locator.path(request.repository)
        if path.exists():
            raise AlreadyExists(f"repository already exists: {request.repository.relative_path}")
        await self.create_at(path, request.default_branch or "main")
        return repository_pb2.CreateRepositoryResponse()

    async def create_at(self, path: Path, default_branch: str) -> None:
        """Built in a scratch directory and renamed: a repository appears whole or not at all."""
        await self._check_branch_name(default_branch)
        scratch = self.repositories.scratch_dir()
        try:
            await self.git.check(
                GitCommand(
                    "init",
                    options=["--bare", "--quiet", f"--initial-branch={default_branch}"],
                    args=[str(scratch)],
                )
            )
            await self.repositories.disable_auto_gc(scratch)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                scratch.rename(path)
            except OSError as exc:
                raise AlreadyExists(f"repository already exists: {path.name}") from exc
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    async def _check_branch_name(self, branch: str) -> None:
        if not branch.startswith("-"):
            result = await self.git.run(
                GitCommand("check-ref-format", options=["--branch"], args=[branch], separator=False)
            )
            if result.returncode == 0:
                return
        raise InvalidArgument(f"invalid default branch name: {branch!r}")

    async def RepositoryExists(
        self, request: repository_pb2.RepositoryExistsRequest, context: grpc.aio.ServicerContext
    ) -> repository_pb2.RepositoryExistsResponse:
        path = self.locator.path(request.repository)
        return repository_pb2.RepositoryExistsResponse(exists=(path / "HEAD").is_file())

    async def RemoveRepository(
        self, request: repository_pb2.RemoveRepositoryRequest, context: grpc.aio.ServicerContext
    ) -> repository_pb2.RemoveRepositoryResponse:
        path = self.locator.existing(request.repository)
        trash = self.repositories.scratch_dir()
        async with self.housekeeper.excluded(path):
            # Move aside first: readers never see a half-deleted repository.
            path.rename(trash)
        await asyncio.to_thread(shutil.rmtree, trash, True)
        return repository_pb2.RemoveRepositoryResponse()

    async def ListRefs(
        self, request: repository_pb2.ListRefsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[repository_pb2.ListRefsResponse]:
        path = self.locator.existing(request.repository)
        batch: list[repository_pb2.Reference] = []
        if request.head:
            head = await self.git.run(
                GitCommand("symbolic-ref", options=["--quiet"], args=["HEAD"], git_dir=path)
            )
            batch.append(repository_pb2.Reference(name="HEAD", target=head.stdout.decode().strip()))
        async for oid, name in self.repositories.iter_refs(path, list(request.patterns)):
            batch.append(repository_pb2.Reference(name=name, target=oid))
            if len(batch) >= REFS_PER_MESSAGE:
                yield repository_pb2.ListRefsResponse(references=batch)
                batch = []
        if batch:
            yield repository_pb2.ListRefsResponse(references=batch)

    async def CalculateChecksum(
        self, request: repository_pb2.CalculateChecksumRequest, context: grpc.aio.ServicerContext
    ) -> repository_pb2.CalculateChecksumResponse:
        path = self.locator.existing(request.repository)
        checksum = await self.repositories.checksum(path)
        return repository_pb2.CalculateChecksumResponse(checksum=checksum)

    async def CommitIsAncestor(
        self, request: repository_pb2.CommitIsAncestorRequest, context: grpc.aio.ServicerContext
    ) -> repository_pb2.CommitIsAncestorResponse:
        path = self.locator.existing(request.repository)
        ancestor = check_object_id(request.ancestor_id, "ancestor_id")
        child = check_object_id(request.child_id, "child_id")
        result = await self.git.run(
            GitCommand(
                "merge-base",
                options=["--is-ancestor"],
                args=[ancestor, child],
                git_dir=path,
                env=self.locator.quarantine_env(request.repository, path),
            )
        )
        if result.returncode not in (0, 1):
            raise GitError("git merge-base failed", result.returncode, result.stderr)
        return repository_pb2.CommitIsAncestorResponse(value=result.returncode == 0)

    async def HasObjects(
        self, request: repository_pb2.HasObjectsRequest, context: grpc.aio.ServicerContext
    ) -> repository_pb2.HasObjectsResponse:
        path = self.locator.existing(request.repository)
        oids = [check_object_id(oid) for oid in request.object_ids]
        if not oids:
            return repository_pb2.HasObjectsResponse()
        output = await self.git.check(
            GitCommand(
                "cat-file",
                options=["--batch-check=%(objectname)"],
                git_dir=path,
                separator=False,
                env=self.locator.quarantine_env(request.repository, path),
            ),
            input="".join(f"{oid}\n" for oid in oids).encode(),
        )
        missing = [
            line.split()[0] for line in output.decode().splitlines() if line.endswith(" missing")
        ]
        return repository_pb2.HasObjectsResponse(missing=missing)

    async def ReplicateRepository(
        self, request: repository_pb2.ReplicateRepositoryRequest, context: grpc.aio.ServicerContext
    ) -> repository_pb2.ReplicateRepositoryResponse:
        return await self.fetcher.replicate(request)

    async def SetHead(
        self, request: repository_pb2.SetHeadRequest, context: grpc.aio.ServicerContext
    ) -> repository_pb2.SetHeadResponse:
        path = self.locator.existing(request.repository)
        await self._check_branch_name(request.branch)
        await self.git.check(
            GitCommand("symbolic-ref", args=["HEAD", f"refs/heads/{request.branch}"], git_dir=path)
        )
        return repository_pb2.SetHeadResponse()

    async def OptimizeRepository(
        self, request: repository_pb2.OptimizeRepositoryRequest, context: grpc.aio.ServicerContext
    ) -> repository_pb2.OptimizeRepositoryResponse:
        """What the heuristics say the repository needs (housekeeping.heuristics); a repository
        another run is optimizing right now is left to that run."""
        path = self.locator.existing(request.repository)
        await self.housekeeper.optimize(path)
        return repository_pb2.OptimizeRepositoryResponse()
