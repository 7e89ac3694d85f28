"""Pytest fixtures for tests that need Kafka; a test tree's conftest imports the ones it uses.

One Tansu broker serves the whole session, and each test gets topics under its own prefix, so
tests never see each other's events and never wait for a broker per test.
"""

import uuid
from collections.abc import Iterator

import pytest

from geogit.common.events import Topics
from geogit.common.kafka import KafkaConfig
from geogit.common.tansu import TansuBroker


@pytest.fixture(scope="session")
def tansu() -> Iterator[TansuBroker]:
    with TansuBroker() as broker:
        yield broker


@pytest.fixture
def kafka_config(tansu: TansuBroker) -> KafkaConfig:
    # Tansu holds a group join for half the session timeout: a short one keeps tests fast.
    return KafkaConfig(bootstrap=tansu.bootstrap, session_timeout_ms=2000)


@pytest.fixture
def topics() -> Topics:
    return Topics(prefix=f"test-{uuid.uuid4().hex[:12]}")
