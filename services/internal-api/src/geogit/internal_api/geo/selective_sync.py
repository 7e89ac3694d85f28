"""Selective sync (GitLab Geo's): which projects a site replicates and serves locally.

One SQL condition, so the replicator's listing, its per-project lookup and the freshness rule
cannot disagree. The site's own row in `geo_sites` (on a secondary, from SiteAdded/SiteUpdated)
holds the selection: `namespaces` selects the projects whose owner — every namespace is a
user's personal namespace, and they do not nest — is listed; `shards` those on a listed
storage shard. A site with no row, or with type "", holds everything.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, not_, or_
from sqlalchemy.orm import QueryableAttribute

from geogit.internal_api.models import GeoSite, Project

NAMESPACES, SHARDS = "namespaces", "shards"
TYPES = ("", NAMESPACES, SHARDS)


def selected(site_name: str | QueryableAttribute[str]) -> ColumnElement[bool]:
    """True for the projects `site_name` holds: no row of the site excludes the project.
    `site_name` may be a column (each row's site, as in the status page's problem table)."""
    excluded = or_(
        and_(
            GeoSite.selective_sync_type == NAMESPACES,
            not_(Project.owner_id == GeoSite.selective_sync_namespace_ids.any_()),
        ),
        and_(
            GeoSite.selective_sync_type == SHARDS,
            not_(Project.storage_shard == GeoSite.selective_sync_shards.any_()),
        ),
    )
    return ~exists().where(GeoSite.name == site_name, excluded)
