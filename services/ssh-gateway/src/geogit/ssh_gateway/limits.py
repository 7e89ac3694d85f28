"""Concurrent session limits, overall and per user."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from geogit.ssh_gateway.metrics import SshMetrics


class TooManySessions(Exception):
    pass


class SessionLimits:
    def __init__(self, max_sessions: int, max_per_user: int, metrics: SshMetrics) -> None:
        self._metrics = metrics
        self.max_sessions = max_sessions
        self.max_per_user = max_per_user
        self.active = 0
        self._per_user: Counter[str] = Counter()
        self._idle = asyncio.Event()
        self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """True once no session runs, False if some still do after `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return not self.active

    @contextmanager
    def session(self, username: str) -> Iterator[None]:
        if self.active >= self.max_sessions:
            raise TooManySessions("too many concurrent sessions on this server, retry later")
        if self._per_user[username] >= self.max_per_user:
            raise TooManySessions(f"too many concurrent sessions for @{username}, retry later")
        self.active += 1
        self._idle.clear()
        self._per_user[username] += 1
        self._metrics.sessions_active.inc()
        try:
            yield
        finally:
            self.active -= 1
            self._per_user[username] -= 1
            if not self._per_user[username]:
                del self._per_user[username]
            self._metrics.sessions_active.dec()
            if not self.active:
                self._idle.set()
