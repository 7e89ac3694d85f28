"""A push becomes a RepositoryUpdated event on Kafka, through the outbox — even when the
broker is down at the time of the push."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from e2e import Api, clone_url, git

from geogit.common.events import Event, decode_event
from geogit.common.net import free_port
from geogit.common.tansu import TansuBroker
from geogit.devstack.site import Site
from geogit.devstack.testing import running_site
from geogit.storage.testing import commit_all, make_work_tree


async def _collect(
    bootstrap: str, topic: str, done: Callable[[list[Event]], bool], timeout: float
) -> list[Event]:
    """Every event on the topic from the beginning, until `done` holds or time runs out."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    started = False
    try:
        while time.monotonic() < deadline and not done(events):
            if not started:
                try:
                    await consumer.start()
                    started = True
                except Exception:  # the topic or broker may not exist yet
                    await asyncio.sleep(0.5)
                    continue
            batches = await consumer.getmany(timeout_ms=500)
            events += [decode_event(r.value) for records in batches.values() for r in records]
    finally:
        if started:
            await consumer.stop()
    return events


def _updates_of(events: list[Event], project_id: int) -> list[Event]:
    return [
        e for e in events if e.type == "RepositoryUpdated" and e.payload.project_id == project_id
    ]


def test_push_emits_repository_updated(
    api: Api, site: Site, tansu: TansuBroker, work: Path
) -> None:
    owner = api.account()
    project = api.project(owner)
    tree = make_work_tree(work / "src")
    url = clone_url(site.http_url, project, owner)
    git("push", "-q", url, "main", cwd=tree)
    git("checkout", "-q", "-b", "topic", cwd=tree)
    head = commit_all(tree, "topic")
    git("push", "-q", url, "topic", cwd=tree)

    topic = site.topics.repository
    events = asyncio.run(
        _collect(tansu.bootstrap, topic, lambda es: len(_updates_of(es, project["id"])) >= 2, 30)
    )
    first, second = _updates_of(events, project["id"])[:2]
    created = [
        e for e in events if e.type == "RepositoryCreated" and e.payload.project_id == project["id"]
    ]
    assert [e.payload.seq for e in created] == [1]
    assert (first.payload.seq, second.payload.seq) == (2, 3)
    assert first.aggregate_id == second.aggregate_id
    change = second.payload.changes[0]
    assert (change.old_oid, change.new_oid, change.ref) == ("0" * 40, head, "refs/heads/topic")
    remote = git("ls-remote", url).stdout.split("\n")
    assert second.payload.checksum and len(second.payload.checksum) == 40
    assert first.payload.checksum != second.payload.checksum
    assert first.global_seq < second.global_seq
    assert len([r for r in remote if r]) >= 3  # HEAD, main, topic


@pytest.fixture
def lonely_site(tmp_path: Path):
    """A site with a broker of its own, which the test stops and restarts."""
    broker = TansuBroker(port=free_port(), log_path=tmp_path / "tansu.log")
    broker.start()
    try:
        with running_site(tmp_path / "site", broker.bootstrap) as (site, admin):
            assert admin is not None
            yield site, Api(site.http_url, admin.token), broker
    finally:
        broker.stop()


def test_events_survive_a_broker_outage(lonely_site, work: Path) -> None:
    site, api, broker = lonely_site
    owner = api.account()
    project = api.project(owner)
    url = clone_url(site.http_url, project, owner)
    tree = make_work_tree(work / "src")

    broker.stop()
    git("push", "-q", url, "main", cwd=tree)  # the push does not depend on Kafka
    head = git("rev-parse", "HEAD", cwd=tree).stdout.strip()
    assert git("ls-remote", url, "refs/heads/main").stdout.split()[0] == head
    time.sleep(2)
    broker.start()  # same port, empty: memory storage lost every topic

    events = asyncio.run(
        _collect(
            broker.bootstrap,
            site.topics.repository,
            lambda es: bool(_updates_of(es, project["id"])),
            60,
        )
    )
    updates = _updates_of(events, project["id"])
    assert {e.payload.seq for e in updates} == {2}
    assert updates[0].payload.changes[0].new_oid == head
