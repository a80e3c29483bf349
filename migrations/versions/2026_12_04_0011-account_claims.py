"""One AWS account, one organization: ``aws_account_claims`` holds the organization that owns each
account ID; its primary key makes the claim atomic across operator replicas.

Existing registrations are claimed by the organization that registered the account first (the
oldest live row); the others are refused at their next reconcile.

Revision ID: 0011
Revises: 0016 (main's head when this branch was rebased; originally 0003)
Create Date: 2026-12-04 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0011"
down_revision: str | None = "0011ap"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "aws_account_claims",
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("organization_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column(
            "claimed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "account_id ~ '^[0-9]{12}$'", name="ck_aws_account_claims_account_id_12_digits"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_aws_account_claims_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name="pk_aws_account_claims"),
    )
    op.create_index(
        "ix_aws_account_claims_organization_id", "aws_account_claims", ["organization_id"]
    )
    op.execute(
        """
        INSERT INTO aws_account_claims (account_id, organization_id, claimed_at)
        SELECT DISTINCT ON (account_id) account_id, organization_id, created_at
        FROM aws_accounts
        WHERE deleted_at IS NULL
        ORDER BY account_id, created_at, id
        """
    )


def downgrade() -> None:
    op.drop_index("ix_aws_account_claims_organization_id", table_name="aws_account_claims")
    op.drop_table("aws_account_claims")
