"""A real Tansu broker stopped and restarted under a producer and a consumer loop: the outage
is logged once when it starts and once when it ends, counted, and aiokafka's reconnect noise
stays out of the log."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from prometheus_client import REGISTRY

from geogit.common.events import Event, Topics, new_event
from geogit.common.kafka import ConsumerLoop, ConsumerRecordInfo, EventProducer, KafkaConfig
from geogit.common.kafka_health import broker_health, is_connection_error
from geogit.common.proto.events.v1 import repository_pb2
from geogit.common.tansu import TansuBroker

OUTAGE_SECONDS = 12.0
# aiokafka lines allowed through in a whole outage (the ones that are not about the broker).
MAX_ERROR_LINES = 3


def _updated(seq: int) -> Event:
    return new_event(
        repository_pb2.RepositoryUpdated(project_id=7, seq=seq, checksum="c" * 40),
        aggregate_id="project-7",
        aggregate_seq=seq,
        origin_site="primary",
        correlation_id="",
    )


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def _wait(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_a_broker_outage_is_logged_once_counted_and_quiet(
    caplog: pytest.LogCaptureFixture, topics: Topics
) -> None:
    broker = TansuBroker()
    broker.start()
    config = KafkaConfig(bootstrap=broker.bootstrap, session_timeout_ms=2000)
    received: list[Event] = []

    async def handle(event: Event, info: ConsumerRecordInfo) -> None:
        received.append(event)

    loop = ConsumerLoop(config, [topics.repository], f"{topics.prefix}.g", handle, 0.5)
    outages_before = _metric("geogit_kafka_outages_total")
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    caplog.set_level(logging.INFO, logger="geogit")
    try:
        async with EventProducer(config) as producer:
            loop.start()
            await producer.publish(topics.repository, _updated(1))
            await _wait(lambda: len(received) == 1, 30, "the first event")
            caplog.clear()

            broker.stop()
            await _wait(lambda: broker_health.in_outage, 30, "the outage to be noticed")
            assert _metric("geogit_kafka_broker_reachable") == 0
            await asyncio.sleep(OUTAGE_SECONDS)
            broker.start()
            await _wait(lambda: not broker_health.in_outage, 30, "the outage to end")
            assert _metric("geogit_kafka_broker_reachable") == 1

            # The broker lost its memory; the loop recreates the topic and consumes again.
            async with asyncio.timeout(60):
                while len(received) < 2:
                    try:
                        await producer.publish(topics.repository, _updated(2))
                    except Exception:
                        await asyncio.sleep(0.5)
                        continue
                    await _wait(lambda: len(received) >= 2, 30, "the event after the outage")
    finally:
        await loop.stop()
        broker.stop()

    messages = [record.getMessage() for record in caplog.records]
    started = [m for m in messages if m == "Kafka broker unreachable: outage started"]
    ended = [m for m in messages if m.startswith("Kafka broker reachable again: outage ended")]
    assert len(started) == 1, messages
    assert len(ended) == 1, messages
    assert _metric("geogit_kafka_outages_total") == outages_before + 1
    noisy = [
        r for r in caplog.records if r.name.startswith("aiokafka") and r.levelno >= logging.WARNING
    ]
    assert len(noisy) <= MAX_ERROR_LINES, [r.getMessage() for r in noisy]
    assert not [r for r in noisy if is_connection_error(r)]
    assert [event.aggregate_seq for event in received][-1] == 2
