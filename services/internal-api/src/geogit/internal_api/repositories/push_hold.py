"""The push hold around a storage move's switch (repositories/storage_moves.py).

A push is routed to a shard when it is authorized (the edge's `git_http/authorize`, the SSH
gateway's `allowed`), and its refs move in that shard's copy at pre-receive. So the hold works
at those two points:

- `queue`: a push being authorized waits (bounded) until the switch is over, then goes to
  whichever shard the project is on by then; pushes authorized earlier still reach
  pre-receive, are counted there, and the move waits for them to land.
- `read_only`: as `queue`, and a push that reaches pre-receive only now (authorized before the
  hold, its pack still uploading through the whole drain) is refused: its refs would move in
  the copy being left. So is a push whose copy is no longer the project's (it was routed before
  the switch committed).

Clones and fetches are never held: both copies serve them until the old one is removed.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.internal_api import Denied
from geogit.internal_api.models import Project

POLL_SECONDS = 0.05
# GitLab's words for a read-only repository.
READ_ONLY = "The repository is temporarily read-only. Please try again later."
MOVED = "The repository has just moved to another storage shard. Please push again."


async def wait_for_release(session: AsyncSession, project: Project, timeout: float) -> None:
    """Before a push is routed: wait while a switch holds the project, then the caller reads
    the project's (perhaps new) shard. Refused (503) if the hold outlasts `timeout`."""
    deadline = time.monotonic() + timeout
    while project.push_hold:
        if time.monotonic() > deadline:
            raise Denied(503, READ_ONLY)
        await asyncio.sleep(POLL_SECONDS)
        await session.refresh(project)


def check_shard(project: Project, storage_name: str) -> None:
    """pre-receive on a copy that is no longer the project's: refused, never landed there."""
    if storage_name and storage_name != project.storage_shard:
        raise Denied(503, MOVED)


async def admit_at_pre_receive(session: AsyncSession, project_id: int, storage_name: str) -> None:
    """pre-receive, before the push is counted, in the counting transaction: the shared row
    lock orders this against the move's switch to `read_only` (which takes it exclusively), so
    a push is either counted before it (and awaited) or refused after it."""
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
