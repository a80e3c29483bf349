"""An account may be scanned on the user's own credentials: ``role_arn`` becomes optional.

``cloudsweep scan`` without ``--role-arn`` registers the account the default credential chain
belongs to, with no role. Such an account is never cleaned: cleanups go through a role.

Revision ID: 0017
Revises: 0003
Create Date: 2026-12-04 14:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("aws_accounts", "role_arn", existing_type=sa.String(512), nullable=True)


def downgrade() -> None:
    # Accounts scanned without a role cannot be kept by the older schema.
    op.execute("DELETE FROM aws_accounts WHERE role_arn IS NULL")
    op.alter_column("aws_accounts", "role_arn", existing_type=sa.String(512), nullable=False)
