"""The broker settings shared by every service that speaks Kafka, from GEOGIT_* variables."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from geogit.common.kafka import KafkaConfig
from geogit.common.settings import GeogitSettings


class KafkaSettings(GeogitSettings):
    # Bootstrap servers; empty: no Kafka (each service says what it does without).
    kafka_bootstrap: str = ""
    # Off for Tansu (it cannot answer InitProducerId), on for a real Kafka.
    kafka_idempotent: bool = False
    # Consumer group session timeout; Tansu holds a group join for about half of it.
    kafka_session_timeout_ms: int = 10_000
    # The partitions topics are created with, and so the most members of one consumer group
    # that get work (a site's replicators). Topics that exist keep theirs.
    kafka_partitions: Annotated[int, Field(ge=1)] = 6
    topic_prefix: str = "geogit"

    def kafka(self, client_id: str) -> KafkaConfig | None:
        if not self.kafka_bootstrap:
            return None
        return KafkaConfig(
            bootstrap=self.kafka_bootstrap,
            idempotent=self.kafka_idempotent,
            client_id=client_id,
            session_timeout_ms=self.kafka_session_timeout_ms,
            partitions=self.kafka_partitions,
        )
