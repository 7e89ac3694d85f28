"""SSH keys: /user/keys (the caller's) and /users/:id/keys (anyone's list; admins add/remove).

Keys are parsed and checked (accounts/ssh_keys.py); the SHA256 fingerprint is unique across
all users, so one key always names one user, as the SSH gateway needs.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.proto.events.v1 import domain_pb2
from geogit.common.text import StorableText
from geogit.internal_api.accounts.ssh_keys import MAX_KEY_LINE, InvalidKeyError, parse_public_key
from geogit.internal_api.deps import AdminUser, CurrentUser, OutboxDep, SessionDep
from geogit.internal_api.errors import field_error, not_found
from geogit.internal_api.events.outbox import Outbox, user_aggregate
from geogit.internal_api.lookup import get_user
from geogit.internal_api.models import SshKey, User, utcnow
from geogit.internal_api.pagination import PageDep
from geogit.internal_api.params import Id

router = APIRouter(prefix="/api/v4", tags=["keys"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: StorableText = Field(min_length=1, max_length=255)
    key: StorableText = Field(min_length=1, max_length=MAX_KEY_LINE)
    expires_at: datetime | None = None


class KeyOut(BaseModel):
    id: int
    title: str
    key: str
    created_at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, key: SshKey) -> KeyOut:
        return cls.model_validate(key, from_attributes=True)


async def _add_key(session: AsyncSession, outbox: Outbox, user: User, body: KeyCreate) -> KeyOut:
    try:
        parsed = parse_public_key(body.key)
    except InvalidKeyError as exc:
        raise field_error("key", str(exc)) from exc
    if body.expires_at is not None and (
        body.expires_at.tzinfo is None or body.expires_at <= utcnow()
    ):
        raise field_error("expires_at", "must be a time in the future with a timezone")
    fingerprint = parsed.fingerprint_sha256
    if await session.scalar(select(SshKey.id).where(SshKey.fingerprint_sha256 == fingerprint)):
        raise field_error("fingerprint_sha256", "has already been taken")
    key = SshKey(
        user_id=user.id,
        title=body.title,
        key=parsed.line,
        key_type=parsed.type,
        fingerprint_sha256=fingerprint,
        expires_at=body.expires_at,
    )
    session.add(key)
    await session.flush()
    event = domain_pb2.KeyAdded(
        key_id=key.id, user_id=user.id, title=key.title, key=key.key, fingerprint=fingerprint
    )
    if key.expires_at is not None:
        event.expires_at.FromDatetime(key.expires_at)
    await outbox.append(session, event, aggregate_id=user_aggregate(user.id))
    await session.commit()
    return KeyOut.of(key)


async def _remove_key(session: AsyncSession, outbox: Outbox, user: User, key_id: int) -> None:
    key = await session.get(SshKey, key_id)
    if key is None or key.user_id != user.id:
        raise not_found("Key")
    await session.delete(key)
    await outbox.append(
        session,
        domain_pb2.KeyRemoved(key_id=key.id, user_id=user.id),
        aggregate_id=user_aggregate(user.id),
    )
    await session.commit()


async def _list_keys(session: AsyncSession, page: PageDep, user_id: int) -> list[KeyOut]:
    statement = select(SshKey).where(SshKey.user_id == user_id).order_by(SshKey.id)
    return [KeyOut.of(key) for key in await page.fetch(session, statement)]


@router.get("/user/keys", response_model=list[KeyOut])
async def my_keys(user: CurrentUser, session: SessionDep, page: PageDep) -> list[KeyOut]:
    return await _list_keys(session, page, user.id)


@router.post("/user/keys", response_model=KeyOut, status_code=201)
async def add_my_key(
    body: KeyCreate, user: CurrentUser, session: SessionDep, outbox: OutboxDep
) -> KeyOut:
    return await _add_key(session, outbox, user, body)


@router.get("/user/keys/{key_id}", response_model=KeyOut)
async def my_key(key_id: Id, user: CurrentUser, session: SessionDep) -> KeyOut:
    key = await session.get(SshKey, key_id)
    if key is None or key.user_id != user.id:
        raise not_found("Key")
    return KeyOut.of(key)


@router.delete("/user/keys/{key_id}", status_code=204)
async def remove_my_key(
    key_id: Id, user: CurrentUser, session: SessionDep, outbox: OutboxDep
) -> Response:
    await _remove_key(session, outbox, user, key_id)
    return Response(status_code=204)


@router.get("/users/{user_id}/keys", response_model=list[KeyOut])
async def user_keys(
    user_id: Id, _: CurrentUser, session: SessionDep, page: PageDep
) -> list[KeyOut]:
    return await _list_keys(session, page, (await get_user(session, user_id)).id)


@router.post("/users/{user_id}/keys", response_model=KeyOut, status_code=201)
async def add_user_key(
    user_id: Id, body: KeyCreate, _: AdminUser, session: SessionDep, outbox: OutboxDep
) -> KeyOut:
    return await _add_key(session, outbox, await get_user(session, user_id), body)


@router.delete("/users/{user_id}/keys/{key_id}", status_code=204)
async def remove_user_key(
    user_id: Id, key_id: Id, _: AdminUser, session: SessionDep, outbox: OutboxDep
) -> Response:
    await _remove_key(session, outbox, await get_user(session, user_id), key_id)
    return Response(status_code=204)
