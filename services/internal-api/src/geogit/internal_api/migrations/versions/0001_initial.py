"""Initial schema: users, tokens, keys, projects, members, protected branches, sites, outbox.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True)


def _created_at(name: str = "created_at") -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def _user_fk(ondelete: str | None = "CASCADE") -> sa.Column[int]:
    return sa.Column(
        "user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete=ondelete), nullable=False
    )


def _project_fk(primary_key: bool = False) -> sa.Column[int]:
    return sa.Column(
        "project_id",
        sa.BigInteger(),
        sa.ForeignKey("projects.id", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
    )


def upgrade() -> None:
    op.create_table(
        "users",
        _id(),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("state", sa.String(16), server_default="active", nullable=False),
        _created_at(),
    )
    op.create_index("users_username_key", "users", [sa.text("lower(username)")], unique=True)
    op.create_index("users_email_key", "users", [sa.text("lower(email)")], unique=True)

    op.create_table(
        "personal_access_tokens",
        _id(),
        _user_fk(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("token_digest", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("expires_at", sa.Date(), nullable=True),
        sa.Column("revoked", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _created_at(),
    )
    op.create_index(
        "ix_personal_access_tokens_user_id", "personal_access_tokens", ["user_id"], unique=False
    )

    op.create_table(
        "ssh_keys",
        _id(),
        _user_fk(),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("key_type", sa.Text(), nullable=False),
        sa.Column("fingerprint_sha256", sa.Text(), nullable=False, unique=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
    )
    op.create_index("ix_ssh_keys_user_id", "ssh_keys", ["user_id"], unique=False)

    op.create_table(
        "projects",
        _id(),
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("default_branch", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("storage_shard", sa.Text(), nullable=False),
        sa.Column("disk_path", sa.Text(), nullable=False, unique=True),
        sa.Column("repository_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        _created_at(),
        _created_at("last_activity_at"),
    )
    op.create_index(
        "projects_full_path_key",
        "projects",
        [sa.text("lower(namespace)"), sa.text("lower(path)")],
        unique=True,
    )
    op.create_index("ix_projects_owner_id", "projects", ["owner_id"], unique=False)

    op.create_table(
        "members",
        _project_fk(primary_key=True),
        sa.Column(
            "user_id",
            sa.BigInteger(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("access_level", sa.SmallInteger(), nullable=False),
        _created_at(),
    )
    op.create_index("ix_members_user_id", "members", ["user_id"], unique=False)

    op.create_table(
        "protected_branches",
        _id(),
        _project_fk(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("push_access_level", sa.SmallInteger(), nullable=False),
        sa.Column(
            "allow_force_push", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        _created_at(),
        sa.UniqueConstraint("project_id", "name"),
    )

    op.create_table(
        "geo_sites",
        _id(),
        sa.Column("name", sa.Text(), nullable=False, unique=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("internal_url", sa.Text(), server_default="", nullable=False),
        sa.Column("primary", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        _created_at(),
    )

    op.create_table(
        "outbox",
        _id(),
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
        sa.UniqueConstraint("stream", "aggregate_id", "aggregate_seq"),
    )
    op.create_index(
        "outbox_unsent", "outbox", ["id"], unique=False, postgresql_where=sa.text("sent_at IS NULL")
    )


def downgrade() -> None:
    for table in (
        "outbox",
        "geo_sites",
        "protected_branches",
        "members",
        "projects",
        "ssh_keys",
        "personal_access_tokens",
        "users",
    ):
        op.drop_table(table)
