"""A project as the admin API shows it (GitLab v4's project entity, the fields geogit has)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from geogit.internal_api.config import InternalApiSettings
from geogit.internal_api.models import Project


class NamespaceOut(BaseModel):
    id: int
    name: str
    path: str
    kind: str
    full_path: str


class ProjectOut(BaseModel):
    id: int
    name: str
    path: str
    path_with_namespace: str
    name_with_namespace: str
    description: str
    default_branch: str
    visibility: str
    namespace: NamespaceOut
    http_url_to_repo: str
    ssh_url_to_repo: str
    web_url: str
    created_at: datetime
    last_activity_at: datetime
    repository_storage: str

    @classmethod
    def of(cls, project: Project, settings: InternalApiSettings) -> ProjectOut:
        web_url = f"{settings.external_url.rstrip('/')}/{project.full_path}"
        return cls(
            id=project.id,
            name=project.name,
            path=project.path,
            path_with_namespace=project.full_path,
            name_with_namespace=f"{project.namespace} / {project.name}",
            description=project.description,
            default_branch=project.default_branch,
            visibility=project.visibility,
            # Every namespace is a user's personal one: its id is the user's.
            namespace=NamespaceOut(
                id=project.owner_id,
                name=project.namespace,
                path=project.namespace,
                kind="user",
                full_path=project.namespace,
            ),
            http_url_to_repo=f"{web_url}.git",
            ssh_url_to_repo=f"{settings.external_ssh_url.rstrip('/')}/{project.full_path}.git",
            web_url=web_url,
            created_at=project.created_at,
            last_activity_at=project.last_activity_at,
            repository_storage=project.storage_shard,
        )
