"""Geo: site secrets, the secondary's read-model state and registry, the primary's view of
replication.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _now(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    # The secret the site signs its Geo tokens with; never leaves the primary's database.
    op.add_column("geo_sites", sa.Column("secret", sa.Text(), server_default="", nullable=False))

    # The latest refs checksum and push time (the primary writes them with each push; a
    # secondary projects them from RepositoryUpdated), and a secondary's read-your-writes floor.
    op.add_column(
        "projects", sa.Column("repository_checksum", sa.Text(), server_default="", nullable=False)
    )
    op.add_column(
        "projects", sa.Column("repository_pushed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "projects",
        sa.Column("geo_min_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )

    op.create_table(
        "geo_event_feed",
        sa.Column("id", sa.SmallInteger(), primary_key=True),
        sa.Column("last_global_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("caught_up_at", sa.DateTime(timezone=True), nullable=True),
        _now("updated_at"),
        sa.CheckConstraint("id = 1", name="geo_event_feed_single_row"),
    )

    op.create_table(
        "replica_registry",
        sa.Column("project_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("state", sa.String(16), server_default="pending", nullable=False),
        sa.Column("synced_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("checksum", sa.Text(), server_default="", nullable=False),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retry_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verification_state", sa.String(16), server_default="pending", nullable=False),
        _now("updated_at"),
    )

    op.create_table(
        "replication_status",
        sa.Column("site", sa.Text(), primary_key=True),
        sa.Column("project_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=True),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        _now("updated_at"),
    )
    op.create_table(
        "replication_lag_samples",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("lag_ms", sa.BigInteger(), nullable=False),
        _now("recorded_at"),
    )
    op.create_index(
        "replication_lag_samples_site", "replication_lag_samples", ["site", "recorded_at"]
    )


def downgrade() -> None:
    for table in (
        "replication_lag_samples",
        "replication_status",
        "replica_registry",
        "geo_event_feed",
    ):
        op.drop_table(table)
    for column in ("geo_min_seq", "repository_pushed_at", "repository_checksum"):
        op.drop_column("projects", column)
    op.drop_column("geo_sites", "secret")
