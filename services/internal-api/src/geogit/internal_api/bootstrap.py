"""`geogit-internal-api bootstrap-admin`: the first admin and a token to drive the API with.

Idempotent for the user (created only if missing), never for the token: every run mints a new
one, so a dev stack that lost its token just runs it again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.proto.events.v1 import domain_pb2
from geogit.internal_api.accounts.credentials import SCOPES, hash_password
from geogit.internal_api.accounts.tokens import issue
from geogit.internal_api.db import make_engine, make_sessionmaker
from geogit.internal_api.events.outbox import Outbox, user_aggregate
from geogit.internal_api.events.user_events import user_payload
from geogit.internal_api.geo import site_state
from geogit.internal_api.lookup import user_by_username
from geogit.internal_api.models import User


@dataclass(frozen=True)
class Admin:
    user_id: int
    username: str
    token: str


async def _admin_user(
    session: AsyncSession, outbox: Outbox, username: str, email: str, password: str
) -> User:
    user = await user_by_username(session, username)
    if user is not None:
        if not user.is_admin:
            raise SystemExit(f"user {username!r} exists and is not an admin")
        return user
    user = User(
        username=username,
        email=email,
        name="Administrator",
        password_hash=await hash_password(password),
        is_admin=True,
    )
    session.add(user)
    await session.flush()
    await outbox.append(
        session, user_payload(user, domain_pb2.UserCreated), aggregate_id=user_aggregate(user.id)
    )
    return user


async def bootstrap_admin(
    database_url: str, site_name: str, username: str, email: str, password: str
) -> Admin:
    engine = make_engine(database_url)
    outbox = Outbox(site_name)
    try:
        async with make_sessionmaker(engine)() as session:
            # Only a primary has an admin to bootstrap; a site that was never started is one.
            await site_state.bootstrap(session, "primary", site_name)
            user = await _admin_user(session, outbox, username, email, password)
            _, token = await issue(session, outbox, user, "bootstrap-admin", list(SCOPES))
            await session.commit()
            return Admin(user.id, user.username, token)
    finally:
        await engine.dispose()
