"""A secondary's read-your-writes floors for projects its read model does not have yet.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "geo_push_floors",
        sa.Column("project_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("min_seq", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("geo_push_floors")
