import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from geogit.common.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    Event,
    EventDecodeError,
    Topics,
    decode_event,
    encode_event,
    event_from_json,
    event_to_json,
    new_event,
)
from geogit.common.logging import bound_correlation_id
from geogit.common.proto.events.v1 import (
    domain_pb2,
    envelope_pb2,
    replication_pb2,
    repository_pb2,
)

PUSHED_AT = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


PAYLOADS: list[tuple[Message, str]] = [
    (
        repository_pb2.RepositoryUpdated(
            project_id=42,
            seq=7,
            changes=[
                repository_pb2.RefChange(old_oid="0" * 40, new_oid="a" * 40, ref="refs/heads/main"),
                repository_pb2.RefChange(old_oid="b" * 40, new_oid="0" * 40, ref="refs/tags/v1"),
            ],
            checksum="c" * 40,
            pushed_at=_timestamp(PUSHED_AT),
        ),
        "project-42",
    ),
    (
        repository_pb2.RepositoryDeleted(project_id=42, seq=8, disk_path="@hashed/ab/cd"),
        "project-42",
    ),
    (
        domain_pb2.UserCreated(user_id=7, username="ada", email="ada@example.com", state="active"),
        "user-7",
    ),
    (
        domain_pb2.TokenCreated(
            token_id=3, user_id=7, name="ci", scopes=["read_repository", "write_repository"]
        ),
        "user-7",
    ),
    (
        domain_pb2.SiteUpdated(site_id=2, name="eu", url="https://eu.example", enabled=False),
        "site-2",
    ),
    (replication_pb2.ReplicaFailed(site="eu", project_id=42, seq=7, error="timeout"), "eu:42"),
    (
        replication_pb2.ReplicaVerified(site="eu", project_id=42, checksum="c" * 40, ok=True),
        "eu:42",
    ),
]


def _event(payload: Message, aggregate_id: str) -> Event:
    return new_event(
        payload,
        aggregate_id=aggregate_id,
        aggregate_seq=5,
        origin_site="primary",
        global_seq=1234,
        occurred_at=PUSHED_AT,
        correlation_id="req-1",
    )


def test_topics_live_under_their_prefix() -> None:
    assert (Topics().domain, Topics().repository, Topics().replication) == (
        "geogit.domain",
        "geogit.repository",
        "geogit.replication",
    )
    assert Topics(prefix="site-b").replication == "site-b.replication"


def test_consumer_groups_live_under_the_topic_prefix() -> None:
    assert Topics().group("replicator-secondary-1") == "geogit-replicator-secondary-1"
    assert Topics(prefix="stack-2").group("replicator-secondary-1") == (
        "stack-2-replicator-secondary-1"
    )


def test_every_message_of_the_event_modules_is_registered() -> None:
    expected = {
        name: getattr(module, name)
        for module in (domain_pb2, repository_pb2, replication_pb2)
        for name in module.DESCRIPTOR.message_types_by_name
    }
    assert dict(EVENT_TYPES) == expected
    assert EVENT_TYPES["RepositoryUpdated"] is repository_pb2.RepositoryUpdated
    assert "EventEnvelope" not in EVENT_TYPES


def test_new_event_fills_the_envelope() -> None:
    payload = domain_pb2.UserBlocked(user_id=7)
    with bound_correlation_id("req-42"):
        event = new_event(payload, aggregate_id="user-7", aggregate_seq=3, origin_site="primary")

    assert event.type == "UserBlocked"
    assert event.schema_version == SCHEMA_VERSION
    assert uuid.UUID(event.event_id)
    assert event.global_seq == 0
    assert event.correlation_id == "req-42"
    assert event.occurred_at.tzinfo is UTC
    assert abs(datetime.now(UTC) - event.occurred_at) < timedelta(seconds=5)
    assert event.payload is payload


def test_new_event_refuses_messages_that_are_not_events() -> None:
    with pytest.raises(ValueError, match="not a registered event type"):
        new_event(
            envelope_pb2.EventEnvelope(), aggregate_id="x", aggregate_seq=1, origin_site="primary"
        )


def test_occurred_at_must_be_aware_and_is_kept_in_utc() -> None:
    payload = domain_pb2.UserBlocked(user_id=7)
    with pytest.raises(ValueError, match="timezone-aware"):
        new_event(
            payload,
            aggregate_id="user-7",
            aggregate_seq=1,
            origin_site="primary",
            occurred_at=datetime(2026, 1, 1),
        )
    paris = timezone(timedelta(hours=1))
    event = new_event(
        payload,
        aggregate_id="user-7",
        aggregate_seq=1,
        origin_site="primary",
        occurred_at=datetime(2026, 1, 1, 13, tzinfo=paris),
    )
    assert event.occurred_at == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC


@pytest.mark.parametrize(("payload", "aggregate_id"), PAYLOADS, ids=lambda v: type(v).__name__)
def test_binary_round_trip(payload: Message, aggregate_id: str) -> None:
    event = _event(payload, aggregate_id)
    assert decode_event(encode_event(event)) == event


@pytest.mark.parametrize(("payload", "aggregate_id"), PAYLOADS, ids=lambda v: type(v).__name__)
def test_json_round_trip(payload: Message, aggregate_id: str) -> None:
    event = _event(payload, aggregate_id)
    wire = json.loads(json.dumps(event_to_json(event)))
    assert event_from_json(wire) == event


def test_json_form_is_readable() -> None:
    payload, aggregate_id = PAYLOADS[0]
    data = event_to_json(_event(payload, aggregate_id))
    assert data["type"] == "RepositoryUpdated"
    assert data["occurred_at"] == "2026-03-01T12:30:15.123456+00:00"
    assert data["global_seq"] == 1234
    assert data["payload"]["project_id"] == "42"  # proto3 JSON: 64-bit integers are strings
    assert data["payload"]["changes"][0]["ref"] == "refs/heads/main"
    assert data["payload"]["pushed_at"] == "2026-03-01T12:30:15.123456Z"


def _envelope(**fields: object) -> bytes:
    envelope = envelope_pb2.EventEnvelope(
        event_id=str(uuid.uuid4()),
        type="UserBlocked",
        schema_version=SCHEMA_VERSION,
        aggregate_id="user-7",
        payload=domain_pb2.UserBlocked(user_id=7).SerializeToString(),
    )
    envelope.occurred_at.FromDatetime(PUSHED_AT)
    for name, value in fields.items():
        setattr(envelope, name, value)
    return envelope.SerializeToString()


def test_a_well_formed_envelope_decodes() -> None:
    assert decode_event(_envelope()).payload == domain_pb2.UserBlocked(user_id=7)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xff\xff\xff", "protobuf does not parse"),
        (b"", "event_id, type or occurred_at missing"),
        (b"hello, world", "not an event envelope"),
        (_envelope(type="UserExploded"), "unknown event type 'UserExploded'"),
        (_envelope(type="EventEnvelope"), "unknown event type 'EventEnvelope'"),
        (_envelope(schema_version=2), "unsupported event schema version 2"),
        (_envelope(schema_version=0), "unsupported event schema version 0"),
        (_envelope(payload=b"\x0a\xff"), "UserBlocked event .*: bad payload"),
    ],
)
def test_decode_errors(data: bytes, message: str) -> None:
    with pytest.raises(EventDecodeError, match=message):
        decode_event(data)


def _json(**changes: object) -> dict[str, object]:
    data = event_to_json(_event(domain_pb2.UserBlocked(user_id=7), "user-7"))
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({k: v for k, v in _json().items() if k != "aggregate_id"}, "aggregate_id"),
        (_json(type="UserExploded"), "unknown event type"),
        (_json(schema_version=2), "unsupported event schema version 2"),
        (_json(occurred_at="2026-01-01T00:00:00"), "timezone-aware"),
        (_json(occurred_at="yesterday"), "yesterday"),
        (_json(payload={"user_id": "seven"}), "user_id"),
        (_json(payload={"no_such_field": 1}), "no_such_field"),
    ],
)
def test_json_decode_errors(data: dict[str, object], message: str) -> None:
    with pytest.raises(EventDecodeError, match=message):
        event_from_json(data)
