"""The replicator's storage calls: fetch a replica from the primary, checksum it, remove it."""

from __future__ import annotations

from collections.abc import Mapping

from geogit.common.proto.events.v1 import replication_pb2
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
        self,
        repo: shared_pb2.Repository,
        url: str,
        headers: Mapping[str, str],
        *,
        keep_diverged_prefix: str = "",
    ) -> tuple[str, list[replication_pb2.DivergedRef]]:
        """Fetch every ref (with prune) from `url`; the replica's checksum afterwards, and the
        refs kept under `keep_diverged_prefix` (DESIGN §10). A new replica's HEAD is taken from
        the source; later the caller keeps HEAD in step."""
        request = repository_pb2.ReplicateRepositoryRequest(
            repository=repo,
            http=repository_pb2.HttpSource(
                url=url,
                headers=[repository_pb2.HttpHeader(name=k, value=v) for k, v in headers.items()],
            ),
            keep_diverged_prefix=keep_diverged_prefix,
        )
        response = await self.call("ReplicateRepository", repo, request, self._sync_timeout)
        kept = [
            replication_pb2.DivergedRef(ref=ref.ref, kept_as=ref.kept_as, oid=ref.oid)
            for ref in response.diverged
        ]
        return str(response.checksum), kept

    async def copy_within_site(
        self, target: shared_pb2.Repository, source: shared_pb2.Repository
    ) -> str:
        """Storage to storage on this site (a replica following its project's storage move)."""
        return await self.replicate_from_storage(target, source, self._sync_timeout)

    async def set_head(self, repo: shared_pb2.Repository, branch: str) -> None:
        request = repository_pb2.SetHeadRequest(repository=repo, branch=branch)
        await self.call("SetHead", repo, request)
