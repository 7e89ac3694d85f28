"""GET /api/v4/internal/authorized_keys?key=<base64 blob>: whose key is this? (SSH gateway)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from geogit.common.internal_api import AuthorizedKey
from geogit.common.text import StorableText
from geogit.internal_api.accounts.ssh_keys import InvalidKeyError, decode_blob, fingerprint_of
from geogit.internal_api.deps import InternalCaller, SessionDep
from geogit.internal_api.errors import bad_request, not_found
from geogit.internal_api.models import SshKey, User

router = APIRouter(prefix="/api/v4/internal", tags=["internal"], dependencies=[InternalCaller])


@router.get("/authorized_keys", response_model=AuthorizedKey, responses={404: {}})
async def authorized_keys(
    key: Annotated[StorableText, Query(max_length=16 * 1024)], session: SessionDep
) -> AuthorizedKey:
    try:
        fingerprint = fingerprint_of(decode_blob(key.strip()))
    except InvalidKeyError as exc:
        raise bad_request("400 Bad request - key is not base64") from exc
    row = (
        await session.execute(
            select(SshKey, User)
            .join(User, User.id == SshKey.user_id)
            .where(SshKey.fingerprint_sha256 == fingerprint)
        )
    ).first()
    if row is None:
        raise not_found()
    ssh_key, user = row
    return AuthorizedKey(id=ssh_key.id, key=ssh_key.key, user_id=user.id, username=user.username)
