"""The replicator's storage calls: fetch a replica from the primary, checksum it, remove it."""

from __future__ import annotations

from collections.abc import Mapping

from geogit.common.proto.storage.v1 import repository_pb2, shared_pb2
from geogit.common.repository_client import RepositoryClient

ISSUER = "geogit-replicator"


def repository(shard: str, disk_path: str) -> shared_pb2.Repository:
    return shared_pb2.Repository(storage_name=shard, relative_path=disk_path)


class StorageClient(RepositoryClient):
    def __init__(self, storages: Mapping[str, str], secret: str, sync_timeout: float) -> None:
        super().__init__(storages, secret, ISSUER)
        self._sync_timeout = sync_timeout

    async def replicate_over_http(
        self, repo: shared_pb2.Repository, url: str, headers: Mapping[str, str]
    ) -> str:
        """Fetch every ref (with prune) from `url`; the replica's checksum afterwards. A new
        replica's HEAD is taken from the source; later the caller keeps HEAD in step."""
        request = repository_pb2.ReplicateRepositoryRequest(
            repository=repo,
            http=repository_pb2.HttpSource(
                url=url,
                headers=[repository_pb2.HttpHeader(name=k, value=v) for k, v in headers.items()],
            ),
        )
        response = await self.call("ReplicateRepository", repo, request, self._sync_timeout)
        return str(response.checksum)

    async def set_head(self, repo: shared_pb2.Repository, branch: str) -> None:
        request = repository_pb2.SetHeadRequest(repository=repo, branch=branch)
        await self.call("SetHead", repo, request)
