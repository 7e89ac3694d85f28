"""A secondary's read model: the primary's events applied to this site's own tables.

The same tables as on the primary, with the primary's ids, so key lookups and read
authorization on a secondary are the same code as on the primary and need no call to it.
Each handler is idempotent on its own (an upsert or a delete), and the event feed applies
events strictly in global order, once each, in the transaction that advances its position.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.events import Event
from geogit.common.storage_client import EMPTY_CHECKSUM
from geogit.internal_api.geo import epochs
from geogit.internal_api.models import (
    Base,
    GeoPushFloor,
    GeoSite,
    Member,
    PersonalAccessToken,
    Project,
    ProtectedBranch,
    SshKey,
    User,
)

# Secondaries never check passwords (Git over HTTP uses tokens): no hash leaves the primary.
NO_PASSWORD = "!"

Handler = Callable[[AsyncSession, Any], Awaitable[None]]


def _time(stamp: Timestamp, present: bool) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if present else None


async def _upsert(session: AsyncSession, model: type[Base], keys: list[str], **values: Any) -> None:
    statement = insert(model).values(**values)
    updates = {name: statement.excluded[name] for name in values if name not in keys}
    await session.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates))


async def _user(session: AsyncSession, event: Any) -> None:
    await _upsert(
        session,
        User,
        ["id"],
        id=event.user_id,
        username=event.username,
        email=event.email,
        name=event.name,
        is_admin=event.is_admin,
        state=event.state or "active",
        password_hash=NO_PASSWORD,
    )


async def _user_blocked(session: AsyncSession, event: Any) -> None:
    user = await session.get(User, event.user_id)
    if user is not None:
        user.state = "blocked"


async def _user_deleted(session: AsyncSession, event: Any) -> None:
    await session.execute(delete(User).where(User.id == event.user_id))


async def _key_added(session: AsyncSession, event: Any) -> None:
    await _upsert(
        session,
        SshKey,
        ["id"],
        id=event.key_id,
        user_id=event.user_id,
        title=event.title,
        key=event.key,
        key_type=event.key.split(" ", 1)[0],
        fingerprint_sha256=event.fingerprint,
        expires_at=_time(event.expires_at, event.HasField("expires_at")),
    )


async def _key_removed(session: AsyncSession, event: Any) -> None:
    await session.execute(delete(SshKey).where(SshKey.id == event.key_id))


async def _token_created(session: AsyncSession, event: Any) -> None:
    expires = _time(event.expires_at, event.HasField("expires_at"))
    await _upsert(
        session,
        PersonalAccessToken,
        ["id"],
        id=event.token_id,
        user_id=event.user_id,
        name=event.name,
        token_digest=event.token_digest,
        scopes=list(event.scopes),
        expires_at=expires.date() if expires else None,
    )


async def _token_revoked(session: AsyncSession, event: Any) -> None:
    token = await session.get(PersonalAccessToken, event.token_id)
    if token is not None:
        token.revoked = True


async def _project_created(session: AsyncSession, event: Any) -> None:
    """A floor left by a push relayed before the project was known becomes its
    read-your-writes floor (geo/routing.py's `floor_for_unknown`)."""
    floor = await session.get(GeoPushFloor, event.project_id)
    await _upsert(
        session,
        Project,
        ["id"],
        id=event.project_id,
        namespace=event.namespace,
        path=event.path,
        name=event.path,
        visibility=event.visibility,
        default_branch=event.default_branch,
        owner_id=event.owner_id,
        storage_shard=event.storage_shard,
        disk_path=event.disk_path,
        **({"geo_min_seq": floor.min_seq} if floor is not None else {}),
    )
    if floor is not None:
        await session.delete(floor)


async def _project_renamed(session: AsyncSession, event: Any) -> None:
    project = await session.get(Project, event.project_id)
    if project is not None:
        project.namespace, project.path = event.namespace, event.path
        # A transfer moves ownership, and an owner's rights come from owner_id: without it
        # the old owner kept full access to the project on every secondary.
        if event.owner_id:
            project.owner_id = event.owner_id


async def _project_updated(session: AsyncSession, event: Any) -> None:
    project = await session.get(Project, event.project_id)
    if project is not None:
        project.visibility, project.default_branch = event.visibility, event.default_branch


async def _project_deleted(session: AsyncSession, event: Any) -> None:
    await session.execute(delete(Project).where(Project.id == event.project_id))


async def _member_set(session: AsyncSession, event: Any) -> None:
    await _upsert(
        session,
        Member,
        ["project_id", "user_id"],
        project_id=event.project_id,
        user_id=event.user_id,
        access_level=event.access_level,
    )


async def _member_removed(session: AsyncSession, event: Any) -> None:
    await session.execute(
        delete(Member).where(Member.project_id == event.project_id, Member.user_id == event.user_id)
    )


async def _protected_branch_set(session: AsyncSession, event: Any) -> None:
    await _upsert(
        session,
        ProtectedBranch,
        ["project_id", "name"],
        project_id=event.project_id,
        name=event.name,
        push_access_level=event.push_access_level,
        allow_force_push=event.allow_force_push,
    )


async def _protected_branch_removed(session: AsyncSession, event: Any) -> None:
    await session.execute(
        delete(ProtectedBranch).where(
            ProtectedBranch.project_id == event.project_id, ProtectedBranch.name == event.name
        )
    )


async def _site(session: AsyncSession, event: Any) -> None:
    await _upsert(
        session,
        GeoSite,
        ["id"],
        id=event.site_id,
        name=event.name,
        url=event.url,
        primary=event.role == "primary",
        enabled=event.enabled,
        public_key=event.public_key,
        selective_sync_type=event.selective_sync_type,
        selective_sync_namespace_ids=list(event.selective_sync_namespace_ids),
        selective_sync_shards=list(event.selective_sync_shards),
    )


async def _site_promoted(session: AsyncSession, event: Any) -> None:
    """The epoch's start, and the registry's primary flag, as the new primary wrote them."""
    await epochs.record(session, event.epoch, event.site, event.after_seq)
    await mark_primary(session, event.site)


async def mark_primary(session: AsyncSession, site_name: str) -> None:
    await session.execute(update(GeoSite).values(primary=GeoSite.name == site_name))


async def _site_removed(session: AsyncSession, event: Any) -> None:
    await session.execute(delete(GeoSite).where(GeoSite.id == event.site_id))


async def _repository_created(session: AsyncSession, event: Any) -> None:
    await _repository_seen(session, event.project_id, event.seq, EMPTY_CHECKSUM, None)


async def _repository_updated(session: AsyncSession, event: Any) -> None:
    pushed_at = _time(event.pushed_at, event.HasField("pushed_at"))
    await _repository_seen(session, event.project_id, event.seq, event.checksum, pushed_at)


async def _repository_moved(session: AsyncSession, event: Any) -> None:
    """The primary moved the repository to another shard: the local copy moves to the shard of
    that name too, and the new sequence makes the replica count as behind until the replicator
    has it there — so reads are proxied, never served from a shard without the replica."""
    project = await session.get(Project, event.project_id)
    if project is None or event.seq <= project.repository_seq:
        return
    project.storage_shard = event.storage_shard
    await _repository_seen(session, event.project_id, event.seq, event.checksum, None)


async def _repository_seen(
    session: AsyncSession,
    project_id: int,
    seq: int,
    checksum: str | None,
    pushed_at: datetime | None,
) -> None:
    """The latest sequence this site knows of, which the freshness rule compares replicas to."""
    project = await session.get(Project, project_id)
    if project is None or seq <= project.repository_seq:
        return
    project.repository_seq = seq
    if checksum is not None:
        project.repository_checksum = checksum
    if pushed_at is not None:
        project.repository_pushed_at = pushed_at


HANDLERS: dict[str, Handler] = {
    "UserCreated": _user,
    "UserUpdated": _user,
    "UserBlocked": _user_blocked,
    "UserDeleted": _user_deleted,
    "KeyAdded": _key_added,
    "KeyRemoved": _key_removed,
    "TokenCreated": _token_created,
    "TokenRevoked": _token_revoked,
    "ProjectCreated": _project_created,
    "ProjectRenamed": _project_renamed,
    "ProjectUpdated": _project_updated,
    "ProjectDeleted": _project_deleted,
    "MemberSet": _member_set,
    "MemberRemoved": _member_removed,
    "ProtectedBranchSet": _protected_branch_set,
    "ProtectedBranchRemoved": _protected_branch_removed,
    "SiteAdded": _site,
    "SiteUpdated": _site,
    "SiteRemoved": _site_removed,
    "SitePromoted": _site_promoted,
    "RepositoryCreated": _repository_created,
    "RepositoryUpdated": _repository_updated,
    "RepositoryMoved": _repository_moved,
}


async def apply(session: AsyncSession, event: Event) -> None:
    """Events without a handler change nothing here: RepositoryDeleted (the replicator removes
    the replica; the row went with ProjectDeleted) and any type a newer primary may add."""
    handler = HANDLERS.get(event.type)
    if handler is not None:
        await handler(session, event.payload)
        await session.flush()
