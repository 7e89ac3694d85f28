"""Users: GET /user, GET/POST /users, GET/DELETE /users/:id, POST /users/:id/(un)block."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select

from geogit.common.proto.events.v1 import domain_pb2
from geogit.common.text import StorableText
from geogit.internal_api.accounts.credentials import hash_password
from geogit.internal_api.accounts.usernames import check_username
from geogit.internal_api.deps import AdminUser, CurrentUser, OutboxDep, SessionDep, SettingsDep
from geogit.internal_api.errors import conflict, field_error, forbidden
from geogit.internal_api.events.outbox import user_aggregate
from geogit.internal_api.events.user_events import user_payload
from geogit.internal_api.lookup import get_user, user_by_username
from geogit.internal_api.models import Project, User
from geogit.internal_api.pagination import PageDep
from geogit.internal_api.params import Id

router = APIRouter(prefix="/api/v4", tags=["users"])


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: StorableText = Field(min_length=1, max_length=255)
    email: StorableText = Field(min_length=3, max_length=255, pattern=r"^[^@\s]+@[^@\s]+$")
    name: StorableText = Field(min_length=1, max_length=255)
    password: StorableText = Field(min_length=8, max_length=128)
    admin: bool = False
    # Accepted because GitLab tooling sends it; geogit sends no confirmation mails.
    skip_confirmation: bool = True


class UserOut(BaseModel):
    id: int
    username: str
    name: str
    state: str
    web_url: str
    created_at: datetime
    # Shown to admins and to the user themselves only, as on GitLab.
    email: str | None = None
    is_admin: bool | None = None

    @classmethod
    def of(cls, user: User, external_url: str, *, private: bool) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            name=user.name,
            state=user.state,
            web_url=f"{external_url.rstrip('/')}/{user.username}",
            created_at=user.created_at,
            email=user.email if private else None,
            is_admin=user.is_admin if private else None,
        )


@router.get("/user", response_model=UserOut, response_model_exclude_none=True)
async def whoami(user: CurrentUser, settings: SettingsDep) -> UserOut:
    return UserOut.of(user, settings.external_url, private=True)


@router.get("/users", response_model=list[UserOut], response_model_exclude_none=True)
async def list_users(
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
    username: Annotated[StorableText | None, Query(max_length=255)] = None,
    search: Annotated[StorableText | None, Query(max_length=255)] = None,
) -> list[UserOut]:
    statement = select(User).order_by(User.id)
    if username is not None:
        statement = statement.where(func.lower(User.username) == username.lower())
    if search:
        # autoescape: `%` and `_` in the search match themselves, not every user.
        needle = search.lower()
        statement = statement.where(
            or_(
                func.lower(User.username).contains(needle, autoescape=True),
                func.lower(User.name).contains(needle, autoescape=True),
            )
        )
    users = await page.fetch(session, statement)
    return [UserOut.of(u, settings.external_url, private=user.is_admin) for u in users]


@router.get("/users/{user_id}", response_model=UserOut, response_model_exclude_none=True)
async def show_user(
    user_id: Id, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> UserOut:
    found = await get_user(session, user_id)
    private = user.is_admin or user.id == found.id
    return UserOut.of(found, settings.external_url, private=private)


def _check_username(username: str) -> None:
    try:
        check_username(username)
    except ValueError as exc:
        raise field_error("username", str(exc)) from exc


@router.post("/users", response_model=UserOut, status_code=201, response_model_exclude_none=True)
async def create_user(
    body: UserCreate, _: AdminUser, session: SessionDep, outbox: OutboxDep, settings: SettingsDep
) -> UserOut:
    _check_username(body.username)
    if await user_by_username(session, body.username):
        raise conflict("Username has already been taken")
    if await session.scalar(select(User.id).where(func.lower(User.email) == body.email.lower())):
        raise conflict("Email has already been taken")
    user = User(
        username=body.username,
        email=body.email,
        name=body.name,
        password_hash=await hash_password(body.password),
        is_admin=body.admin,
    )
    session.add(user)
    await session.flush()
    await outbox.append(
        session, user_payload(user, domain_pb2.UserCreated), aggregate_id=user_aggregate(user.id)
    )
    await session.commit()
    return UserOut.of(user, settings.external_url, private=True)


@router.post("/users/{user_id}/block", status_code=201)
async def block_user(user_id: Id, admin: AdminUser, session: SessionDep, outbox: OutboxDep) -> bool:
    user = await get_user(session, user_id)
    if user.id == admin.id:
        raise forbidden("you cannot block yourself")
    if user.state != "blocked":
        user.state = "blocked"
        await outbox.append(
            session, domain_pb2.UserBlocked(user_id=user.id), aggregate_id=user_aggregate(user.id)
        )
        await session.commit()
    return True


@router.post("/users/{user_id}/unblock", status_code=201)
async def unblock_user(user_id: Id, _: AdminUser, session: SessionDep, outbox: OutboxDep) -> bool:
    user = await get_user(session, user_id)
    if user.state != "active":
        user.state = "active"
        await outbox.append(
            session,
            user_payload(user, domain_pb2.UserUpdated),
            aggregate_id=user_aggregate(user.id),
        )
        await session.commit()
    return True


@router.delete("/users/{user_id}", status_code=204)
async def delete_user(
    user_id: Id, admin: AdminUser, session: SessionDep, outbox: OutboxDep
) -> Response:
    """Tokens, keys and memberships go with the user; their projects must be deleted first."""
    user = await get_user(session, user_id)
    if user.id == admin.id:
        raise forbidden("you cannot delete yourself")
    if await session.scalar(select(Project.id).where(Project.owner_id == user.id).limit(1)):
        raise conflict("409 Conflict - the user still owns projects; delete them first")
    await session.delete(user)
    await outbox.append(
        session, domain_pb2.UserDeleted(user_id=user.id), aggregate_id=user_aggregate(user.id)
    )
    await session.commit()
    return Response(status_code=204)
