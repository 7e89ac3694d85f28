"""Issuing a personal access token: the row, and its event in the same transaction."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.proto.events.v1 import domain_pb2
from geogit.internal_api.accounts.credentials import new_token, token_digest
from geogit.internal_api.events.outbox import Outbox, user_aggregate
from geogit.internal_api.models import PersonalAccessToken, User


async def issue(
    session: AsyncSession,
    outbox: Outbox,
    user: User,
    name: str,
    scopes: list[str],
    expires_at: date | None = None,
) -> tuple[PersonalAccessToken, str]:
    """Create a token for `user` in the caller's transaction; also used by bootstrap-admin."""
    token = new_token()
    row = PersonalAccessToken(
        user_id=user.id,
        name=name,
        token_digest=token_digest(token),
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    event = domain_pb2.TokenCreated(
        token_id=row.id,
        user_id=user.id,
        name=name,
        scopes=row.scopes,
        token_digest=row.token_digest,
    )
    if expires_at is not None:
        event.expires_at.FromDatetime(datetime.combine(expires_at, datetime.min.time(), UTC))
    await outbox.append(session, event, aggregate_id=user_aggregate(user.id))
    return row, token
