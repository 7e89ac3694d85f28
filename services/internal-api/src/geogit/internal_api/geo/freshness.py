"""The freshness rule (DESIGN §5): when a secondary may serve a read from its own replica.

Only if the project is in the site's selective sync (a replica outside it is being removed,
or was never made), the replica exists and is `synced`, its `synced_seq` has reached the latest
sequence this site has seen for the project (and the read-your-writes floor a relayed push
set), and the event feed confirmed it was caught up within the configured bound. Anything else
proxies: a stale read is a bug, an extra hop is only slower.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.internal_api.geo.selective_sync import selected
from geogit.internal_api.models import GeoEventFeed, Project, ReplicaRegistry, utcnow

# geo_min_seq when a relayed push's sequence could not be learnt from the primary: no replica
# can satisfy it, so reads proxy until a later check learns the real number.
UNKNOWN_SEQ = 2**62


@dataclass(frozen=True)
class Verdict:
    fresh: bool
    reason: str = ""


async def feed_is_current(session: AsyncSession, max_lag_seconds: float) -> bool:
    feed = await session.get(GeoEventFeed, 1)
    if feed is None or feed.caught_up_at is None:
        return False
    return utcnow() - feed.caught_up_at <= timedelta(seconds=max_lag_seconds)


async def selection_and_registry(
    session: AsyncSession, project_id: int, site_name: str
) -> tuple[bool, ReplicaRegistry | None]:
    """Whether the project is in the site's selective sync, and its registry row: one query,
    since every read a secondary answers asks both."""
    statement = (
        select(selected(site_name), ReplicaRegistry)
        .select_from(Project)
        .outerjoin(ReplicaRegistry, ReplicaRegistry.project_id == Project.id)
        .where(Project.id == project_id)
    )
    row = (await session.execute(statement)).one_or_none()
    return (False, None) if row is None else (bool(row[0]), row[1])


async def replica_verdict(
    session: AsyncSession, project: Project, site_name: str, max_lag_seconds: float
) -> Verdict:
    is_selected, registry = await selection_and_registry(session, project.id, site_name)
    if not is_selected:
        return Verdict(False, "outside this site's selective sync")
    if registry is None or registry.state != "synced":
        return Verdict(False, "replica missing or not synced")
    if registry.storage_shard and registry.storage_shard != project.storage_shard:
        # A storage move: the replica has not followed the project to its new shard yet.
        return Verdict(
            False, f"replica on shard {registry.storage_shard}, project on {project.storage_shard}"
        )
    wanted = max(project.repository_seq, project.geo_min_seq)
    if registry.synced_seq < wanted:
        return Verdict(False, f"replica at {registry.synced_seq}, project at {wanted}")
    if not await feed_is_current(session, max_lag_seconds):
        return Verdict(False, "event feed not caught up")
    return Verdict(True)
