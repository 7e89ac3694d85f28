"""A replicator's reports go into its site's report outbox (POST /internal/geo/reports), in
order, each with its own sequence; a report that is not what it says is refused and writes
nothing."""

from __future__ import annotations

import base64
import random

import pytest
from internal_api_support import Api, outbox_count, outbox_rows

from geogit.common.proto.events.v1 import replication_pb2
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.models import ReportOutboxEvent


def _encoded(message: replication_pb2.ReplicaSynced | replication_pb2.ReplicaVerified) -> str:
    return base64.b64encode(message.SerializeToString()).decode()


async def test_reports_are_appended_in_order_to_the_replication_stream(
    api: Api, db: SessionMaker
) -> None:
    project_id = random.randint(10**6, 10**9)
    synced = replication_pb2.ReplicaSynced(site="primary", project_id=project_id, seq=3)
    verified = replication_pb2.ReplicaVerified(site="primary", project_id=project_id, ok=True)
    for report_type, payload in (("ReplicaSynced", synced), ("ReplicaVerified", verified)):
        body = {"type": report_type, "project_id": project_id, "payload": _encoded(payload)}
        response = await api.internal("geo/reports", body)
        assert response.status_code == 204, response.text
    rows = await outbox_rows(db, f"primary:{project_id}", ReportOutboxEvent)
    assert [(row.stream, row.type, row.aggregate_seq) for row in rows] == [
        ("replication", "ReplicaSynced", 1),
        ("replication", "ReplicaVerified", 2),
    ]
    assert replication_pb2.ReplicaSynced.FromString(rows[0].payload) == synced
    assert all(row.sent_at is None for row in rows)


BAD_REPORTS = [
    {"type": "ReplicaSynced", "project_id": 1, "payload": "not base64!"},
    {"type": "ReplicaSynced", "project_id": 1, "payload": "\u0013\u0081 "},
    {"type": "ReplicaSynced", "project_id": 1, "payload": "QQ"},
    {"type": "ReplicaSynced", "project_id": 1, "payload": base64.b64encode(b"\xff\xff").decode()},
    {"type": "UserCreated", "project_id": 1, "payload": ""},
    {"type": "ReplicaSynced", "project_id": 0, "payload": ""},
    {"type": "ReplicaSynced", "project_id": 1, "payload": "", "extra": 1},
]


@pytest.mark.parametrize("body", BAD_REPORTS)
async def test_invalid_reports_are_refused_and_write_nothing(
    api: Api, db: SessionMaker, body: dict[str, object]
) -> None:
    before = await outbox_count(db, ReportOutboxEvent)
    response = await api.internal("geo/reports", body)
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith("400 Bad request - ")
    assert await outbox_count(db, ReportOutboxEvent) == before
