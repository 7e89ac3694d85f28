"""Pushes to one project take turns in-process; pushes to different projects do not wait."""

from __future__ import annotations

import asyncio

import pytest

from geogit.internal_api.repositories.push_queue import PushQueue


async def test_pushes_to_one_project_take_turns_and_others_do_not_wait() -> None:
    queue = PushQueue()
    order: list[str] = []
    first_inside = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with queue.turn("project-1"):
            order.append("first in")
            first_inside.set()
            await release_first.wait()
            order.append("first out")

    async def second() -> None:
        async with queue.turn("project-1"):
            order.append("second in")

    async def other_project() -> None:
        async with queue.turn("project-2"):
            order.append("other in")

    running = asyncio.create_task(first())
    await first_inside.wait()
    waiting = asyncio.create_task(second())
    await asyncio.wait_for(other_project(), timeout=5)
    await asyncio.sleep(0.05)
    assert order == ["first in", "other in"]
    release_first.set()
    await asyncio.wait_for(asyncio.gather(running, waiting), timeout=5)
    assert order == ["first in", "other in", "first out", "second in"]
    assert len(queue) == 0


async def test_a_failed_push_gives_up_its_turn() -> None:
    queue = PushQueue()

    async def failing() -> None:
        async with queue.turn("project-1"):
            raise RuntimeError("storage failed")

    with pytest.raises(RuntimeError):
        await failing()
    async with asyncio.timeout(5), queue.turn("project-1"):
        assert len(queue) == 1
    assert len(queue) == 0
