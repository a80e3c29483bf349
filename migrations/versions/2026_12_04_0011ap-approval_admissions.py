"""CleanupApproval objects: what the API server admitted for each, recorded by the webhook.

Revision ID: 0011ap
Revises: 0016 (chained after main's head at rebase)
Create Date: 2026-12-04 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0011ap"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "approval_admissions",
        sa.Column(
            "id", pg.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False
        ),
        sa.Column("object_uid", sa.String(64), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("policy_name", sa.String(253), nullable=False),
        sa.Column("policy_hash", sa.String(64), nullable=False),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("user_groups", pg.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("object_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_admissions")),
        sa.UniqueConstraint("object_uid", name=op.f("uq_approval_admissions_object_uid")),
    )


def downgrade() -> None:
    op.drop_table("approval_admissions")
