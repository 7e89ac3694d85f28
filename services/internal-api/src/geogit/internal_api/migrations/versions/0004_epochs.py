"""Disaster recovery (DESIGN §10): the site's durable role and epoch, the epoch history, the
push reference counters a planned failover drains, the secondary's own report outbox (its
`outbox` becomes a mirror of the primary's event store), and what a rollback kept.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_OUTBOX_COLUMNS = (
    "event_id, stream, type, schema_version, aggregate_id, aggregate_seq, payload,"
    " occurred_at, origin_site, correlation_id, sent_at"
)


def _now(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def _epoch() -> sa.Column[int]:
    return sa.Column("epoch", sa.BigInteger(), server_default=sa.text("1"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "geo_site_state",
        sa.Column("id", sa.SmallInteger(), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("primary_site", sa.Text(), server_default="", nullable=False),
        sa.Column("primary_url", sa.Text(), server_default="", nullable=False),
        sa.Column("maintenance_target", sa.Text(), server_default="", nullable=False),
        sa.Column("maintenance_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fenced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rollback_after_seq", sa.BigInteger(), nullable=True),
        _now("updated_at"),
        sa.CheckConstraint("id = 1", name="geo_site_state_single_row"),
        sa.CheckConstraint("role IN ('primary', 'secondary')", name="geo_site_state_role"),
    )
    op.create_table(
        "geo_epochs",
        sa.Column("epoch", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("primary_site", sa.Text(), nullable=False),
        sa.Column("after_seq", sa.BigInteger(), nullable=False),
        _now("promoted_at"),
    )
    op.create_table(
        "push_reference_counters",
        sa.Column("project_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _now("updated_at"),
    )
    op.create_table(
        "geo_diverged_refs",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("kept_as", sa.Text(), nullable=False),
        sa.Column("oid", sa.Text(), nullable=False),
        _now("recorded_at"),
        sa.UniqueConstraint("project_id", "kept_as"),
    )
    op.add_column("outbox", _epoch())
    op.add_column(
        "replica_registry",
        sa.Column("diverged_epoch", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.create_table(
        "report_outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("event_id", postgresql.UUID(as_uuid=False), nullable=False, unique=True),
        sa.Column("stream", sa.String(16), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("aggregate_id", sa.Text(), nullable=False),
        sa.Column("aggregate_seq", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("origin_site", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.Text(), server_default="", nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        _epoch(),
        sa.UniqueConstraint("stream", "aggregate_id", "aggregate_seq"),
    )
    op.create_index(
        "report_outbox_unsent",
        "report_outbox",
        ["id"],
        unique=False,
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    # A secondary's replication reports move out: its outbox now mirrors the primary's ids.
    op.execute(
        f"INSERT INTO report_outbox ({_OUTBOX_COLUMNS}) SELECT {_OUTBOX_COLUMNS} FROM outbox"
        " WHERE stream = 'replication' ORDER BY id"
    )
    op.execute("DELETE FROM outbox WHERE stream = 'replication'")


def downgrade() -> None:
    op.execute(
        f"INSERT INTO outbox ({_OUTBOX_COLUMNS}) SELECT {_OUTBOX_COLUMNS} FROM report_outbox"
        " ORDER BY id"
    )
    op.drop_table("report_outbox")
    op.drop_column("replica_registry", "diverged_epoch")
    op.drop_column("outbox", "epoch")
    for table in ("geo_diverged_refs", "push_reference_counters", "geo_epochs", "geo_site_state"):
        op.drop_table(table)
