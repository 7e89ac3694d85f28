"""The push hold around a storage move's switch (repositories/storage_moves.py).

A push is routed to a shard when it is authorized (the edge's `git_http/authorize`, the SSH
gateway's `allowed`), and its refs move in that shard's copy at pre-receive. So the hold works
at those two points, and a push is counted in between:

- At authorization a push is counted (`authorized`, until its pre-receive) unless a move holds
  the project; then it waits (bounded) for the switch and goes to whichever shard the project
  is on by then. The check and the count share the project's row lock with the move's hold, so
  a move sees every push routed before its hold.
- `queue`: new pushes wait; the move waits for the counted ones to reach pre-receive, where
  they are admitted and counted again until post-receive (and it waits for them to land).
- `read_only`: a push reaching pre-receive now is refused — one whose pack upload outlasted
  `storage_move_drain_seconds` (after which an authorized push that never reached pre-receive,
  a no-op push or a vanished client, stops counting). So is a push whose copy is no longer the
  project's.

Clones and fetches are never held: both copies serve them until the old one is removed.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.internal_api import Denied
from geogit.internal_api.models import Project, PushReferenceCounter

POLL_SECONDS = 0.05
# GitLab's words for a read-only repository.
READ_ONLY = "The repository is temporarily read-only. Please try again later."
MOVED = "The repository has just moved to another storage shard. Please push again."


async def route_push(
    session: AsyncSession, project: Project, wait_seconds: float, stale_seconds: float, count: bool
) -> None:
    """Before a push is routed: wait while a switch holds the project, then (`count`: the
    request that streams the pack) count it as authorized; `project` is re-read, so the caller
    routes it to the project's shard as of now. Refused (503) if the hold outlasts the wait."""
    deadline = time.monotonic() + wait_seconds
    while await _held(session, project.id):
        await session.commit()  # nothing written: ends the transaction, so the move can switch
        if time.monotonic() > deadline:
            raise Denied(503, READ_ONLY)
        await asyncio.sleep(POLL_SECONDS)
    if count:
        await _count_authorized(session, project.id, stale_seconds)
    await session.refresh(project)
    await session.commit()


async def _held(session: AsyncSession, project_id: int) -> bool:
    """The project's hold, under its shared row lock (kept to the caller's commit)."""
    hold = await session.scalar(
        select(Project.push_hold).where(Project.id == project_id).with_for_update(read=True)
    )
    return bool(hold)


async def _count_authorized(session: AsyncSession, project_id: int, stale_seconds: float) -> None:
    stale = func.now() - timedelta(seconds=stale_seconds)
    statement = insert(PushReferenceCounter).values(
        project_id=project_id, authorized=1, authorized_at=func.now()
    )
    # A count left by pushes that never reached pre-receive starts over once stale.
    fresh = PushReferenceCounter.authorized_at > stale
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["project_id"],
            set_={
                "authorized": case((fresh, PushReferenceCounter.authorized + 1), else_=1),
                "authorized_at": func.now(),
            },
        )
    )


def check_shard(project: Project, storage_name: str) -> None:
    """pre-receive on a copy that is no longer the project's: refused, never landed there."""
    if storage_name and storage_name != project.storage_shard:
        raise Denied(503, MOVED)


async def admit_at_pre_receive(session: AsyncSession, project_id: int, storage_name: str) -> None:
    """pre-receive, before the push is counted, in the counting transaction: the shared row
    lock orders this against the move's switch to `read_only` (which takes it exclusively), so
    a push is either counted before it (and awaited) or refused after it. The push no longer
    counts as authorized."""
    row = (
        await session.execute(
            select(Project.push_hold, Project.storage_shard)
            .where(Project.id == project_id)
            .with_for_update(read=True)
        )
    ).one()
    if row.push_hold == "read_only":
        raise Denied(503, READ_ONLY)
    if storage_name and storage_name != row.storage_shard:
        raise Denied(503, MOVED)
    await session.execute(
        update(PushReferenceCounter)
        .where(PushReferenceCounter.project_id == project_id)
        .values(authorized=func.greatest(PushReferenceCounter.authorized - 1, 0))
    )
