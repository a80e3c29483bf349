"""Accounts scanned on the user's own credentials; protected items out of the waste trend.

- ``aws_accounts.role_arn`` becomes optional: ``cloudsweep scan`` without ``--role-arn`` registers
  the account the default credential chain belongs to, with no role. Such an account is never
  cleaned (cleanups go through a role).
- ``waste_trends`` leaves out items a protection tag excludes (their ``protection-tag`` safety
  check failed), as every other waste figure does: their owners declared them intended.

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

# Kept literal (not imported from the package): a migration must not change when the code does.
_PROTECTED = (
    "(wi.resource_details -> 'safety_checks') @> "
    """'[{"name": "protection-tag", "passed": false}]'::jsonb"""
)


def _waste_trends(protected_filter: str) -> str:
    return f"""
CREATE MATERIALIZED VIEW waste_trends AS
WITH weekly AS (
    SELECT DISTINCT ON (o.waste_item_id, date_trunc('week', o.observed_at, 'UTC'))
        o.waste_item_id,
        o.aws_account_id,
        o.resource_type,
        date_trunc('week', o.observed_at, 'UTC') AS week,
        o.monthly_cost,
        o.confidence_score
    FROM waste_item_observations o
    JOIN scan_results sr ON sr.id = o.scan_result_id
    {protected_filter}
    WHERE sr.status IN ('completed', 'partial')
      AND o.observed_at >= now() - interval '6 months'
    ORDER BY o.waste_item_id, date_trunc('week', o.observed_at, 'UTC'), o.observed_at DESC
)
SELECT
    aa.organization_id,
    w.aws_account_id,
    w.resource_type,
    w.week,
    count(*) AS waste_items_found,
    sum(w.monthly_cost) AS total_monthly_waste_cost,
    avg(w.confidence_score) AS avg_confidence_score
FROM weekly w
JOIN aws_accounts aa ON aa.id = w.aws_account_id
GROUP BY aa.organization_id, w.aws_account_id, w.resource_type, w.week
"""


def _recreate_waste_trends(protected_filter: str) -> None:
    op.execute("DROP MATERIALIZED VIEW IF EXISTS waste_trends")
    op.execute(_waste_trends(protected_filter))
    op.execute(
        "CREATE UNIQUE INDEX idx_waste_trends_unique ON waste_trends (aws_account_id, resource_type, week)"
    )
    op.execute(
        "CREATE INDEX idx_waste_trends_org_account ON waste_trends (organization_id, aws_account_id)"
    )
    op.execute("CREATE INDEX idx_waste_trends_week ON waste_trends (week)")


def upgrade() -> None:
    op.alter_column("aws_accounts", "role_arn", existing_type=sa.String(512), nullable=True)
    _recreate_waste_trends(f"JOIN waste_items wi ON wi.id = o.waste_item_id AND NOT ({_PROTECTED})")


def downgrade() -> None:
    _recreate_waste_trends("")
    # Accounts scanned without a role cannot be kept by the older schema.
    op.execute("DELETE FROM aws_accounts WHERE role_arn IS NULL")
    op.alter_column("aws_accounts", "role_arn", existing_type=sa.String(512), nullable=False)
