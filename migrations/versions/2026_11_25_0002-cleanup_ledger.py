"""Cleanup ledger: cleanup runs with their recorded plan, attempt status, exactly-once indexes.

Existing audit rows are kept: their status is derived from success, their action from action_type.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 08:35:15.322045
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cleanup_runs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("execution_method", sa.String(length=20), nullable=False),
        sa.Column("executed_by", sa.UUID(), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="running", nullable=False),
        sa.Column("policies", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("plan", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("summary", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "execution_method IN ('manual', 'automated', 'scheduled')",
            name=op.f("ck_cleanup_runs_execution_method_valid"),
        ),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed')",
            name=op.f("ck_cleanup_runs_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["executed_by"],
            ["users.id"],
            name=op.f("fk_cleanup_runs_executed_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_cleanup_runs_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cleanup_runs")),
    )
    op.create_index(
        "idx_cleanup_runs_org_started",
        "cleanup_runs",
        ["organization_id", sa.literal_column("started_at DESC")],
        unique=False,
    )
    op.add_column("cleanup_actions", sa.Column("run_id", sa.UUID(), nullable=True))
    op.add_column("cleanup_actions", sa.Column("action", sa.String(length=50), nullable=True))
    op.add_column("cleanup_actions", sa.Column("status", sa.String(length=20), nullable=True))
    op.execute(
        "UPDATE cleanup_actions SET action = action_type, "
        "status = CASE WHEN success THEN 'succeeded' ELSE 'failed' END"
    )
    op.alter_column("cleanup_actions", "action", nullable=False)
    op.alter_column("cleanup_actions", "status", nullable=False)
    op.create_check_constraint(
        op.f("ck_cleanup_actions_status_valid"),
        "cleanup_actions",
        "status IN ('started', 'succeeded', 'failed', 'refused')",
    )
    op.add_column("cleanup_actions", sa.Column("policy_name", sa.String(length=255), nullable=True))
    op.add_column("cleanup_actions", sa.Column("decision_reason", sa.Text(), nullable=True))
    op.add_column(
        "cleanup_actions", sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("cleanup_actions", sa.Column("rollback_of", sa.UUID(), nullable=True))
    op.create_index("idx_cleanup_actions_run", "cleanup_actions", ["run_id"], unique=False)
    op.create_index(
        "idx_cleanup_actions_started",
        "cleanup_actions",
        ["waste_item_id"],
        unique=False,
        postgresql_where=sa.text("status = 'started'"),
    )
    op.create_index(
        "uq_cleanup_actions_one_live_attempt",
        "cleanup_actions",
        ["waste_item_id"],
        unique=True,
        postgresql_where=sa.text(
            "NOT dry_run AND NOT rollback_executed AND action_type <> 'rollback' AND status IN ('started', 'succeeded')"
        ),
    )
    op.create_index(
        "uq_cleanup_actions_one_live_rollback",
        "cleanup_actions",
        ["rollback_of"],
        unique=True,
        postgresql_where=sa.text("NOT dry_run AND status IN ('started', 'succeeded')"),
    )
    op.create_foreign_key(
        op.f("fk_cleanup_actions_rollback_of_cleanup_actions"),
        "cleanup_actions",
        "cleanup_actions",
        ["rollback_of"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_foreign_key(
        op.f("fk_cleanup_actions_run_id_cleanup_runs"),
        "cleanup_actions",
        "cleanup_runs",
        ["run_id"],
        ["id"],
        ondelete="SET NULL",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_cleanup_actions_run_id_cleanup_runs"), "cleanup_actions", type_="foreignkey"
    )
    op.drop_constraint(
        op.f("fk_cleanup_actions_rollback_of_cleanup_actions"),
        "cleanup_actions",
        type_="foreignkey",
    )
    op.drop_index(
        "uq_cleanup_actions_one_live_rollback",
        table_name="cleanup_actions",
        postgresql_where=sa.text("NOT dry_run AND status IN ('started', 'succeeded')"),
    )
    op.drop_index(
        "uq_cleanup_actions_one_live_attempt",
        table_name="cleanup_actions",
        postgresql_where=sa.text(
            "NOT dry_run AND NOT rollback_executed AND action_type <> 'rollback' AND status IN ('started', 'succeeded')"
        ),
    )
    op.drop_index(
        "idx_cleanup_actions_started",
        table_name="cleanup_actions",
        postgresql_where=sa.text("status = 'started'"),
    )
    op.drop_index("idx_cleanup_actions_run", table_name="cleanup_actions")
    op.drop_column("cleanup_actions", "rollback_of")
    op.drop_column("cleanup_actions", "completed_at")
    op.drop_column("cleanup_actions", "decision_reason")
    op.drop_column("cleanup_actions", "policy_name")
    op.drop_constraint(op.f("ck_cleanup_actions_status_valid"), "cleanup_actions", type_="check")
    op.drop_column("cleanup_actions", "status")
    op.drop_column("cleanup_actions", "action")
    op.drop_column("cleanup_actions", "run_id")
    op.drop_index("idx_cleanup_runs_org_started", table_name="cleanup_runs")
    op.drop_table("cleanup_runs")
