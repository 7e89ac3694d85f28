"""The internal API's client for storage: the few RepositoryService RPCs it makes itself.

Every call carries a freshly minted storage token; one channel per shard is kept for the
app's lifetime. gRPC failures become `StorageError`, which the HTTP layer answers with 502/503.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

from geogit.common.proto.storage.v1 import repository_pb2, repository_pb2_grpc, shared_pb2
from geogit.common.storage_client import aio_channel, storage_metadata
from geogit.common.tokens import STORAGE_AUDIENCE, issue_token

ISSUER = "geogit-internal-api"
TOKEN_TTL_SECONDS = 60
RPC_TIMEOUT_SECONDS = 30.0


class StorageError(Exception):
    def __init__(self, message: str, code: grpc.StatusCode = grpc.StatusCode.UNKNOWN) -> None:
        super().__init__(message)
        self.code = code


class StorageClient:
    def __init__(self, storages: Mapping[str, str], secret: str) -> None:
        self._storages = dict(storages)
        self._secret = secret
        self._channels: dict[str, grpc.aio.Channel] = {}

    def address(self, shard: str) -> str:
        try:
            return self._storages[shard]
        except KeyError:
            raise StorageError(
                f"storage shard {shard!r} is not configured", grpc.StatusCode.UNAVAILABLE
            ) from None

    def token(self) -> str:
        """A storage JWT for one request, also handed to the gateways that stream to storage."""
        return issue_token(self._secret, ISSUER, STORAGE_AUDIENCE, ttl_seconds=TOKEN_TTL_SECONDS)

    def _stub(self, shard: str) -> repository_pb2_grpc.RepositoryServiceStub:
        if shard not in self._channels:
            self._channels[shard] = aio_channel(self.address(shard))
        return repository_pb2_grpc.RepositoryServiceStub(self._channels[shard])

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            await channel.close()

    async def create_repository(self, repo: shared_pb2.Repository, default_branch: str) -> None:
        request = repository_pb2.CreateRepositoryRequest(
            repository=repo, default_branch=default_branch
        )
        await self._call("CreateRepository", repo, request)

    async def remove_repository(self, repo: shared_pb2.Repository) -> None:
        request = repository_pb2.RemoveRepositoryRequest(repository=repo)
        await self._call("RemoveRepository", repo, request)

    async def checksum(self, repo: shared_pb2.Repository) -> str:
        request = repository_pb2.CalculateChecksumRequest(repository=repo)
        response = await self._call("CalculateChecksum", repo, request)
        return str(response.checksum)

    async def commit_is_ancestor(
        self, repo: shared_pb2.Repository, ancestor: str, child: str
    ) -> bool:
        request = repository_pb2.CommitIsAncestorRequest(
            repository=repo, ancestor_id=ancestor, child_id=child
        )
        response = await self._call("CommitIsAncestor", repo, request)
        return bool(response.value)

    async def set_head(self, repo: shared_pb2.Repository, branch: str) -> None:
        request = repository_pb2.SetHeadRequest(repository=repo, branch=branch)
        await self._call("SetHead", repo, request)

    async def has_refs(self, repo: shared_pb2.Repository, prefix: str) -> bool:
        """Whether any ref matches `prefix` (git for-each-ref's pattern: a name or a prefix)."""
        request = repository_pb2.ListRefsRequest(repository=repo, patterns=[prefix])
        call = self._stub(repo.storage_name).ListRefs(
            request, metadata=storage_metadata(self.token()), timeout=RPC_TIMEOUT_SECONDS
        )
        try:
            async for response in call:
                if response.references:
                    return True
        except grpc.aio.AioRpcError as exc:
            raise _failure("ListRefs", repo, exc) from exc
        finally:
            call.cancel()
        return False

    async def _call(self, method: str, repo: shared_pb2.Repository, request: object) -> Any:
        rpc = getattr(self._stub(repo.storage_name), method)
        try:
            return await rpc(
                request, metadata=storage_metadata(self.token()), timeout=RPC_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as exc:
            raise _failure(method, repo, exc) from exc


def _failure(method: str, repo: shared_pb2.Repository, exc: grpc.aio.AioRpcError) -> StorageError:
    return StorageError(
        f"{method} on {repo.storage_name}: {exc.code().name}: {exc.details()}", exc.code()
    )
