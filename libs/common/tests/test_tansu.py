import asyncio
import socket
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from geogit.common.kafka import KafkaConfig, TopicGuard, ensure_topics
from geogit.common.tansu import TansuBroker, TansuError


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_a_restarted_broker_has_lost_every_topic(tmp_path: Path) -> None:
    """DESIGN §7: memory storage; the event store, not Kafka, is what survives."""
    broker = TansuBroker(log_path=tmp_path / "tansu.log")
    with broker:
        await ensure_topics(KafkaConfig(broker.bootstrap), ["geogit.domain"])
        assert "geogit.domain" in await _topics(broker.bootstrap)
        bootstrap = broker.bootstrap

    with broker:
        assert broker.bootstrap == bootstrap
        assert await _topics(broker.bootstrap) == set()
    assert "listening on" in (tmp_path / "tansu.log").read_text()


async def test_a_kept_topic_guard_recreates_the_topics_a_restarted_broker_lost(
    tmp_path: Path,
) -> None:
    """The relay's per-batch check runs on one kept admin connection: a broker restarted behind
    it (memory storage, every topic gone) gets the topics back at the next check — after at
    most one failed attempt, which drops the dead connection."""
    broker = TansuBroker(log_path=tmp_path / "tansu.log")
    guard: TopicGuard | None = None
    try:
        with broker:
            guard = TopicGuard(
                KafkaConfig(broker.bootstrap), ["geogit.domain", "geogit.repository"]
            )
            await guard.ensure()
            await guard.ensure()  # the same connection, the topics exist: no error
            assert {"geogit.domain", "geogit.repository"} <= await _topics(broker.bootstrap)
        with broker:
            for attempt in range(3):
                try:
                    await asyncio.wait_for(guard.ensure(), 15)
                    break
                except (KafkaError, OSError):
                    assert attempt < 2, "the guard never reconnected"
            assert {"geogit.domain", "geogit.repository"} <= await _topics(broker.bootstrap)
    finally:
        if guard is not None:
            await guard.close()


def test_a_broker_that_cannot_listen_fails_with_its_log() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = TansuBroker(port=taken.getsockname()[1])
        with pytest.raises(TansuError, match=r"(?s)tansu exited.*Address in use"):
            broker.start(timeout=20)


def test_the_bootstrap_address_needs_a_port() -> None:
    with pytest.raises(TansuError, match="no port"):
        _ = TansuBroker().bootstrap
    assert TansuBroker(port=1234, host="127.0.0.2").bootstrap == "127.0.0.2:1234"
