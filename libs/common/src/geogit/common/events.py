"""The event envelope every geogit event travels in, on Kafka and from the event-store API.

Producers and consumers share these functions so that both sides agree on one wire format:
the protobuf `EventEnvelope` on Kafka, and its JSON twin on `GET /api/v4/geo/events`.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from geogit.common.logging import get_correlation_id
from geogit.common.proto.events.v1 import (
    domain_pb2,
    envelope_pb2,
    replication_pb2,
    repository_pb2,
)

SCHEMA_VERSION = 1

# Built from the generated modules, so adding a message to a .proto registers it.
EVENT_TYPES: Mapping[str, type[Message]] = MappingProxyType(
    {
        name: message_factory.GetMessageClass(descriptor)
        for module in (domain_pb2, repository_pb2, replication_pb2)
        for name, descriptor in module.DESCRIPTOR.message_types_by_name.items()
    }
)


# A project's events are keyed by this: it orders them, and it is how the repository topic's
# partitions divide projects among a site's replicators.
PROJECT_AGGREGATE_PREFIX = "project-"


def project_aggregate(project_id: int) -> str:
    return f"{PROJECT_AGGREGATE_PREFIX}{project_id}"


class EventDecodeError(ValueError):
    """Bytes or JSON that are not an event this build can read."""


@dataclass(frozen=True)
class Topics:
    """Topic names under one prefix, so several sites or tests can share a broker."""

    prefix: str = "geogit"

    @property
    def domain(self) -> str:
        return f"{self.prefix}.domain"

    @property
    def repository(self) -> str:
        return f"{self.prefix}.repository"

    @property
    def replication(self) -> str:
        return f"{self.prefix}.replication"

    def group(self, name: str) -> str:
        """A consumer group under the same prefix: a group spans topics, so two stacks sharing
        a broker must not share `replicator-<site>` either."""
        return f"{self.prefix}-{name}"


@dataclass(frozen=True)
class Event:
    """One event with its payload already decoded; `global_seq` is the outbox position."""

    event_id: str
    type: str
    schema_version: int
    aggregate_id: str
    aggregate_seq: int
    global_seq: int
    occurred_at: datetime
    origin_site: str
    payload: Message
    correlation_id: str = ""
    # The epoch of the primary that wrote it (DESIGN §10).
    epoch: int = 1

    def __post_init__(self) -> None:
        # A naive time would be read as local time by one side and as UTC by the other; one
        # zone everywhere keeps the JSON form and equality comparisons stable.
        if self.occurred_at.tzinfo is None:
            raise ValueError("Event.occurred_at must be timezone-aware")
        object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(UTC))


def new_event(
    payload: Message,
    *,
    aggregate_id: str,
    aggregate_seq: int,
    origin_site: str,
    global_seq: int = 0,
    occurred_at: datetime | None = None,
    correlation_id: str | None = None,
    epoch: int = 1,
) -> Event:
    """Wrap a payload; refuses unregistered messages so no consumer receives an unknown type.

    `global_seq` is 0 until the outbox assigns the event its position. The correlation id
    defaults to the one bound for the current request, so events can be joined to its logs.
    """
    event_type = payload.DESCRIPTOR.name
    if EVENT_TYPES.get(event_type) is not type(payload):
        raise ValueError(f"{payload.DESCRIPTOR.full_name} is not a registered event type")
    return Event(
        event_id=str(uuid.uuid4()),
        type=event_type,
        schema_version=SCHEMA_VERSION,
        aggregate_id=aggregate_id,
        aggregate_seq=aggregate_seq,
        global_seq=global_seq,
        occurred_at=occurred_at or datetime.now(UTC),
        origin_site=origin_site,
        payload=payload,
        correlation_id=get_correlation_id() if correlation_id is None else correlation_id,
        epoch=epoch,
    )


def timestamp(moment: datetime) -> Timestamp:
    """A payload's time field from an aware datetime."""
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _payload_class(event_type: str, schema_version: int) -> type[Message]:
    if schema_version != SCHEMA_VERSION:
        raise EventDecodeError(
            f"unsupported event schema version {schema_version} (this build reads {SCHEMA_VERSION})"
        )
    try:
        return EVENT_TYPES[event_type]
    except KeyError:
        raise EventDecodeError(f"unknown event type {event_type!r}") from None


def encode_event(event: Event) -> bytes:
    envelope = envelope_pb2.EventEnvelope(
        event_id=event.event_id,
        type=event.type,
        schema_version=event.schema_version,
        aggregate_id=event.aggregate_id,
        aggregate_seq=event.aggregate_seq,
        global_seq=event.global_seq,
        origin_site=event.origin_site,
        payload=event.payload.SerializeToString(),
        correlation_id=event.correlation_id,
        epoch=event.epoch,
    )
    envelope.occurred_at.FromDatetime(event.occurred_at)
    return envelope.SerializeToString()


def decode_event(data: bytes) -> Event:
    """Parse an envelope and its payload; anything unreadable is an `EventDecodeError`."""
    envelope = envelope_pb2.EventEnvelope()
    try:
        envelope.ParseFromString(data)
    except DecodeError as exc:
        raise EventDecodeError("not an event envelope: protobuf does not parse") from exc
    # Protobuf parses many byte strings (the empty one included) into an empty message.
    if not envelope.event_id or not envelope.type or not envelope.HasField("occurred_at"):
        raise EventDecodeError("not an event envelope: event_id, type or occurred_at missing")
    payload_class = _payload_class(envelope.type, envelope.schema_version)
    try:
        payload = payload_class.FromString(envelope.payload)
    except DecodeError as exc:
        raise EventDecodeError(f"{envelope.type} event {envelope.event_id}: bad payload") from exc
    return Event(
        event_id=envelope.event_id,
        type=envelope.type,
        schema_version=envelope.schema_version,
        aggregate_id=envelope.aggregate_id,
        aggregate_seq=envelope.aggregate_seq,
        global_seq=envelope.global_seq,
        occurred_at=envelope.occurred_at.ToDatetime(tzinfo=UTC),
        origin_site=envelope.origin_site,
        payload=payload,
        correlation_id=envelope.correlation_id,
        epoch=envelope.epoch or 1,
    )


def event_to_json(event: Event) -> dict[str, Any]:
    """The event-store API's JSON form: envelope fields, and the payload in proto3 JSON.

    Proto3 JSON writes 64-bit integers in the payload as strings; `event_from_json` reads them
    back, and so does any other protobuf JSON parser.
    """
    return {
        "event_id": event.event_id,
        "type": event.type,
        "schema_version": event.schema_version,
        "aggregate_id": event.aggregate_id,
        "aggregate_seq": event.aggregate_seq,
        "global_seq": event.global_seq,
        "occurred_at": event.occurred_at.isoformat(),
        "origin_site": event.origin_site,
        "correlation_id": event.correlation_id,
        "epoch": event.epoch,
        "payload": json_format.MessageToDict(
            event.payload,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        ),
    }


def event_from_json(data: Mapping[str, Any]) -> Event:
    """Inverse of `event_to_json`; anything malformed is an `EventDecodeError`."""
    try:
        payload_class = _payload_class(str(data["type"]), int(data["schema_version"]))
        return Event(
            event_id=str(data["event_id"]),
            type=str(data["type"]),
            schema_version=int(data["schema_version"]),
            aggregate_id=str(data["aggregate_id"]),
            aggregate_seq=int(data["aggregate_seq"]),
            global_seq=int(data["global_seq"]),
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            origin_site=str(data["origin_site"]),
            payload=json_format.ParseDict(data["payload"], payload_class()),
            correlation_id=str(data.get("correlation_id", "")),
            epoch=int(data.get("epoch", 1)),
        )
    except EventDecodeError:
        raise
    except (KeyError, TypeError, ValueError, json_format.ParseError) as exc:
        raise EventDecodeError(f"not an event: {exc!r}") from exc
