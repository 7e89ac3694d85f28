"""Outbox lock: does the advisory lock every outbox write takes cap pushes per second?

Every outbox append takes one transaction-scoped advisory lock shared by all writers
(`OUTBOX_LOCK_KEY`, events/outbox.py): outbox ids become visible in commit order, which the
relay and `/geo/events?after=N` rely on. It serialises writers of unrelated projects from the
append to the commit. This area measures how many outbox transactions per second one
internal-API process gets through, as post-receive writes them (a `RepositoryUpdated` for the
writer's own project, then commit), with 1 and with 20 concurrent writers, with the lock and
with it taken out (the same statement without `pg_advisory_xact_lock`), on a fresh database
of the machine's PostgreSQL. The figure to compare is the ceiling it puts on pushes/s against
what a push costs the primary elsewhere (`geo-lag`'s CPU per push).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bench.common import Options, log, print_table, run_area
from geogit.common.events import project_aggregate
from geogit.common.proto.events.v1 import repository_pb2
from geogit.devstack.testing import fresh_database
from geogit.internal_api.db import SessionMaker, make_engine, make_sessionmaker
from geogit.internal_api.events import outbox
from geogit.internal_api.geo import site_state
from geogit.internal_api.migrate import upgrade

WRITERS = (1, 20)
SECONDS, SECONDS_QUICK = 5.0, 2.0
PROJECT_IDS = itertools.count(1)  # a project of its own for every writer of every round


async def _notify_only(session: AsyncSession, lock_key: int, channel: str) -> None:
    await session.execute(select(func.pg_notify(channel, "")))


async def _writer(sessions: SessionMaker, project_id: int, until: float) -> int:
    appender, seq = outbox.Outbox("primary"), 0
    while time.perf_counter() < until:
        seq += 1
        async with sessions() as session:
            event = repository_pb2.RepositoryUpdated(project_id=project_id, seq=seq)
            await appender.append(
                session,
                event,
                aggregate_id=project_aggregate(project_id),
                aggregate_seq=seq,
                during_maintenance=True,
            )
            await session.commit()
    return seq


async def _round(sessions: SessionMaker, writers: int, locked: bool, seconds: float) -> float:
    original = outbox._lock_and_notify
    if not locked:
        outbox._lock_and_notify = _notify_only
    try:
        started = time.perf_counter()
        counts = await asyncio.gather(
            *(_writer(sessions, next(PROJECT_IDS), started + seconds) for _ in range(writers))
        )
        return sum(counts) / (time.perf_counter() - started)
    finally:
        outbox._lock_and_notify = original


async def _measure(url: str, seconds: float) -> dict[str, float]:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as session:
            await site_state.bootstrap(session, "primary", "primary")
            await session.commit()
        results = {}
        for writers in WRITERS:
            for locked in (True, False):
                name = f"{writers}_writers_{'lock' if locked else 'no_lock'}"
                results[name] = round(await _round(sessions, writers, locked, seconds), 1)
                log(f"outbox-lock: {name}: {results[name]} commits/s")
        return results
    finally:
        await engine.dispose()


def _run(options: Options) -> dict[str, Any]:
    with fresh_database("geogit_bench") as url:
        upgrade(url)
        seconds = SECONDS_QUICK if options.quick else SECONDS
        return {"seconds": seconds, "commits_per_s": asyncio.run(_measure(url, seconds))}


def report(r: dict[str, Any]) -> None:
    per_s = r["commits_per_s"]
    print("\noutbox lock: post-receive outbox transactions per second, one process")
    rows = [
        [str(w), f"{per_s[f'{w}_writers_lock']:.0f}", f"{per_s[f'{w}_writers_no_lock']:.0f}"]
        for w in WRITERS
    ]
    print_table(["writers", "with lock", "without"], rows)


def run(options: Options) -> dict[str, Any]:
    return run_area(options, lambda _: _run(options), report)
