"""The events a project's life writes to the outbox, each in the caller's transaction.

Domain events go to the project's aggregate on the domain stream; repository events carry the
project's `repository_seq` as their sequence, the number that secondaries compare replicas to.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.events import project_aggregate
from geogit.common.proto.events.v1 import domain_pb2, repository_pb2
from geogit.internal_api.access.levels import AccessLevel
from geogit.internal_api.events.outbox import Outbox
from geogit.internal_api.models import Project


async def created(session: AsyncSession, outbox: Outbox, project: Project) -> None:
    aggregate = project_aggregate(project.id)
    await outbox.append(
        session,
        domain_pb2.ProjectCreated(
            project_id=project.id,
            namespace=project.namespace,
            path=project.path,
            visibility=project.visibility,
            default_branch=project.default_branch,
            storage_shard=project.storage_shard,
            disk_path=project.disk_path,
            owner_id=project.owner_id,
        ),
        aggregate_id=aggregate,
    )
    await member_set(session, outbox, project, project.owner_id, AccessLevel.OWNER)
    await outbox.append(
        session,
        repository_pb2.RepositoryCreated(
            project_id=project.id,
            seq=project.repository_seq,
            storage_shard=project.storage_shard,
            disk_path=project.disk_path,
            default_branch=project.default_branch,
        ),
        aggregate_id=aggregate,
        aggregate_seq=project.repository_seq,
    )


async def renamed(
    session: AsyncSession, outbox: Outbox, project: Project, old_namespace: str, old_path: str
) -> None:
    event = domain_pb2.ProjectRenamed(
        project_id=project.id,
        namespace=project.namespace,
        path=project.path,
        old_namespace=old_namespace,
        old_path=old_path,
        owner_id=project.owner_id,
    )
    await outbox.append(session, event, aggregate_id=project_aggregate(project.id))


async def updated(
    session: AsyncSession, outbox: Outbox, project: Project, *, during_maintenance: bool = False
) -> None:
    """`during_maintenance`: a push's first branch became the default (see hooks.py)."""
    event = domain_pb2.ProjectUpdated(
        project_id=project.id,
        visibility=project.visibility,
        default_branch=project.default_branch,
    )
    await outbox.append(
        session,
        event,
        aggregate_id=project_aggregate(project.id),
        during_maintenance=during_maintenance,
    )


async def member_set(
    session: AsyncSession, outbox: Outbox, project: Project, user_id: int, level: int
) -> None:
    event = domain_pb2.MemberSet(project_id=project.id, user_id=user_id, access_level=level)
    await outbox.append(session, event, aggregate_id=project_aggregate(project.id))


async def member_removed(
    session: AsyncSession, outbox: Outbox, project: Project, user_id: int
) -> None:
    event = domain_pb2.MemberRemoved(project_id=project.id, user_id=user_id)
    await outbox.append(session, event, aggregate_id=project_aggregate(project.id))


async def deleted(session: AsyncSession, outbox: Outbox, project: Project) -> None:
    """`project.repository_seq` must already be the deletion's sequence."""
    aggregate = project_aggregate(project.id)
    await outbox.append(
        session,
        domain_pb2.ProjectDeleted(project_id=project.id, disk_path=project.disk_path),
        aggregate_id=aggregate,
    )
    await outbox.append(
        session,
        repository_pb2.RepositoryDeleted(
            project_id=project.id, seq=project.repository_seq, disk_path=project.disk_path
        ),
        aggregate_id=aggregate,
        aggregate_seq=project.repository_seq,
    )


async def repository_moved(
    session: AsyncSession, outbox: Outbox, project: Project, old_shard: str
) -> None:
    """A storage move's switch; `project.repository_seq` must already be the move's sequence."""
    await outbox.append(
        session,
        repository_pb2.RepositoryMoved(
            project_id=project.id,
            seq=project.repository_seq,
            storage_shard=project.storage_shard,
            old_storage_shard=old_shard,
            disk_path=project.disk_path,
            checksum=project.repository_checksum,
        ),
        aggregate_id=project_aggregate(project.id),
        aggregate_seq=project.repository_seq,
    )
