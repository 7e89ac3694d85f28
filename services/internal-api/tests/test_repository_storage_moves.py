"""Repository storage moves between two real storage shards: the API's round trip and its
refusals; a move under a loop of pushes and a loop of clones (none fails, every push is on the
new shard, the checksums agree, the old copy goes); a checksum mismatch after the final copy
(the project stays, the destination copy goes); a move a stop interrupted, failed by the next
start with the project's hold lifted; a move one API replica runs, left alone by another's
sweep."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from internal_api_support import Api, Database, ServerInfo, serve_in_thread
from sqlalchemy import select
from storage_moves_support import GitClient, Shards, eventually, follow, move, settings_for

from geogit.common.events import EVENT_TYPES
from geogit.common.net import free_port
from geogit.common.paths import hashed_repository_path
from geogit.internal_api.clients.storage import StorageClient
from geogit.internal_api.db import SessionMaker, make_engine
from geogit.internal_api.events.outbox import Outbox
from geogit.internal_api.models import OutboxEvent, Project, RepositoryStorageMove
from geogit.internal_api.repositories.storage_moves import StorageMoves
from geogit.storage.testing import STORAGE_SECRET, commit_all, git, make_work_tree

FINAL = ("finished", "failed", "cleanup_failed")


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory, port: int) -> Iterator[Shards]:
    pair = Shards(tmp_path_factory.mktemp("shards"), port)
    pair.start()
    yield pair
    pair.stop()


@pytest.fixture(scope="module")
def moving_server(database: Database, shards: Shards, port: int) -> Iterator[ServerInfo]:
    with serve_in_thread(settings_for(database, shards, port)) as info:
        yield info


@pytest.fixture
async def mapi(moving_server: ServerInfo, admin_token: str) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=moving_server.url, timeout=60) as client:
        yield Api(client, admin_token)


async def _pushed_project(
    api: Api, shards: Shards, work: Path
) -> tuple[dict[str, Any], GitClient, Path]:
    owner = await api.user("mover")
    project = await api.project(owner)
    client = GitClient(api, shards, owner, project)
    tree = make_work_tree(work / f"tree-{project['id']}")
    await client.push(tree, "main")
    return project, client, tree


async def _shard_of(api: Api, project: dict[str, Any]) -> str:
    response = await api.client.get(f"/api/v4/projects/{project['id']}", headers=api.admin)
    return str(response.json()["repository_storage"])


async def test_a_move_is_scheduled_followed_and_switches_the_project(
    mapi: Api, shards: Shards, db: SessionMaker, work: Path
) -> None:
    project, _, _ = await _pushed_project(mapi, shards, work)
    before = shards["default"].checksum(shards.repo(project, "default"))

    response = await move(mapi, project, "second")

    assert response.status_code == 201, response.text
    scheduled = response.json()
    assert scheduled["state"] == "scheduled"
    assert scheduled["source_storage_name"] == "default"
    assert scheduled["destination_storage_name"] == "second"
    assert scheduled["project"]["id"] == project["id"]
    assert scheduled["project"]["path_with_namespace"] == project["path_with_namespace"]
    assert scheduled["created_at"]
    done = await follow(mapi, project, scheduled["id"], lambda m: m["state"] in FINAL)
    assert done["state"] == "finished", done
    assert await _shard_of(mapi, project) == "second"
    assert shards["second"].checksum(shards.repo(project, "second")) == before
    assert not shards.has_copy(project, "default")
    listed = await mapi.client.get(
        f"/api/v4/projects/{project['id']}/repository_storage_moves", headers=mapi.admin
    )
    assert [m["id"] for m in listed.json()] == [scheduled["id"]]
    assert listed.headers["X-Total"] == "1"
    moved = await _moved_events(db, project["id"])
    assert [(m.storage_shard, m.old_storage_shard, m.checksum) for m in moved] == [
        ("second", "default", before)
    ]
    async with db() as session:
        row = await session.get(Project, project["id"])
        assert row is not None and row.push_hold == ""
        assert moved[0].seq == row.repository_seq == 3  # created 1, the push 2, the move 3


async def _moved_events(db: SessionMaker, project_id: int) -> list[Any]:
    async with db() as session:
        rows = await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.type == "RepositoryMoved")
            .order_by(OutboxEvent.id)
        )
        payloads = [EVENT_TYPES[row.type].FromString(row.payload) for row in rows]
    return [p for p in payloads if p.project_id == project_id]


async def test_refusals_say_what_is_wrong(mapi: Api, shards: Shards, work: Path) -> None:
    project, client, _ = await _pushed_project(mapi, shards, work)
    base = f"/api/v4/projects/{project['id']}/repository_storage_moves"

    unknown = await move(mapi, project, "nfs-9")
    assert unknown.status_code == 400
    assert "'nfs-9' is not a storage shard of this site" in unknown.json()["message"]
    same = await move(mapi, project, "default")
    assert same.status_code == 400
    assert "already on storage 'default'" in same.json()["message"]
    missing = await mapi.client.post(
        "/api/v4/projects/999999999/repository_storage_moves",
        headers=mapi.admin,
        json={"destination_storage_name": "second"},
    )
    assert missing.status_code == 404
    owner = client.person
    as_owner = await mapi.client.post(
        base, headers=owner.headers, json={"destination_storage_name": "second"}
    )
    assert as_owner.status_code == 403
    assert (await mapi.client.get(base, headers=owner.headers)).status_code == 403

    first = await move(mapi, project, "second")
    assert first.status_code == 201
    # The first holds the project until its old copy is removed (at least drain + delay).
    second = await move(mapi, project, "second")
    assert second.status_code == 409
    assert "already running" in second.json()["message"]
    await follow(mapi, project, first.json()["id"], lambda m: m["state"] in FINAL)
    other, _, _ = await _pushed_project(mapi, shards, work)
    foreign = await mapi.client.get(
        f"/api/v4/projects/{other['id']}/repository_storage_moves/{first.json()['id']}",
        headers=mapi.admin,
    )
    assert foreign.status_code == 404


async def test_a_move_under_pushes_and_clones_fails_no_client_and_loses_no_push(
    mapi: Api, shards: Shards, db: SessionMaker, work: Path
) -> None:
    project, client, tree = await _pushed_project(mapi, shards, work)
    pushed: list[str] = []
    clones = 0
    stop = asyncio.Event()

    async def push_loop() -> None:
        while not stop.is_set():
            pushed.append(await asyncio.to_thread(commit_all, tree, f"push {len(pushed)}"))
            await client.push(tree, "main")

    async def clone_loop() -> None:
        nonlocal clones
        while not stop.is_set():
            into = work / f"clone-{clones}"
            await client.clone(into)
            await asyncio.to_thread(shutil.rmtree, into)
            clones += 1

    loops = [asyncio.create_task(push_loop()), asyncio.create_task(clone_loop())]
    await eventually(lambda: _at_least(pushed, 3), "pushes before the move")
    scheduled = (await move(mapi, project, "second")).json()
    switched = await follow(
        mapi,
        project,
        scheduled["id"],
        lambda m: m["state"] != "scheduled" and m["state"] != "started",
    )
    after_switch = len(pushed)
    await eventually(lambda: _at_least(pushed, after_switch + 3), "pushes after the switch")
    done = await follow(mapi, project, scheduled["id"], lambda m: m["state"] in FINAL)
    stop.set()
    await asyncio.gather(*loops)  # a failed push or clone raises here

    assert switched["state"] in ("replicated", "finished") and done["state"] == "finished"
    assert clones > 0
    assert {"default", "second"} <= set(client.pushed_to)  # pushes before and after the switch
    destination = shards.repo(project, "second")
    head = git(
        "--git-dir", str(shards["second"].path_of(destination)), "rev-parse", "refs/heads/main"
    )
    assert head.stdout.decode().strip() == pushed[-1]
    async with db() as session:
        row = await session.get(Project, project["id"])
        assert row is not None
        assert row.storage_shard == "second"
        assert shards["second"].checksum(destination) == row.repository_checksum
    assert not shards.has_copy(project, "default")


async def _at_least(items: list[str], count: int) -> bool:
    return len(items) >= count


async def _scheduled_move(db: SessionMaker, project: dict[str, Any]) -> RepositoryStorageMove:
    """A move's row as the API writes it, for a StorageMoves of the test's own to run."""
    async with db() as session, session.begin():
        row = RepositoryStorageMove(
            project_id=project["id"],
            state="scheduled",
            source_storage_name="default",
            destination_storage_name="second",
        )
        session.add(row)
    return row


async def test_a_checksum_mismatch_fails_the_move_and_keeps_the_project_on_its_source(
    mapi: Api,
    shards: Shards,
    db: SessionMaker,
    work: Path,
    moving_server: ServerInfo,
    database: Database,
    port: int,
) -> None:
    """A write that bypassed the hold (git run on the shard's disk between the final copy and
    the comparison) makes the copies differ: the move must not switch."""
    project, _, tree = await _pushed_project(mapi, shards, work)
    source_dir = shards["default"].root / hashed_repository_path(project["id"])
    head = git("rev-parse", "HEAD", cwd=tree).stdout.decode().strip()

    async def sneak_in() -> None:
        git("--git-dir", str(source_dir), "update-ref", "refs/heads/sneaked", head)

    row = await _scheduled_move(db, project)
    storage = StorageClient(shards.storages, STORAGE_SECRET)
    settings = settings_for(database, shards, port)
    engine = make_engine(database.url)
    moves = StorageMoves(engine, db, storage, Outbox("primary"), settings, lambda: True, sneak_in)
    moves.schedule(row.id)
    await moves.wait_idle()
    await storage.close()
    await engine.dispose()

    done = await follow(mapi, project, row.id, lambda m: m["state"] in FINAL)
    assert done["state"] == "failed"
    assert "checksum mismatch after the final copy" in done["error_message"]
    assert await _shard_of(mapi, project) == "default"
    assert not shards.has_copy(project, "second")
    assert shards.has_copy(project, "default")
    assert await _moved_events(db, project["id"]) == []
    async with db() as session:
        project_row = await session.get(Project, project["id"])
        assert project_row is not None and project_row.push_hold == ""


async def test_a_move_a_stop_interrupted_is_failed_by_the_next_start(
    database: Database,
    shards: Shards,
    db: SessionMaker,
    admin_token: str,
    work: Path,
    moving_server: ServerInfo,
) -> None:
    """The first server stops while the move holds the project's pushes, waiting for one that
    was routed to the old copy and has not reached pre-receive; the next start fails the move,
    lifts the hold and removes the destination's copy."""
    port = free_port()
    slow = settings_for(database, shards, port, storage_move_drain_seconds=600)
    with serve_in_thread(slow) as first:
        async with httpx.AsyncClient(base_url=first.url, timeout=60) as http:
            api = Api(http, admin_token)
            project, client, _ = await _pushed_project(api, shards, work)
            assert (await client.route("git-receive-pack")).name == "default"  # never pushed
            scheduled = (await move(api, project, "second")).json()
            await eventually(lambda: _hold_is(db, project["id"], "queue"), "the push hold")
    assert shards.has_copy(project, "second")  # the first copy was made
    async with db() as session:
        left = await session.get(RepositoryStorageMove, scheduled["id"])
        assert left is not None and left.state == "started"

    with serve_in_thread(settings_for(database, shards, port)) as second:
        async with httpx.AsyncClient(base_url=second.url, timeout=60) as http:
            api = Api(http, admin_token)
            done = await follow(api, project, scheduled["id"], lambda m: m["state"] in FINAL)
            assert done["state"] == "failed"
            assert done["error_message"].startswith("interrupted")
            assert await _shard_of(api, project) == "default"
            assert await _hold_is(db, project["id"], "")
            assert not shards.has_copy(project, "second")


async def _hold_is(db: SessionMaker, project_id: int, hold: str) -> bool:
    async with db() as session:
        row = await session.get(Project, project_id)
        return row is not None and row.push_hold == hold


async def test_a_switched_move_a_stop_interrupted_removes_the_old_copy_after_the_next_start(
    database: Database,
    shards: Shards,
    admin_token: str,
    work: Path,
    moving_server: ServerInfo,
) -> None:
    """Stopped between the switch and the old copy's removal (a long delay): the project is on
    the destination already; the next start removes the source copy and finishes the move."""
    port = free_port()
    keeping = settings_for(database, shards, port, storage_move_removal_delay_seconds=600)
    with serve_in_thread(keeping) as first:
        async with httpx.AsyncClient(base_url=first.url, timeout=60) as http:
            api = Api(http, admin_token)
            project, _, _ = await _pushed_project(api, shards, work)
            scheduled = (await move(api, project, "second")).json()
            await follow(api, project, scheduled["id"], lambda m: m["state"] == "replicated")
    assert shards.has_copy(project, "default") and shards.has_copy(project, "second")

    with serve_in_thread(settings_for(database, shards, port)) as second:
        async with httpx.AsyncClient(base_url=second.url, timeout=60) as http:
            api = Api(http, admin_token)
            done = await follow(api, project, scheduled["id"], lambda m: m["state"] in FINAL)
            assert done["state"] == "finished"
            assert await _shard_of(api, project) == "second"
    assert not shards.has_copy(project, "default") and shards.has_copy(project, "second")


async def test_an_old_copy_holding_kept_diverged_refs_is_not_removed(
    mapi: Api, shards: Shards, work: Path
) -> None:
    """Commits a failover kept under refs/geogit/ are storage's own refs, which no copy between
    shards carries: the move switches, and keeps the old copy for an operator."""
    project, _, tree = await _pushed_project(mapi, shards, work)
    source_dir = shards["default"].root / hashed_repository_path(project["id"])
    head = git("rev-parse", "HEAD", cwd=tree).stdout.decode().strip()
    kept = "refs/geogit/diverged/epoch-2/refs/heads/main"
    git("--git-dir", str(source_dir), "update-ref", kept, head)

    scheduled = (await move(mapi, project, "second")).json()
    done = await follow(mapi, project, scheduled["id"], lambda m: m["state"] in FINAL)

    assert done["state"] == "cleanup_failed"
    assert "refs/geogit/" in done["error_message"]
    assert await _shard_of(mapi, project) == "second"
    assert git("--git-dir", str(source_dir), "rev-parse", kept).stdout.decode().strip() == head


async def test_a_move_one_api_replica_runs_is_left_alone_by_anothers_sweep(
    mapi: Api, shards: Shards, db: SessionMaker, work: Path, database: Database, port: int
) -> None:
    """Two replicas on one database: while the first is in the middle of a move (held between
    its final copy and the checksums), the second's sweep finds it `started` and must not take
    it for interrupted; the first finishes it."""
    project, _, _ = await _pushed_project(mapi, shards, work)
    comparing, go_on = asyncio.Event(), asyncio.Event()

    async def pause() -> None:
        comparing.set()
        await go_on.wait()

    row = await _scheduled_move(db, project)
    storage = StorageClient(shards.storages, STORAGE_SECRET)
    settings = settings_for(database, shards, port, storage_move_removal_delay_seconds=0)
    engines = [make_engine(database.url), make_engine(database.url)]
    running = StorageMoves(
        engines[0], db, storage, Outbox("primary"), settings, lambda: True, pause
    )
    other = StorageMoves(engines[1], db, storage, Outbox("primary"), settings, lambda: True)
    try:
        running.schedule(row.id)
        await asyncio.wait_for(comparing.wait(), 60)
        await other.sweep()
        await other.wait_idle()
        async with db() as session:
            seen = await session.get(RepositoryStorageMove, row.id)
            assert seen is not None and (seen.state, seen.error_message) == ("started", "")
        go_on.set()
        await running.wait_idle()
    finally:
        go_on.set()
        await running.stop()
        await other.stop()
        await storage.close()
        for engine in engines:
            await engine.dispose()

    done = await follow(mapi, project, row.id, lambda m: m["state"] in FINAL)
    assert done["state"] == "finished", done
    assert await _shard_of(mapi, project) == "second"
    assert not shards.has_copy(project, "default") and shards.has_copy(project, "second")
