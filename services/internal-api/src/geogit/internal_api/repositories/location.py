"""Where a project's repository lives: the names storage and the gateways know it by."""

from __future__ import annotations

from geogit.common.internal_api import RepositoryRef, StorageAccess
from geogit.common.proto.storage.v1 import shared_pb2
from geogit.internal_api.clients.storage import StorageClient
from geogit.internal_api.models import Project


def storage_repository(
    project: Project, quarantine: list[str] | None = None
) -> shared_pb2.Repository:
    """The project's repository as storage names it; `quarantine` is a push's object dirs."""
    dirs = quarantine or []
    return shared_pb2.Repository(
        storage_name=project.storage_shard,
        relative_path=project.disk_path,
        gl_repository=project.gl_repository,
        gl_project_path=project.full_path,
        git_object_directory=dirs[0] if dirs else "",
        git_alternate_object_directories=dirs[1:],
    )


def storage_access(project: Project, storage: StorageClient) -> StorageAccess:
    return StorageAccess(
        name=project.storage_shard,
        address=storage.address(project.storage_shard),
        token=storage.token(),
    )


def repository_ref(project: Project) -> RepositoryRef:
    return RepositoryRef(
        storage_name=project.storage_shard,
        relative_path=project.disk_path,
        gl_repository=project.gl_repository,
        gl_project_path=project.full_path,
    )
