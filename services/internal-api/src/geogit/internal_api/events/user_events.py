"""The envelope-free payloads of a user's events, shared by the admin API and bootstrap-admin."""

from __future__ import annotations

from google.protobuf.message import Message

from geogit.common.proto.events.v1 import domain_pb2
from geogit.internal_api.models import User


def user_payload(
    user: User, kind: type[domain_pb2.UserCreated] | type[domain_pb2.UserUpdated]
) -> Message:
    return kind(
        user_id=user.id,
        username=user.username,
        email=user.email,
        name=user.name,
        is_admin=user.is_admin,
        state=user.state,
    )
