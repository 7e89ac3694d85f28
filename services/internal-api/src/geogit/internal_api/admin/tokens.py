"""Personal access tokens: created by an admin for a user, listed and revoked by their owner.

POST /users/:id/personal_access_tokens answers the token once; only its digest is stored.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.proto.events.v1 import domain_pb2
from geogit.common.text import StorableText
from geogit.internal_api.accounts.credentials import today
from geogit.internal_api.accounts.tokens import issue
from geogit.internal_api.deps import AdminUser, CurrentUser, OutboxDep, SessionDep
from geogit.internal_api.errors import field_error, not_found
from geogit.internal_api.events.outbox import user_aggregate
from geogit.internal_api.lookup import get_user
from geogit.internal_api.models import PersonalAccessToken, User
from geogit.internal_api.pagination import PageDep
from geogit.internal_api.params import Id

router = APIRouter(prefix="/api/v4", tags=["personal access tokens"])

Scope = Literal["api", "read_repository", "write_repository"]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StorableText = Field(min_length=1, max_length=255)
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    expires_at: date | None = None
    description: StorableText = Field("", max_length=255)


class TokenOut(BaseModel):
    id: int
    name: str
    revoked: bool
    created_at: datetime
    scopes: list[str]
    user_id: int
    active: bool
    expires_at: date | None


class NewTokenOut(TokenOut):
    token: str


def _out(row: PersonalAccessToken) -> TokenOut:
    return TokenOut(
        id=row.id,
        name=row.name,
        revoked=row.revoked,
        created_at=row.created_at,
        scopes=list(row.scopes),
        user_id=row.user_id,
        active=row.active_on(today()),
        expires_at=row.expires_at,
    )


@router.post("/users/{user_id}/personal_access_tokens", response_model=NewTokenOut, status_code=201)
async def create_token(
    user_id: Id, body: TokenCreate, _: AdminUser, session: SessionDep, outbox: OutboxDep
) -> NewTokenOut:
    user = await get_user(session, user_id)
    if body.expires_at is not None and body.expires_at <= today():
        raise field_error("expires_at", "must be in the future")
    row, token = await issue(session, outbox, user, body.name, list(body.scopes), body.expires_at)
    await session.commit()
    return NewTokenOut(**_out(row).model_dump(), token=token)


@router.get("/personal_access_tokens", response_model=list[TokenOut])
async def list_tokens(
    user: CurrentUser,
    session: SessionDep,
    page: PageDep,
    user_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    revoked: bool | None = None,
) -> list[TokenOut]:
    """Admins see everyone's tokens (or one user's with `user_id`); others their own."""
    owner = user_id if user.is_admin else user.id
    statement = select(PersonalAccessToken).order_by(PersonalAccessToken.id)
    if owner is not None:
        statement = statement.where(PersonalAccessToken.user_id == owner)
    if revoked is not None:
        statement = statement.where(PersonalAccessToken.revoked == revoked)
    return [_out(row) for row in await page.fetch(session, statement)]


async def _own_token(session: AsyncSession, token_id: int, user: User) -> PersonalAccessToken:
    row = await session.get(PersonalAccessToken, token_id)
    if row is None or not (user.is_admin or row.user_id == user.id):
        raise not_found("Personal Access Token")
    return row


@router.get("/personal_access_tokens/{token_id}", response_model=TokenOut)
async def show_token(token_id: Id, user: CurrentUser, session: SessionDep) -> TokenOut:
    return _out(await _own_token(session, token_id, user))


@router.delete("/personal_access_tokens/{token_id}", status_code=204)
async def revoke_token(
    token_id: Id, user: CurrentUser, session: SessionDep, outbox: OutboxDep
) -> Response:
    row = await _own_token(session, token_id, user)
    if not row.revoked:
        row.revoked = True
        await outbox.append(
            session,
            domain_pb2.TokenRevoked(token_id=row.id, user_id=row.user_id),
            aggregate_id=user_aggregate(row.user_id),
        )
        await session.commit()
    return Response(status_code=204)
