"""The internal API's client for storage: the few RepositoryService RPCs it makes itself.

Failures are `StorageError`s, which the HTTP layer answers with 502/503.
"""

from __future__ import annotations

from collections.abc import Mapping

from geogit.common.proto.storage.v1 import repository_pb2, shared_pb2
from geogit.common.repository_client import RepositoryClient

ISSUER = "geogit-internal-api"


class StorageClient(RepositoryClient):
    def __init__(self, storages: Mapping[str, str], secret: str) -> None:
        super().__init__(storages, secret, ISSUER)

    async def create_repository(self, repo: shared_pb2.Repository, default_branch: str) -> None:
        request = repository_pb2.CreateRepositoryRequest(
            repository=repo, default_branch=default_branch
        )
        await self.call("CreateRepository", repo, request)

    async def commit_is_ancestor(
        self, repo: shared_pb2.Repository, ancestor: str, child: str
    ) -> bool:
        request = repository_pb2.CommitIsAncestorRequest(
            repository=repo, ancestor_id=ancestor, child_id=child
        )
        response = await self.call("CommitIsAncestor", repo, request)
        return bool(response.value)

    async def set_head(self, repo: shared_pb2.Repository, branch: str) -> None:
        request = repository_pb2.SetHeadRequest(repository=repo, branch=branch)
        await self.call("SetHead", repo, request)
