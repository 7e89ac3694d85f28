"""Publishing and consuming geogit events over any Kafka-protocol broker.

Delivery is at-least-once on purpose: the producer returns only once the broker has the event
(`acks=all`), and the consumer commits an offset only after its handler's effect is done.
Consumers remember the last sequence applied per aggregate (DESIGN §4), so a redelivered event
is harmless; a skipped one would not be.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    ConsumerStoppedError,
    IllegalStateError,
    KafkaError,
    TopicAlreadyExistsError,
    for_code,
)
from aiokafka.partitioner import murmur2

from geogit.common.background import Background
from geogit.common.events import Event, EventDecodeError, decode_event, encode_event
from geogit.common.kafka_health import broker_health

log = logging.getLogger(__name__)

_POLL_TIMEOUT_MS = 1000
# aiokafka retries a commit while the coordinator is unreachable; past this the record is left
# uncommitted (and redelivered later) rather than holding up the loop or stop().
_COMMIT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class KafkaConfig:
    """Where the broker is and which of its features to rely on.

    Idempotence is a setting because Tansu answers `InitProducerId` with an error; turn it on
    against a real Kafka. Tansu also holds a group join for about half the session timeout, so
    tests shorten it; real Kafka refuses less than 6000 ms by default.
    """

    bootstrap: str
    idempotent: bool = False
    client_id: str = "geogit"
    session_timeout_ms: int = 10_000
    # How long a fetch waits for records that are not there yet. Replication lag is made of
    # such waits, so it is short; an idle consumer pays with a few more fetch requests.
    fetch_max_wait_ms: int = 100
    # Partitions of the topics this process creates (topics that exist keep theirs): how many
    # members of one consumer group can share the work (GEOGIT_KAFKA_PARTITIONS).
    partitions: int = 1


def partition_for(key: str, partitions: int) -> int:
    """The partition the producer's default partitioner sends `key` to: murmur2, as Kafka's
    Java client, so every client agrees on who owns which key."""
    return int((murmur2(key.encode()) & 0x7FFFFFFF) % partitions)


@dataclass(frozen=True)
class Assignment:
    """The partitions a group member holds, with each topic's partition count to map keys."""

    partitions: frozenset[TopicPartition] = frozenset()
    counts: Mapping[str, int] = field(default_factory=dict)

    def owns(self, topic: str, key: str) -> bool:
        count = self.counts.get(topic)
        if not count:
            return False
        return TopicPartition(topic, partition_for(key, count)) in self.partitions


PartitionsMoved = Callable[[Assignment], Awaitable[None]]


@dataclass(frozen=True)
class RebalanceHooks:
    """A group member's part in a rebalance. `revoked` runs before the handled offsets of the
    partitions leaving are committed and the group moves on, so the work they own can stop
    first (no two members working on one key); `assigned` once the new assignment is known."""

    assigned: PartitionsMoved
    revoked: PartitionsMoved


class PublishError(RuntimeError):
    """The broker did not acknowledge an event; the outbox relay keeps it and retries."""


class EventProducer:
    """Publishes events and returns only once every in-sync replica has them."""

    def __init__(self, config: KafkaConfig) -> None:
        self._config = config
        self._producer: Any = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._config.bootstrap,
            client_id=self._config.client_id,
            acks="all",
            enable_idempotence=self._config.idempotent,
        )
        broker_health.watch(self._config.bootstrap)
        try:
            await producer.start()
        except BaseException:
            broker_health.forget(self._config.bootstrap)
            raise
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            finally:
                broker_health.forget(self._config.bootstrap)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def publish(self, topic: str, event: Event, key: str | None = None) -> None:
        """Send one event, keyed by its aggregate unless told otherwise, and wait for the ack.

        The key decides the partition, so one aggregate's events stay in order.
        """
        if self._producer is None:
            raise RuntimeError("EventProducer.publish() called before start()")
        key = event.aggregate_id if key is None else key
        try:
            await self._producer.send_and_wait(topic, encode_event(event), key=key.encode())
        except KafkaError as exc:
            raise PublishError(f"publishing {event.type} {event.event_id} to {topic}") from exc


async def ensure_topics(
    config: KafkaConfig,
    topics: Iterable[str],
    partitions: int | None = None,
    *,
    replication_factor: int = 1,
) -> None:
    """Create the topics that do not exist yet; existing ones are left exactly as they are.

    The replication factor is explicit because aiokafka speaks CreateTopics v3, which cannot
    ask for the broker's default.
    """
    guard = TopicGuard(config, topics, partitions, replication_factor=replication_factor)
    try:
        await guard.ensure()
    finally:
        await guard.close()


class TopicGuard:
    """`ensure_topics` over one long-lived admin connection, for a caller that checks before
    every batch (the outbox relay: a restarted broker may have lost its topics behind a live
    producer). A fresh admin client costs a connection, API-version and metadata round trips
    each time (~8 ms and 2 ms of CPU here); a kept one, one CreateTopics request. After a
    failure the connection is dropped and the next `ensure` starts a new one."""

    def __init__(
        self,
        config: KafkaConfig,
        topics: Iterable[str],
        partitions: int | None = None,
        *,
        replication_factor: int = 1,
    ) -> None:
        self._config = config
        self._topics = sorted(set(topics))
        self._partitions = config.partitions if partitions is None else partitions
        self._replication_factor = replication_factor
        self._admin: AIOKafkaAdminClient | None = None

    async def ensure(self) -> None:
        admin = self._admin or await self._start()
        try:
            response = await admin.create_topics(
                [
                    NewTopic(name, self._partitions, self._replication_factor)
                    for name in self._topics
                ]
            )
        except BaseException:
            await self.close()
            raise
        for topic, code, *_ in response.topic_errors:
            if code not in (0, TopicAlreadyExistsError.errno):
                raise for_code(code)(f"creating topic {topic}")

    async def _start(self) -> AIOKafkaAdminClient:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._config.bootstrap, client_id=self._config.client_id
        )
        broker_health.watch(self._config.bootstrap)
        try:
            await admin.start()
        except BaseException:
            broker_health.forget(self._config.bootstrap)
            with contextlib.suppress(Exception):
                await admin.close()
            raise
        self._admin = admin
        return admin

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                await admin.close()
            finally:
                broker_health.forget(self._config.bootstrap)


@dataclass(frozen=True)
class ConsumerRecordInfo:
    """Where an event was read from, for handlers that log or report their position."""

    topic: str
    partition: int
    offset: int
    key: str | None


EventHandler = Callable[[Event, ConsumerRecordInfo], Awaitable[None]]


class _Rebalance(ConsumerRebalanceListener):
    """Runs the member's hooks, and commits what was handled on partitions about to move so
    their next owner starts after it instead of handling it again. aiokafka awaits both before
    the group moves on."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        hooks: RebalanceHooks | None,
        commit: Callable[[Iterable[TopicPartition]], Awaitable[None]],
    ) -> None:
        self._consumer = consumer
        self._hooks = hooks
        self._commit = commit

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.revoke(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        if self._hooks is not None:
            await self._hooks.assigned(self.assignment(set(assigned)))

    async def revoke(self, revoked: set[TopicPartition]) -> None:
        if self._hooks is not None and revoked:
            await self._hooks.revoked(self.assignment(revoked))
        await self._commit(revoked)

    def assignment(self, partitions: set[TopicPartition]) -> Assignment:
        topics = {tp.topic for tp in partitions}
        counts = {topic: len(self._consumer.partitions_for_topic(topic) or ()) for topic in topics}
        return Assignment(frozenset(partitions), counts)


class EventConsumer:
    """Feeds a group's events to a handler, committing an offset only after the handler's effect.

    Without a group (`group_id` None) it reads every partition of its topics from their end and
    commits nothing: for a consumer that keeps its position elsewhere and must see every event,
    whichever replica of a service it runs in (the read model's feed, replicator hints).

    `run()` commits after each partition's share of a fetched batch, and the rebalance listener
    commits it sooner when partitions move mid-batch. A handler that raises stops `run()` with
    that exception: the records handled before it are committed, the failing one is not, so once
    the consumer is started again (here or in another member of the group) it is delivered
    again, and nothing after it is skipped. A record that does not decode is logged and
    committed past, so one poison message cannot block its partition; the event store still has
    every event, for consumers that notice the gap in `global_seq`.
    """

    def __init__(
        self,
        config: KafkaConfig,
        topics: Sequence[str],
        group_id: str | None,
        handler: EventHandler,
        hooks: RebalanceHooks | None = None,
    ) -> None:
        self._config = config
        self._topics = list(topics)
        self._group_id = group_id
        self._handler = handler
        self._hooks = hooks
        self._consumer: Any = None
        self._rebalance: _Rebalance | None = None
        # Next offset to commit, per partition: handled, not yet committed.
        self._handled: dict[TopicPartition, int] = {}
        # stop() waits for a commit in flight: aiokafka retries a commit whose connection
        # stop() closed, forever.
        self._commit_lock = asyncio.Lock()
        # Records fetched but not handled yet: with positions(), tells "caught up" apart from
        # "fetched everything, still applying it".
        self._unhandled = 0

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._config.bootstrap,
            client_id=self._config.client_id,
            group_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._config.session_timeout_ms,
            heartbeat_interval_ms=self._config.session_timeout_ms // 3,
            fetch_max_wait_ms=self._config.fetch_max_wait_ms,
        )
        if self._group_id is not None:
            self._rebalance = _Rebalance(consumer, self._hooks, self._commit_handled)
            consumer.subscribe(self._topics, listener=self._rebalance)
        broker_health.watch(self._config.bootstrap)
        try:
            await consumer.start()
            if self._group_id is None:
                await self._assign_every_partition(consumer)
        except BaseException:
            broker_health.forget(self._config.bootstrap)
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        self._consumer = consumer

    async def _assign_every_partition(self, consumer: AIOKafkaConsumer) -> None:
        await consumer.topics()  # a metadata refresh: the partitions of every topic
        partitions = [
            TopicPartition(topic, partition)
            for topic in self._topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)

    async def stop(self) -> None:
        """Leave the group; a `run()` in progress returns after its current handler. The hooks
        hear that the partitions held are revoked, as in a rebalance: aiokafka leaves a group
        without telling the listener."""
        async with self._commit_lock:
            consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            if self._hooks is not None and self._rebalance is not None:
                held = set(consumer.assignment())
                if held:
                    await self._hooks.revoked(self._rebalance.assignment(held))
            await consumer.stop()
        finally:
            broker_health.forget(self._config.bootstrap)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def positions(self) -> dict[TopicPartition, tuple[int, int]]:
        """(next offset to read, end offset) of each assigned partition: equal means caught up.

        A partition whose end offset fell below what was read before belongs to a topic that
        was recreated (a broker that lost its data), which only the event store can make up for.
        """
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("EventConsumer.positions() called before start()")
        assigned = list(consumer.assignment())
        if not assigned:
            return {}
        ends = await consumer.end_offsets(assigned)
        return {tp: (await consumer.position(tp), ends[tp]) for tp in assigned}

    @property
    def idle(self) -> bool:
        """No fetched record is waiting for the handler (read it after `positions()`)."""
        return self._unhandled == 0

    async def run(self) -> None:
        """Consume until `stop()`; a handler's exception propagates (see the class docstring)."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("EventConsumer.run() called before start()")
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=_POLL_TIMEOUT_MS)
            except ConsumerStoppedError:
                return
            self._unhandled = sum(len(records) for records in batches.values())
            try:
                for tp, records in batches.items():
                    try:
                        for record in records:
                            if self._consumer is not consumer:
                                return  # stop() was called: the rest is for the next consumer
                            if tp not in consumer.assignment():
                                break  # moved in a rebalance: the new owner resumes after us
                            await self._handle(record)
                            self._handled[tp] = record.offset + 1
                            self._unhandled -= 1
                    finally:
                        await self._commit_handled([tp])
            finally:
                self._unhandled = 0

    async def _handle(self, record: Any) -> None:
        try:
            event = decode_event(record.value or b"")
        except EventDecodeError as exc:
            log.error(
                "skipping undecodable record %s[%d]@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                exc,
            )
            return
        key = None if record.key is None else record.key.decode("utf-8", "replace")
        await self._handler(
            event, ConsumerRecordInfo(record.topic, record.partition, record.offset, key)
        )

    async def _commit_handled(self, partitions: Iterable[TopicPartition]) -> None:
        offsets = {tp: self._handled.pop(tp) for tp in partitions if tp in self._handled}
        if not offsets or self._group_id is None:
            return
        async with self._commit_lock:
            if self._consumer is None:
                return
            try:
                async with asyncio.timeout(_COMMIT_TIMEOUT_S):
                    await self._consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError, TimeoutError) as exc:
                # Whoever reads the partition next starts at the last commit and sees these
                # records again; idempotent handlers absorb the repeats.
                log.warning("offsets %s not committed: %r", offsets, exc)


class ConsumerLoop:
    """An `EventConsumer` kept running for a service's lifetime.

    A consumer stops when its handler raises or the broker goes away; the loop logs why and
    starts a new one (which resumes from the last committed offset) a moment later, creating
    the topics first so a broker that lost its data is usable again. `consumer` is the live
    one, for callers that watch its lag.
    """

    def __init__(
        self,
        config: KafkaConfig,
        topics: Sequence[str],
        group_id: str | None,
        handler: EventHandler,
        retry_seconds: float = 2.0,
        hooks: RebalanceHooks | None = None,
    ) -> None:
        self._config = config
        self._topics = list(topics)
        self._group_id = group_id
        self._handler = handler
        self._retry_seconds = retry_seconds
        self._hooks = hooks
        self.consumer: EventConsumer | None = None
        self._consuming = asyncio.Event()
        self._name = group_id or "+".join(self._topics)
        self._loop = Background(f"consume-{self._name}", self._run_forever)

    def start(self) -> None:
        self._loop.start()

    async def consuming(self, timeout: float) -> bool:
        """Wait until a consumer is started (a group-less one positioned at the end, so what is
        published from now on reaches it); False after `timeout`, for a caller that goes on
        without the broker."""
        try:
            async with asyncio.timeout(timeout):
                await self._consuming.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run_forever(self) -> None:
        while True:
            consumer = EventConsumer(
                self._config, self._topics, self._group_id, self._handler, self._hooks
            )
            try:
                await ensure_topics(self._config, self._topics)
                await consumer.start()
                self.consumer = consumer
                self._consuming.set()
                await consumer.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # During a broker outage this repeats every retry; the outage is logged once.
                level = logging.DEBUG if broker_health.in_outage else logging.WARNING
                log.log(level, "consumer %s stopped, restarting: %r", self._name, exc)
            finally:
                self.consumer = None
                self._consuming.clear()
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await asyncio.sleep(self._retry_seconds)
