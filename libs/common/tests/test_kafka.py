import asyncio
import dataclasses
import uuid
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from geogit.common.events import Event, Topics, new_event
from geogit.common.kafka import (
    Assignment,
    ConsumerRecordInfo,
    EventConsumer,
    EventProducer,
    KafkaConfig,
    PublishError,
    RebalanceHooks,
    ensure_topics,
    partition_for,
)
from geogit.common.proto.events.v1 import repository_pb2

WAIT = 30.0  # seconds; generous because a group join on Tansu takes about a second


def _updated(project_id: int, seq: int, checksum: str = "c" * 40) -> Event:
    return new_event(
        repository_pb2.RepositoryUpdated(project_id=project_id, seq=seq, checksum=checksum),
        aggregate_id=f"project-{project_id}",
        aggregate_seq=seq,
        origin_site="primary",
        correlation_id="",
    )


class Received:
    """A handler that records what it is given and lets the test wait for what it expects.

    Members of one group share `arrived`, so a test can wait on a condition over all of them.
    """

    def __init__(self, arrived: asyncio.Event | None = None) -> None:
        self.records: list[tuple[Event, ConsumerRecordInfo]] = []
        self._arrived = arrived or asyncio.Event()

    async def __call__(self, event: Event, info: ConsumerRecordInfo) -> None:
        self.records.append((event, info))
        self._arrived.set()

    @property
    def ids(self) -> list[str]:
        return [event.event_id for event, _ in self.records]

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition():
                self._arrived.clear()
                await self._arrived.wait()


async def _publish(config: KafkaConfig, topic: str, events: list[Event]) -> None:
    async with EventProducer(config) as producer:
        for event in events:
            await producer.publish(topic, event)


async def _consume(
    config: KafkaConfig, topic: str, group: str, received: Received, count: int
) -> None:
    """Run a consumer until `received` has `count` records, then stop it."""
    consumer = EventConsumer(config, [topic], group, received)
    await consumer.start()
    running = asyncio.create_task(consumer.run())
    try:
        await received.wait_until(lambda: len(received.records) >= count)
    finally:
        await consumer.stop()
        await running


async def test_ensure_topics_tolerates_existing_topics(
    kafka_config: KafkaConfig, topics: Topics
) -> None:
    names = [topics.domain, topics.repository, topics.replication]
    await ensure_topics(kafka_config, names)
    await ensure_topics(kafka_config, [*names, names[0]], partitions=3)


async def test_a_consumer_receives_published_events_in_order(
    kafka_config: KafkaConfig, topics: Topics
) -> None:
    group = f"{topics.prefix}.replicator"
    await ensure_topics(kafka_config, [topics.repository])
    events = [_updated(42, seq) for seq in range(1, 11)]
    await _publish(kafka_config, topics.repository, events)

    received = Received()
    await _consume(kafka_config, topics.repository, group, received, len(events))

    assert [event for event, _ in received.records] == events
    infos = [info for _, info in received.records]
    assert [info.offset for info in infos] == list(range(len(events)))
    assert {(info.topic, info.partition, info.key) for info in infos} == {
        (topics.repository, 0, "project-42")
    }


async def test_an_explicit_key_replaces_the_aggregate_id(
    kafka_config: KafkaConfig, topics: Topics
) -> None:
    group = f"{topics.prefix}.observer"
    await ensure_topics(kafka_config, [topics.replication])
    async with EventProducer(kafka_config) as producer:
        await producer.publish(topics.replication, _updated(42, 1), key="eu:42")

    received = Received()
    await _consume(kafka_config, topics.replication, group, received, 1)
    assert received.records[0][1].key == "eu:42"


async def test_a_failed_handler_leaves_its_event_for_the_next_consumer(
    kafka_config: KafkaConfig, topics: Topics
) -> None:
    group = f"{topics.prefix}.replicator"
    await ensure_topics(kafka_config, [topics.repository])
    events = [_updated(42, seq) for seq in range(1, 6)]
    await _publish(kafka_config, topics.repository, events)

    handled: list[Event] = []

    async def fail_on_third(event: Event, info: ConsumerRecordInfo) -> None:
        if len(handled) == 2:
            raise RuntimeError("disk full")
        handled.append(event)

    first = EventConsumer(kafka_config, [topics.repository], group, fail_on_third)
    await first.start()
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            await asyncio.wait_for(first.run(), WAIT)
    finally:
        await first.stop()
    assert handled == events[:2]

    received = Received()
    await _consume(kafka_config, topics.repository, group, received, 3)
    assert [event for event, _ in received.records] == events[2:]
    assert received.records[0][1].offset == 2


async def test_an_undecodable_record_is_skipped_and_committed(
    kafka_config: KafkaConfig, topics: Topics
) -> None:
    group = f"{topics.prefix}.read-model"
    await ensure_topics(kafka_config, [topics.domain])
    raw = AIOKafkaProducer(bootstrap_servers=kafka_config.bootstrap, acks="all")
    await raw.start()
    try:
        await raw.send_and_wait(topics.domain, b"\xff\xff not an event", key=b"user-7")
    finally:
        await raw.stop()
    good = _updated(7, 1)
    await _publish(kafka_config, topics.domain, [good])

    received = Received()
    await _consume(kafka_config, topics.domain, group, received, 1)
    assert received.ids == [good.event_id]
    assert received.records[0][1].offset == 1

    later = _updated(7, 2)
    await _publish(kafka_config, topics.domain, [later])
    again = Received()
    await _consume(kafka_config, topics.domain, group, again, 1)
    assert again.ids == [later.event_id]


async def test_two_consumers_share_the_partitions_of_a_group(
    kafka_config: KafkaConfig, topics: Topics
) -> None:
    group = f"{topics.prefix}.replicator"
    await ensure_topics(kafka_config, [topics.repository], partitions=2)
    arrived = asyncio.Event()
    a, b = Received(arrived), Received(arrived)
    members = [EventConsumer(kafka_config, [topics.repository], group, h) for h in (a, b)]
    await asyncio.gather(*(member.start() for member in members))
    running = [asyncio.create_task(member.run()) for member in members]
    published: list[str] = []
    try:
        async with EventProducer(kafka_config) as producer, asyncio.timeout(WAIT):
            # Keys spread the events over both partitions; keep publishing until the group has
            # settled and both members receive some.
            while not (a.records and b.records):
                event = _updated(len(published), 1)
                await producer.publish(topics.repository, event)
                published.append(event.event_id)
                await asyncio.sleep(0.05)
            # A rebalance on the way may redeliver events, never lose one.
            await a.wait_until(lambda: set(published) <= {*a.ids, *b.ids})
    finally:
        await asyncio.gather(*(member.stop() for member in members))
        await asyncio.gather(*running)


async def test_publish_failures_raise_publish_error(kafka_config: KafkaConfig) -> None:
    producer = EventProducer(kafka_config)
    with pytest.raises(RuntimeError, match="before start"):
        await producer.publish("anywhere", _updated(1, 1))
    async with producer:
        too_big = _updated(1, 1, checksum="x" * 2_000_000)
        with pytest.raises(PublishError, match=f"RepositoryUpdated {too_big.event_id}"):
            await producer.publish(f"test-{uuid.uuid4().hex}", too_big)


async def test_a_rebalance_commits_what_was_handled_before_partitions_move(
    kafka_config: KafkaConfig, topics: Topics
) -> None:
    group = f"{topics.prefix}.replicator"
    topic = topics.repository
    await ensure_topics(kafka_config, [topic])
    await _publish(kafka_config, topic, [_updated(42, seq) for seq in range(1, 6)])

    handled: list[Event] = []
    stuck, release = asyncio.Event(), asyncio.Event()

    async def slow_on_third(event: Event, info: ConsumerRecordInfo) -> None:
        if len(handled) == 2:
            stuck.set()
            await release.wait()
        handled.append(event)

    first = EventConsumer(kafka_config, [topic], group, slow_on_third)
    second = EventConsumer(kafka_config, [topic], group, Received())
    await first.start()
    running = asyncio.create_task(first.run())
    try:
        await asyncio.wait_for(stuck.wait(), WAIT)
        # Joining forces a rebalance while the first member is mid-batch: its listener commits
        # the two events it has handled, before the group settles.
        await asyncio.wait_for(second.start(), WAIT)
        assert await _committed(kafka_config, group, topic) == 2
    finally:
        release.set()
        await asyncio.gather(first.stop(), second.stop())
        await running


async def _committed(config: KafkaConfig, group: str, topic: str) -> int | None:
    probe = AIOKafkaConsumer(bootstrap_servers=config.bootstrap, group_id=group)
    await probe.start()
    try:
        offset: int | None = await probe.committed(TopicPartition(topic, 0))
        return offset
    finally:
        await probe.stop()


async def test_stop_lets_the_current_handler_finish_and_run_return(
    kafka_config: KafkaConfig, topics: Topics
) -> None:
    group = f"{topics.prefix}.replicator"
    await ensure_topics(kafka_config, [topics.repository])
    await _publish(kafka_config, topics.repository, [_updated(42, seq) for seq in range(1, 6)])

    handled: list[Event] = []
    stuck, release = asyncio.Event(), asyncio.Event()

    async def slow_on_second(event: Event, info: ConsumerRecordInfo) -> None:
        if len(handled) == 1:
            stuck.set()
            await release.wait()
        handled.append(event)

    consumer = EventConsumer(kafka_config, [topics.repository], group, slow_on_second)
    await consumer.start()
    running = asyncio.create_task(consumer.run())
    await asyncio.wait_for(stuck.wait(), WAIT)
    stopping = asyncio.create_task(consumer.stop())
    release.set()
    await asyncio.wait_for(asyncio.gather(stopping, running), WAIT)
    assert len(handled) == 2


async def test_partition_for_names_the_partition_the_producer_chose(
    kafka_config: KafkaConfig, topics: Topics
) -> None:
    await ensure_topics(kafka_config, [topics.repository], partitions=3)
    events = [_updated(project_id, 1) for project_id in range(1, 13)]
    await _publish(kafka_config, topics.repository, events)
    received = Received()
    await _consume(kafka_config, topics.repository, f"{topics.prefix}.p", received, len(events))
    chosen = {info.key: info.partition for _, info in received.records}
    assert len(set(chosen.values())) > 1  # twelve keys do not all land on one partition
    assert chosen == {key: partition_for(key, 3) for key in chosen}


async def test_topics_are_created_with_the_configured_partitions(
    kafka_config: KafkaConfig, topics: Topics
) -> None:
    config = dataclasses.replace(kafka_config, partitions=4)
    await ensure_topics(config, [topics.repository])
    probe = AIOKafkaConsumer(bootstrap_servers=config.bootstrap)
    await probe.start()
    try:
        await probe.topics()
        assert probe.partitions_for_topic(topics.repository) == {0, 1, 2, 3}
    finally:
        await probe.stop()


async def test_a_consumer_without_a_group_reads_every_partition_from_the_end(
    kafka_config: KafkaConfig, topics: Topics
) -> None:
    await ensure_topics(kafka_config, [topics.repository], partitions=3)
    before = [_updated(project_id, 1) for project_id in range(1, 4)]
    await _publish(kafka_config, topics.repository, before)
    arrived = asyncio.Event()
    a, b = Received(arrived), Received(arrived)
    members = [EventConsumer(kafka_config, [topics.repository], None, h) for h in (a, b)]
    await asyncio.gather(*(member.start() for member in members))
    running = [asyncio.create_task(member.run()) for member in members]
    try:
        after = [_updated(project_id, 2) for project_id in range(1, 13)]
        await _publish(kafka_config, topics.repository, after)
        expected = {event.event_id for event in after}
        await a.wait_until(lambda: set(a.ids) >= expected and set(b.ids) >= expected)
        # Both saw every partition's events, and neither what was there before it started.
        assert {info.partition for _, info in a.records} == {0, 1, 2}
        assert set(a.ids) == set(b.ids) == expected
    finally:
        await asyncio.gather(*(member.stop() for member in members))
        await asyncio.gather(*running)


class Holdings:
    """Rebalance hooks that keep what a member holds and the order the hooks ran in."""

    def __init__(self, name: str, journal: list[str]) -> None:
        self.name = name
        self.journal = journal
        self.held: set[TopicPartition] = set()
        self.last = Assignment()
        self.changed = asyncio.Event()
        self.hooks = RebalanceHooks(self.assigned, self.revoked)

    async def assigned(self, assignment: Assignment) -> None:
        self.held |= assignment.partitions
        self.last = assignment
        self.journal.append(f"{self.name} assigned {len(assignment.partitions)}")
        self.changed.set()

    async def revoked(self, assignment: Assignment) -> None:
        self.held -= assignment.partitions
        self.journal.append(f"{self.name} revoked {len(assignment.partitions)}")
        self.changed.set()


async def test_rebalance_hooks_divide_the_keys_and_revoke_before_the_group_moves_on(
    kafka_config: KafkaConfig, topics: Topics
) -> None:
    group = f"{topics.prefix}.replicator"
    await ensure_topics(kafka_config, [topics.repository], partitions=3)
    journal: list[str] = []
    first, second = Holdings("first", journal), Holdings("second", journal)
    one = EventConsumer(kafka_config, [topics.repository], group, Received(), first.hooks)
    two = EventConsumer(kafka_config, [topics.repository], group, Received(), second.hooks)
    await one.start()
    running = [asyncio.create_task(one.run())]
    try:
        async with asyncio.timeout(WAIT):
            while len(first.held) != 3:
                first.changed.clear()
                await first.changed.wait()
            assert first.last.counts == {topics.repository: 3}
            await two.start()
            running.append(asyncio.create_task(two.run()))
            await asyncio.sleep(0)  # run() begins before anything below can stop the member
            while not (first.held and second.held and len(first.held | second.held) == 3):
                second.changed.clear()
                await second.changed.wait()
        assert not first.held & second.held
        assert journal.index("first revoked 3") < journal.index(
            f"second assigned {len(second.held)}"
        )
        keys = [f"project-{n}" for n in range(1, 50)]
        owners = [
            (first.last.owns(topics.repository, key), second.last.owns(topics.repository, key))
            for key in keys
        ]
        assert all(a != b for a, b in owners)  # every key has exactly one owner
        held = set(second.held)
        await two.stop()
        assert second.held == set()
        assert journal[-1] == f"second revoked {len(held)}"
    finally:
        await asyncio.gather(one.stop(), two.stop())
        await asyncio.gather(*running)
