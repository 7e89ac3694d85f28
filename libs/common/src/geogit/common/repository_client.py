"""The base of the unary RepositoryService clients the internal API and the replicator use.

Every call carries a freshly minted storage token; one channel per shard is kept for the
client's lifetime. gRPC failures become `StorageError`, named after the RPC and the shard, so
the caller decides once what a failure means for its own callers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

from geogit.common.proto.storage.v1 import repository_pb2, repository_pb2_grpc, shared_pb2
from geogit.common.storage_client import ChannelPool, storage_metadata
from geogit.common.tokens import STORAGE_AUDIENCE, issue_token

TOKEN_TTL_SECONDS = 60


class StorageError(Exception):
    def __init__(self, message: str, code: grpc.StatusCode = grpc.StatusCode.UNKNOWN) -> None:
        super().__init__(message)
        self.code = code


class RepositoryClient:
    """RepositoryService on the shards of one site, as `issuer` (the calling service)."""

    def __init__(
        self, storages: Mapping[str, str], secret: str, issuer: str, timeout: float = 30.0
    ) -> None:
        self._storages = dict(storages)
        self._secret = secret
        self._issuer = issuer
        self._timeout = timeout
        self._channels = ChannelPool()

    @property
    def shards(self) -> list[str]:
        return list(self._storages)

    def address(self, shard: str) -> str:
        try:
            return self._storages[shard]
        except KeyError:
            raise StorageError(
                f"storage shard {shard!r} is not configured", grpc.StatusCode.UNAVAILABLE
            ) from None

    def token(self) -> str:
        """A storage JWT for one request, also handed to the gateways that stream to storage."""
        return issue_token(
            self._secret, self._issuer, STORAGE_AUDIENCE, ttl_seconds=TOKEN_TTL_SECONDS
        )

    def stub(self, shard: str) -> repository_pb2_grpc.RepositoryServiceStub:
        return repository_pb2_grpc.RepositoryServiceStub(self._channels.get(self.address(shard)))

    async def close(self) -> None:
        await self._channels.close()

    async def remove_repository(self, repo: shared_pb2.Repository) -> None:
        request = repository_pb2.RemoveRepositoryRequest(repository=repo)
        await self.call("RemoveRepository", repo, request)

    async def checksum(self, repo: shared_pb2.Repository) -> str:
        request = repository_pb2.CalculateChecksumRequest(repository=repo)
        response = await self.call("CalculateChecksum", repo, request)
        return str(response.checksum)

    async def has_refs(self, repo: shared_pb2.Repository, prefix: str) -> bool:
        """Whether any ref matches `prefix` (git for-each-ref's pattern: a name or a prefix)."""
        request = repository_pb2.ListRefsRequest(repository=repo, patterns=[prefix])
        call = self.stub(repo.storage_name).ListRefs(
            request, metadata=storage_metadata(self.token()), timeout=self._timeout
        )
        try:
            async for response in call:
                if response.references:
                    return True
        except grpc.aio.AioRpcError as exc:
            raise storage_failure("ListRefs", repo, exc) from exc
        finally:
            call.cancel()
        return False

    async def replicate_from_storage(
        self, target: shared_pb2.Repository, source: shared_pb2.Repository, timeout: float
    ) -> str:
        """Make `target`'s refs and HEAD equal to `source`'s, on another shard of this site:
        the target's storage fetches from the source's SSHUploadPack (gitaly-ssh's role, no
        SSH daemon). A storage move's copies; a secondary's replica following a move. Returns
        the target's checksum."""
        request = repository_pb2.ReplicateRepositoryRequest(
            repository=target,
            storage=repository_pb2.StorageSource(
                address=self.address(source.storage_name), token=self.token(), repository=source
            ),
            sync_head=True,
        )
        response = await self.call("ReplicateRepository", target, request, timeout=timeout)
        return str(response.checksum)

    async def call(
        self, method: str, repo: shared_pb2.Repository, request: object, timeout: float = 0
    ) -> Any:
        rpc = getattr(self.stub(repo.storage_name), method)
        try:
            return await rpc(
                request, metadata=storage_metadata(self.token()), timeout=timeout or self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise storage_failure(method, repo, exc) from exc


def storage_failure(
    method: str, repo: shared_pb2.Repository, exc: grpc.aio.AioRpcError
) -> StorageError:
    return StorageError(
        f"{method} on {repo.storage_name}: {exc.code().name}: {exc.details()}", exc.code()
    )
