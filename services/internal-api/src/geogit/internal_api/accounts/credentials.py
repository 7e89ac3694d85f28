"""Passwords and personal access tokens: how they are made, stored and checked.

Passwords are stored as argon2id hashes. Tokens are random and high-entropy, so a plain
SHA-256 digest is enough to store them: nobody can brute-force 160 random bits, and a digest
lookup needs no per-row KDF. The token itself is returned once, at creation.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import UTC, date, datetime

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.internal_api.models import PersonalAccessToken, User

TOKEN_PREFIX = "glpat-"
SCOPES = ("api", "read_repository", "write_repository")
# What a token may do with repositories over Git, by scope (GitLab's abilities).
READ_SCOPES = frozenset(SCOPES)
WRITE_SCOPES = frozenset({"api", "write_repository"})

# OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane): a server hashes for many users at
# once, so memory per hash stays bounded; argon2-cffi's default asks for 64 MiB and 4 lanes.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


async def hash_password(password: str) -> str:
    # argon2 takes tens of milliseconds of CPU on purpose: keep it off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(20)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def today() -> date:
    return datetime.now(UTC).date()


async def active_token(
    session: AsyncSession, token: str
) -> tuple[PersonalAccessToken, User] | None:
    """The token's row and its user, if the token exists, is not revoked and not expired."""
    row = (
        await session.execute(
            select(PersonalAccessToken, User)
            .join(User, User.id == PersonalAccessToken.user_id)
            .where(PersonalAccessToken.token_digest == token_digest(token))
        )
    ).first()
    if row is None or not row[0].active_on(today()):
        return None
    return row[0], row[1]
