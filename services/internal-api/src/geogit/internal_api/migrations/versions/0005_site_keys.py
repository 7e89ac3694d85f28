"""Site identity by key pair (DESIGN §3.4, §10): a site's Ed25519 public key in the registry,
which every site holds, replaces the Geo secret only the primary held.

A site registered before this revision has no public key, and its Geo tokens are refused
("has no public key") until its key is given: `PUT /api/v4/geo/sites/:id` `{"public_key": ...}`.
Downgrading drops the keys; the sites' secrets are gone and must be registered again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "geo_sites", sa.Column("public_key", sa.Text(), server_default="", nullable=False)
    )
    op.drop_column("geo_sites", "secret")


def downgrade() -> None:
    op.add_column("geo_sites", sa.Column("secret", sa.Text(), server_default="", nullable=False))
    op.drop_column("geo_sites", "public_key")
