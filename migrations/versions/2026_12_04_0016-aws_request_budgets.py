"""One AWS request budget per account, region and service, shared across processes.

Revision ID: 0016
Revises: 0017
Create Date: 2026-12-04 14:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "aws_request_budgets",
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "account_id ~ '^[0-9]{12}$'",
            name=op.f("ck_aws_request_budgets_budget_account_id_12_digits"),
        ),
        sa.CheckConstraint("rate > 0", name=op.f("ck_aws_request_budgets_budget_rate_positive")),
        sa.PrimaryKeyConstraint(
            "account_id", "region", "service", name=op.f("pk_aws_request_budgets")
        ),
    )


def downgrade() -> None:
    op.drop_table("aws_request_budgets")
