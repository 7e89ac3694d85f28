"""Repository storage moves (GitLab's project repository storage moves): a project's
repository copied to another shard of the site and switched over, and the push hold that makes
the switch safe.

`projects.push_hold` is "" normally; "queue" while a move prepares its switch (new pushes wait
at their authorization); "read_only" for the switch itself (a push that was authorized before
the hold and reaches pre-receive only now is refused). `push_reference_counters.authorized`
counts pushes from their authorization to their pre-receive, so a move holding pushes waits
for those already routed to the old copy. One move at a time per project: the partial unique
index covers every state but the final ones.

`replica_registry.storage_shard` (a secondary's) is the shard its replica is on: the freshness
rule serves locally only from the project's shard, so a replica its replicator has not yet
moved after a `RepositoryMoved` is never read where it is not. Existing rows get their
project's shard, where every replica was put until now.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("push_hold", sa.Text(), server_default="", nullable=False))
    op.create_check_constraint(
        "projects_push_hold", "projects", "push_hold IN ('', 'queue', 'read_only')"
    )
    op.create_table(
        "repository_storage_moves",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column(
            "project_id",
            sa.BigInteger(),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("source_storage_name", sa.Text(), nullable=False),
        sa.Column("destination_storage_name", sa.Text(), nullable=False),
        sa.Column("error_message", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "state IN ('scheduled', 'started', 'replicated', 'finished', 'failed',"
            " 'cleanup_failed')",
            name="repository_storage_moves_state",
        ),
    )
    op.create_index(
        "repository_storage_moves_project_id", "repository_storage_moves", ["project_id"]
    )
    op.create_index(
        "repository_storage_moves_one_running",
        "repository_storage_moves",
        ["project_id"],
        unique=True,
        postgresql_where=sa.text("state IN ('scheduled', 'started', 'replicated')"),
    )

    op.add_column(
        "push_reference_counters",
        sa.Column("authorized", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "push_reference_counters",
        sa.Column("authorized_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "replica_registry",
        sa.Column("storage_shard", sa.Text(), server_default="", nullable=False),
    )
    op.execute(
        "UPDATE replica_registry SET storage_shard = projects.storage_shard"
        " FROM projects WHERE projects.id = replica_registry.project_id"
    )


def downgrade() -> None:
    op.drop_column("push_reference_counters", "authorized_at")
    op.drop_column("push_reference_counters", "authorized")
    op.drop_column("replica_registry", "storage_shard")
    op.drop_table("repository_storage_moves")
    op.drop_constraint("projects_push_hold", "projects", type_="check")
    op.drop_column("projects", "push_hold")
