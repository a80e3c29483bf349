"""Cleanup attempts get a heartbeat: takeover waits until no call of the old worker can be in flight.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 09:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "cleanup_actions", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("cleanup_actions", "heartbeat_at")
