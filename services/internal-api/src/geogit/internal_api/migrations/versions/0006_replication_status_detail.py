"""Replication status detail for the Geo status page: a failed replica's attempts and next
retry, and when each replica was last synced and verified.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TIMES = ("next_retry_at", "synced_at", "verified_at")


def upgrade() -> None:
    op.add_column(
        "replication_status",
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    for name in _TIMES:
        op.add_column(
            "replication_status", sa.Column(name, sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    for name in ("attempts", *_TIMES):
        op.drop_column("replication_status", name)
