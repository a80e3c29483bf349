"""Initial schema: the brief's tables, observations partitioned by month, both materialized views.

Deviations from the brief and their reasons: docs/schema.md.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 08:14:24.616335
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Creates any missing monthly partitions of waste_item_observations from first_month on; called here,
# by `cloudsweep db upgrade` / `db retention`, and before every scan stores observations. The advisory
# lock keeps two operator replicas from racing on CREATE TABLE.
ENSURE_PARTITIONS_FUNCTION = """
CREATE FUNCTION cloudsweep_ensure_observation_partitions(first_month date, months integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    month_start date;
    partition_name text;
    created integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('cloudsweep_observation_partitions'));
    FOR i IN 0..months - 1 LOOP
        month_start := (date_trunc('month', first_month) + make_interval(months => i))::date;
        partition_name := format('waste_item_observations_y%sm%s',
                                 to_char(month_start, 'YYYY'), to_char(month_start, 'MM'));
        IF to_regclass(partition_name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF waste_item_observations FOR VALUES FROM (%L) TO (%L)',
                partition_name,
                month_start::timestamp AT TIME ZONE 'UTC',
                (month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC');
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$
"""

SAVINGS_SUMMARY = """
CREATE MATERIALIZED VIEW savings_summary AS
SELECT
    o.id AS organization_id,
    o.name AS organization_name,
    aa.id AS aws_account_id,
    aa.account_name,
    date_trunc('month', ca.executed_at, 'UTC') AS month,
    count(ca.id) AS total_cleanups,
    coalesce(sum(ca.estimated_monthly_savings) FILTER (WHERE ca.success), 0) AS estimated_monthly_savings,
    coalesce(sum(ca.actual_monthly_savings) FILTER (WHERE ca.success), 0) AS actual_monthly_savings,
    count(*) FILTER (WHERE ca.success) AS successful_cleanups,
    count(*) FILTER (WHERE NOT ca.success) AS failed_cleanups
FROM organizations o
JOIN aws_accounts aa ON o.id = aa.organization_id
JOIN waste_items wi ON aa.id = wi.aws_account_id
JOIN cleanup_actions ca ON wi.id = ca.waste_item_id
WHERE ca.executed_at >= now() - interval '12 months'
  AND NOT ca.dry_run
  AND ca.action_type <> 'rollback'
GROUP BY o.id, o.name, aa.id, aa.account_name, date_trunc('month', ca.executed_at, 'UTC')
"""

WASTE_TRENDS = """
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


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("namespace_uid", sa.String(length=64), nullable=True),
        sa.Column("plan_type", sa.String(length=20), server_default="free", nullable=False),
        sa.Column("billing_email", sa.String(length=255), nullable=True),
        sa.Column("monthly_scan_limit", sa.Integer(), server_default=sa.text("5"), nullable=True),
        sa.Column(
            "auto_cleanup_enabled", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "plan_type IN ('free', 'starter', 'pro', 'enterprise')",
            name=op.f("ck_organizations_plan_type_valid"),
        ),
        sa.CheckConstraint(
            "monthly_scan_limit IS NULL OR monthly_scan_limit >= 0",
            name=op.f("ck_organizations_scan_limit_non_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("namespace_uid", name=op.f("uq_organizations_namespace_uid")),
        sa.UniqueConstraint("slug", name=op.f("uq_organizations_slug")),
    )
    op.create_index("idx_organizations_plan_type", "organizations", ["plan_type"], unique=False)
    op.create_table(
        "aws_accounts",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("account_name", sa.String(length=255), nullable=True),
        sa.Column("role_arn", sa.String(length=512), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column(
            "regions",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("ARRAY['us-east-1', 'us-west-2']"),
            nullable=False,
        ),
        sa.Column("scan_enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "auto_cleanup_enabled", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("last_scan_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "connection_status", sa.String(length=20), server_default="pending", nullable=False
        ),
        sa.Column("connection_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "account_id ~ '^[0-9]{12}$'", name=op.f("ck_aws_accounts_account_id_12_digits")
        ),
        sa.CheckConstraint(
            "connection_status IN ('pending', 'connected', 'failed')",
            name=op.f("ck_aws_accounts_connection_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_aws_accounts_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aws_accounts")),
    )
    op.create_index(
        "idx_aws_accounts_org_account",
        "aws_accounts",
        ["organization_id", "account_id"],
        unique=True,
    )
    op.create_index("idx_aws_accounts_scan_enabled", "aws_accounts", ["scan_enabled"], unique=False)
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("role", sa.String(length=20), server_default="member", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("email_verified", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('admin', 'member', 'viewer')", name=op.f("ck_users_role_valid")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_users_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint(
            "organization_id", "email", name=op.f("uq_users_organization_id_email")
        ),
    )
    op.create_index("idx_users_email", "users", ["email"], unique=False)
    op.create_index("idx_users_role", "users", ["role"], unique=False)
    op.create_table(
        "cleanup_policies",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("resource_type", sa.String(length=50), nullable=False),
        sa.Column("rules", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("auto_execute", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "max_monthly_cost",
            sa.Numeric(precision=10, scale=2),
            server_default=sa.text("0.00"),
            nullable=False,
        ),
        sa.Column(
            "require_approval_above",
            sa.Numeric(precision=10, scale=2),
            server_default=sa.text("50.00"),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "max_monthly_cost >= 0 AND require_approval_above >= 0",
            name=op.f("ck_cleanup_policies_thresholds_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_cleanup_policies_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_cleanup_policies_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cleanup_policies")),
        sa.UniqueConstraint(
            "organization_id", "name", name=op.f("uq_cleanup_policies_organization_id_name")
        ),
    )
    op.create_index(
        "idx_cleanup_policies_resource_type", "cleanup_policies", ["resource_type"], unique=False
    )
    op.create_table(
        "notification_settings",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("scan_completed", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "cleanup_completed", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column(
            "high_value_waste_found", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column("weekly_report", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("monthly_report", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("email_enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("slack_webhook_url", sa.String(length=512), nullable=True),
        sa.Column("slack_enabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "min_waste_amount_notify",
            sa.Numeric(precision=10, scale=2),
            server_default=sa.text("10.00"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "min_waste_amount_notify >= 0",
            name=op.f("ck_notification_settings_min_waste_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notification_settings_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_settings")),
    )
    op.create_index(
        "idx_notification_settings_user", "notification_settings", ["user_id"], unique=True
    )
    op.create_table(
        "scan_results",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("aws_account_id", sa.UUID(), nullable=False),
        sa.Column("scan_type", sa.String(length=20), server_default="full", nullable=False),
        sa.Column("status", sa.String(length=20), server_default="running", nullable=False),
        sa.Column("regions_scanned", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column(
            "total_resources_scanned", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "total_waste_items_found", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "total_monthly_waste_cost",
            sa.Numeric(precision=12, scale=2),
            server_default=sa.text("0.00"),
            nullable=False,
        ),
        sa.Column(
            "total_annual_waste_cost",
            sa.Numeric(precision=12, scale=2),
            server_default=sa.text("0.00"),
            nullable=False,
        ),
        sa.Column("scan_duration_seconds", sa.Numeric(precision=10, scale=3), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.CheckConstraint(
            "scan_type IN ('full', 'incremental', 'manual')",
            name=op.f("ck_scan_results_scan_type_valid"),
        ),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'partial', 'failed', 'cancelled')",
            name=op.f("ck_scan_results_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["aws_account_id"],
            ["aws_accounts.id"],
            name=op.f("fk_scan_results_aws_account_id_aws_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_scan_results_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_results")),
    )
    op.create_index(
        "idx_scan_results_account_started",
        "scan_results",
        ["aws_account_id", sa.literal_column("started_at DESC")],
        unique=False,
    )
    op.create_index(
        "idx_scan_results_aws_account", "scan_results", ["aws_account_id"], unique=False
    )
    op.create_index("idx_scan_results_started_at", "scan_results", ["started_at"], unique=False)
    op.create_index("idx_scan_results_status", "scan_results", ["status"], unique=False)
    op.create_table(
        "waste_items",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("scan_result_id", sa.UUID(), nullable=True),
        sa.Column("aws_account_id", sa.UUID(), nullable=False),
        sa.Column("resource_type", sa.String(length=50), nullable=False),
        sa.Column("resource_id", sa.String(length=255), nullable=False),
        sa.Column("resource_arn", sa.String(length=2048), nullable=True),
        sa.Column("region", sa.String(length=20), nullable=False),
        sa.Column("availability_zone", sa.String(length=30), nullable=True),
        sa.Column("monthly_cost", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column("annual_cost", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), server_default="USD", nullable=False),
        sa.Column("confidence_score", sa.Integer(), nullable=False),
        sa.Column("risk_level", sa.String(length=10), nullable=False),
        sa.Column(
            "safety_checks_passed", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("cleanup_status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("cleanup_approved_by", sa.UUID(), nullable=True),
        sa.Column("cleanup_approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleanup_executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleanup_error", sa.Text(), nullable=True),
        sa.Column("resource_details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("cleanup_metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "discovered_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("gone_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "cleanup_status IN ('pending', 'approved', 'rejected', 'cleaning', 'cleaned', 'failed')",
            name=op.f("ck_waste_items_cleanup_status_valid"),
        ),
        sa.CheckConstraint(
            "risk_level IN ('safe', 'low', 'medium', 'high')",
            name=op.f("ck_waste_items_risk_level_valid"),
        ),
        sa.CheckConstraint(
            "confidence_score >= 1 AND confidence_score <= 100",
            name=op.f("ck_waste_items_confidence_score_range"),
        ),
        sa.CheckConstraint(
            "monthly_cost >= 0 AND annual_cost >= 0", name=op.f("ck_waste_items_cost_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["aws_account_id"],
            ["aws_accounts.id"],
            name=op.f("fk_waste_items_aws_account_id_aws_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["cleanup_approved_by"],
            ["users.id"],
            name=op.f("fk_waste_items_cleanup_approved_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["scan_result_id"],
            ["scan_results.id"],
            name=op.f("fk_waste_items_scan_result_id_scan_results"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waste_items")),
    )
    op.create_index("idx_waste_items_aws_account", "waste_items", ["aws_account_id"], unique=False)
    op.create_index(
        "idx_waste_items_cleanup_status", "waste_items", ["cleanup_status"], unique=False
    )
    op.create_index(
        "idx_waste_items_current",
        "waste_items",
        ["aws_account_id", "resource_type"],
        unique=False,
        postgresql_where=sa.text("gone_at IS NULL"),
    )
    op.create_index(
        "idx_waste_items_monthly_cost",
        "waste_items",
        [sa.literal_column("monthly_cost DESC")],
        unique=False,
    )
    op.create_index(
        "idx_waste_items_resource",
        "waste_items",
        ["aws_account_id", "region", "resource_type", "resource_id"],
        unique=True,
    )
    op.create_index("idx_waste_items_resource_type", "waste_items", ["resource_type"], unique=False)
    op.create_index("idx_waste_items_risk_level", "waste_items", ["risk_level"], unique=False)
    op.create_index("idx_waste_items_scan_result", "waste_items", ["scan_result_id"], unique=False)
    op.create_table(
        "cleanup_actions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("waste_item_id", sa.UUID(), nullable=False),
        sa.Column("action_type", sa.String(length=30), nullable=False),
        sa.Column("action_description", sa.Text(), nullable=True),
        sa.Column("dry_run", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("executed_by", sa.UUID(), nullable=True),
        sa.Column(
            "execution_method", sa.String(length=20), server_default="manual", nullable=False
        ),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("aws_response", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "rollback_possible", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("rollback_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "rollback_executed", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("rollback_executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("estimated_monthly_savings", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("actual_monthly_savings", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column(
            "executed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "action_type IN ('delete', 'stop', 'resize', 'detach', 'release', 'archive', 'rollback')",
            name=op.f("ck_cleanup_actions_action_type_valid"),
        ),
        sa.CheckConstraint(
            "execution_method IN ('manual', 'automated', 'scheduled')",
            name=op.f("ck_cleanup_actions_execution_method_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["executed_by"],
            ["users.id"],
            name=op.f("fk_cleanup_actions_executed_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["waste_item_id"],
            ["waste_items.id"],
            name=op.f("fk_cleanup_actions_waste_item_id_waste_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cleanup_actions")),
    )
    op.create_index(
        "idx_cleanup_actions_executed_at", "cleanup_actions", ["executed_at"], unique=False
    )
    op.create_index(
        "idx_cleanup_actions_executed_by", "cleanup_actions", ["executed_by"], unique=False
    )
    op.create_index("idx_cleanup_actions_success", "cleanup_actions", ["success"], unique=False)
    op.create_index(
        "idx_cleanup_actions_waste_item", "cleanup_actions", ["waste_item_id"], unique=False
    )
    op.create_table(
        "waste_item_observations",
        sa.Column("waste_item_id", sa.UUID(), nullable=False),
        sa.Column("scan_result_id", sa.UUID(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("aws_account_id", sa.UUID(), nullable=False),
        sa.Column("resource_type", sa.String(length=50), nullable=False),
        sa.Column("monthly_cost", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column("confidence_score", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["waste_item_id"],
            ["waste_items.id"],
            name=op.f("fk_waste_item_observations_waste_item_id_waste_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "waste_item_id",
            "scan_result_id",
            "observed_at",
            name=op.f("pk_waste_item_observations"),
        ),
        postgresql_partition_by="RANGE (observed_at)",
    )
    op.create_index(
        "idx_waste_item_observations_account_time",
        "waste_item_observations",
        ["aws_account_id", "observed_at"],
        unique=False,
    )

    op.execute(ENSURE_PARTITIONS_FUNCTION)
    # Last month, this month and three ahead; later months are made before each scan stores data.
    op.execute(
        "SELECT cloudsweep_ensure_observation_partitions("
        "(date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month')::date, 5)"
    )
    op.execute(SAVINGS_SUMMARY)
    # Unique indexes make REFRESH MATERIALIZED VIEW CONCURRENTLY possible.
    op.execute(
        "CREATE UNIQUE INDEX idx_savings_summary_unique "
        "ON savings_summary (organization_id, aws_account_id, month)"
    )
    op.execute(WASTE_TRENDS)
    op.execute(
        "CREATE UNIQUE INDEX idx_waste_trends_unique ON waste_trends (aws_account_id, resource_type, week)"
    )
    op.execute(
        "CREATE INDEX idx_waste_trends_org_account ON waste_trends (organization_id, aws_account_id)"
    )
    op.execute("CREATE INDEX idx_waste_trends_week ON waste_trends (week)")


def downgrade() -> None:
    op.execute("DROP MATERIALIZED VIEW IF EXISTS waste_trends")
    op.execute("DROP MATERIALIZED VIEW IF EXISTS savings_summary")
    op.execute("DROP FUNCTION IF EXISTS cloudsweep_ensure_observation_partitions(date, integer)")
    op.drop_index("idx_waste_item_observations_account_time", table_name="waste_item_observations")
    op.drop_table("waste_item_observations")
    op.drop_index("idx_cleanup_actions_waste_item", table_name="cleanup_actions")
    op.drop_index("idx_cleanup_actions_success", table_name="cleanup_actions")
    op.drop_index("idx_cleanup_actions_executed_by", table_name="cleanup_actions")
    op.drop_index("idx_cleanup_actions_executed_at", table_name="cleanup_actions")
    op.drop_table("cleanup_actions")
    op.drop_index("idx_waste_items_scan_result", table_name="waste_items")
    op.drop_index("idx_waste_items_risk_level", table_name="waste_items")
    op.drop_index("idx_waste_items_resource_type", table_name="waste_items")
    op.drop_index("idx_waste_items_resource", table_name="waste_items")
    op.drop_index("idx_waste_items_monthly_cost", table_name="waste_items")
    op.drop_index(
        "idx_waste_items_current",
        table_name="waste_items",
        postgresql_where=sa.text("gone_at IS NULL"),
    )
    op.drop_index("idx_waste_items_cleanup_status", table_name="waste_items")
    op.drop_index("idx_waste_items_aws_account", table_name="waste_items")
    op.drop_table("waste_items")
    op.drop_index("idx_scan_results_status", table_name="scan_results")
    op.drop_index("idx_scan_results_started_at", table_name="scan_results")
    op.drop_index("idx_scan_results_aws_account", table_name="scan_results")
    op.drop_index("idx_scan_results_account_started", table_name="scan_results")
    op.drop_table("scan_results")
    op.drop_index("idx_notification_settings_user", table_name="notification_settings")
    op.drop_table("notification_settings")
    op.drop_index("idx_cleanup_policies_resource_type", table_name="cleanup_policies")
    op.drop_table("cleanup_policies")
    op.drop_index("idx_users_role", table_name="users")
    op.drop_index("idx_users_email", table_name="users")
    op.drop_table("users")
    op.drop_index("idx_aws_accounts_scan_enabled", table_name="aws_accounts")
    op.drop_index("idx_aws_accounts_org_account", table_name="aws_accounts")
    op.drop_table("aws_accounts")
    op.drop_index("idx_organizations_plan_type", table_name="organizations")
    op.drop_table("organizations")
