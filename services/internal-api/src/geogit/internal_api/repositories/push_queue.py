"""Pushes to one project recorded one at a time in this process, before they take a database
connection.

post_receive holds the project's row lock while it asks storage for the refs checksum, so
concurrent pushes to one project wait for each other in PostgreSQL anyway. Waiting there holds
a pooled connection: twenty pushes to one project filled the pool, and clones of it queued
behind them for authorization until the edge gave up (504). Waiting here first costs nothing;
the row lock still orders pushes that arrive at different replicas of the internal API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class _Turn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0


class PushQueue:
    """One queue per project key, dropped when nobody waits on it."""

    def __init__(self) -> None:
        self._turns: dict[str, _Turn] = {}

    @asynccontextmanager
    async def turn(self, project_key: str) -> AsyncIterator[None]:
        turn = self._turns.setdefault(project_key, _Turn())
        turn.holders += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.holders -= 1
            if not turn.holders:
                del self._turns[project_key]

    def __len__(self) -> int:
        return len(self._turns)
