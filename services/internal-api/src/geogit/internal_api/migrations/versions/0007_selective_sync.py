"""Selective sync (GitLab Geo's): a secondary may be limited to namespaces or storage shards.

`selective_sync_type` is "" for everything; the lists are what the type selects. Every site's
copy of `geo_sites` holds them (SiteAdded/SiteUpdated carry them), so a secondary's own row
tells its replicator and its freshness rule what it holds.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "geo_sites",
        sa.Column("selective_sync_type", sa.Text(), server_default="", nullable=False),
    )
    op.add_column(
        "geo_sites",
        sa.Column(
            "selective_sync_namespace_ids",
            postgresql.ARRAY(sa.BigInteger()),
            server_default="{}",
            nullable=False,
        ),
    )
    op.add_column(
        "geo_sites",
        sa.Column(
            "selective_sync_shards",
            postgresql.ARRAY(sa.Text()),
            server_default="{}",
            nullable=False,
        ),
    )
    op.create_check_constraint(
        "geo_sites_selective_sync_type",
        "geo_sites",
        "selective_sync_type IN ('', 'namespaces', 'shards')",
    )


def downgrade() -> None:
    op.drop_constraint("geo_sites_selective_sync_type", "geo_sites", type_="check")
    for name in ("selective_sync_shards", "selective_sync_namespace_ids", "selective_sync_type"):
        op.drop_column("geo_sites", name)
