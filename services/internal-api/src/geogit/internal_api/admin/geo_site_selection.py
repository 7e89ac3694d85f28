"""A Geo site's selective sync in /api/v4/geo/sites (GitLab's fields): which projects it holds.

`selective_sync_type` is "namespaces", "shards", or empty/null for everything; the lists say
what the type selects (geo/selective_sync.py). They are checked here, where the admin can be
told precisely what is wrong: a namespace is a user's id (every namespace is personal), a
shard one of this deployment's configured storages. A field left out of a PUT stays as it is.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.text import StorableText
from geogit.internal_api.config import InternalApiSettings
from geogit.internal_api.errors import field_error
from geogit.internal_api.geo.selective_sync import TYPES
from geogit.internal_api.models import GeoSite, User
from geogit.internal_api.params import MAX_ID

MAX_ITEMS = 1000
NamespaceId = Annotated[int, Field(ge=1, le=MAX_ID)]
ShardName = Annotated[StorableText, Field(min_length=1, max_length=255)]


class SelectionIn(BaseModel):
    selective_sync_type: StorableText | None = Field(None, max_length=32)
    selective_sync_namespace_ids: list[NamespaceId] | None = Field(None, max_length=MAX_ITEMS)
    selective_sync_shards: list[ShardName] | None = Field(None, max_length=MAX_ITEMS)


def _type(value: str | None) -> str:
    kind = value or ""
    if kind not in TYPES:
        raise field_error(
            "selective_sync_type",
            f"'{kind}' is not a selective sync type: use 'namespaces', 'shards',"
            " or empty for everything",
        )
    return kind


async def _namespace_ids(session: AsyncSession, ids: list[int]) -> list[int]:
    wanted = sorted(set(ids))
    found = set(await session.scalars(select(User.id).where(User.id.in_(wanted))))
    if missing := [str(namespace) for namespace in wanted if namespace not in found]:
        raise field_error(
            "selective_sync_namespace_ids", f"no namespace with id {', '.join(missing)}"
        )
    return wanted


def _shards(settings: InternalApiSettings, shards: list[str]) -> list[str]:
    wanted = sorted(set(shards))
    if unknown := [shard for shard in wanted if shard not in settings.storages]:
        configured = ", ".join(sorted(settings.storages))
        raise field_error(
            "selective_sync_shards",
            f"no storage shard named {', '.join(unknown)} (configured: {configured})",
        )
    return wanted


async def apply_selection(
    session: AsyncSession, settings: InternalApiSettings, site: GeoSite, body: SelectionIn
) -> None:
    """Checks the selection fields the body gave and sets them on the site."""
    given = body.model_fields_set
    if "selective_sync_type" in given:
        site.selective_sync_type = _type(body.selective_sync_type)
    if "selective_sync_namespace_ids" in given:
        ids = body.selective_sync_namespace_ids or []
        site.selective_sync_namespace_ids = await _namespace_ids(session, ids)
    if "selective_sync_shards" in given:
        site.selective_sync_shards = _shards(settings, body.selective_sync_shards or [])
