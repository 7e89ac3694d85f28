"""Wakes the outbox relay the moment a writer commits, instead of on its next poll.

Every outbox append issues `pg_notify(<table's channel>, '')` in the writer's transaction
(events/outbox.py); PostgreSQL delivers it at commit, to every session LISTENing on the
channel. The relay holds one dedicated asyncpg connection for that (a pooled SQLAlchemy
connection cannot LISTEN: it goes back to the pool). The notification carries nothing: it only
says "look now"; the relay's query decides what to publish, so a lost or duplicated
notification costs a poll interval or one empty query, never an event.

The connection is a dependency that may die (a database restart, an administrator's
`pg_terminate_backend`): the listener notices — asyncpg's termination callback, and a ping
every `check_seconds` for a connection that died silently — wakes the relay once (what was
committed meanwhile may have been missed) and reconnects with backoff, forever. While it is
down, `listening` is false and the relay falls back to its short poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from geogit.common.background import Background

log = logging.getLogger(__name__)

INITIAL_BACKOFF_SECONDS = 0.2


def listen_dsn(database_url: str) -> str:
    """The SQLAlchemy URL (`postgresql+asyncpg://...`) as a DSN asyncpg connects to."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


class OutboxListener:
    def __init__(
        self,
        dsn: str,
        channel: str,
        *,
        check_seconds: float = 5.0,
        connect_timeout_seconds: float = 5.0,
        max_backoff_seconds: float = 10.0,
    ) -> None:
        self._dsn = dsn
        self._channel = channel
        self._check_seconds = check_seconds
        self._connect_timeout = connect_timeout_seconds
        self._max_backoff = max_backoff_seconds
        # Set by every notification (and on every (re)connect); the relay clears it.
        self.wake = asyncio.Event()
        self._lost = asyncio.Event()
        self._connection: asyncpg.Connection | None = None
        self._loop = Background(f"listen-{channel}", self.run)

    @property
    def listening(self) -> bool:
        """Whether a notification would reach us now (else the relay polls fast)."""
        connection = self._connection
        return connection is not None and not connection.is_closed() and not self._lost.is_set()

    @property
    def backend_pid(self) -> int | None:
        """The server process of the LISTEN connection (tests terminate it)."""
        return None if self._connection is None else self._connection.get_server_pid()

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self._close()

    async def run(self) -> None:
        backoff = INITIAL_BACKOFF_SECONDS
        while True:
            try:
                await self._listen()
                backoff = INITIAL_BACKOFF_SECONDS
                await self._watch()
            except Exception as exc:  # any failure: reconnect, never end the loop
                log.warning(
                    "outbox listener: connection lost, reconnecting",
                    extra={"channel": self._channel, "error": repr(exc)},
                )
            await self._close()
            self.wake.set()  # whatever committed while we were not listening
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    async def _listen(self) -> None:
        self._lost.clear()
        connection = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
        self._connection = connection
        connection.add_termination_listener(lambda _: self._lost.set())
        await connection.add_listener(self._channel, self._notified)
        self.wake.set()  # rows committed before LISTEN took effect are picked up now
        log.info("outbox listener: listening", extra={"channel": self._channel})

    async def _watch(self) -> None:
        """Until the connection is gone: a dead one raises, a terminated one sets `_lost`."""
        while self._connection is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self._check_seconds)
            if self._lost.is_set():
                raise ConnectionError("LISTEN connection terminated")
            async with asyncio.timeout(self._connect_timeout):
                await self._connection.fetchval("SELECT 1")

    def _notified(self, *_: object) -> None:
        self.wake.set()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None or connection.is_closed():
            return
        try:
            async with asyncio.timeout(self._connect_timeout):
                await connection.close()
        except Exception:  # a server that is gone cannot say goodbye
            connection.terminate()
