"""SQLAlchemy models of every table; Alembic's autogenerate and the store's queries read them.

Only ``cloudsweep.store`` imports this module. Deviations from the product brief's schema are listed,
with reasons, in ``docs/schema.md``; the migration in ``migrations/versions`` is the source of truth
for the database and a test checks the two agree.
"""

from __future__ import annotations

import enum
import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cloudsweep import domain

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Partitions of waste_item_observations are named by the month they hold; retention and autogenerate
# recognise them by this prefix.
OBSERVATION_PARTITION_PREFIX = "waste_item_observations_y"


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: sa.DateTime(timezone=True),
        dict[str, Any]: pg.JSONB,
    }


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(
        pg.UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")
    )


def _created_at() -> Mapped[datetime]:
    return mapped_column(nullable=False, server_default=sa.func.now())


def _updated_at() -> Mapped[datetime]:
    return mapped_column(nullable=False, server_default=sa.func.now(), onupdate=sa.func.now())


def _flag(default: bool) -> Mapped[bool]:
    return mapped_column(nullable=False, server_default=sa.true() if default else sa.false())


def _enum_check(column: str, values: type[enum.StrEnum]) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{member.value}'" for member in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_valid")


def _money(precision: int = 10) -> sa.Numeric[Decimal]:
    return sa.Numeric(precision, 2, asdecimal=True)


class Organization(Base):
    """A tenant: one Kubernetes namespace (``slug`` is the namespace name)."""

    __tablename__ = "organizations"
    __table_args__ = (
        _enum_check("plan_type", domain.PlanType),
        sa.CheckConstraint(
            "monthly_scan_limit IS NULL OR monthly_scan_limit >= 0", name="scan_limit_non_negative"
        ),
        sa.Index("idx_organizations_plan_type", "plan_type"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    slug: Mapped[str] = mapped_column(sa.String(100), nullable=False, unique=True)
    # The namespace's UID: a namespace deleted and recreated under the same name is a new tenant.
    namespace_uid: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    plan_type: Mapped[str] = mapped_column(sa.String(20), nullable=False, server_default="free")
    billing_email: Mapped[str | None] = mapped_column(sa.String(255))
    monthly_scan_limit: Mapped[int | None] = mapped_column(sa.Integer, server_default=sa.text("5"))
    auto_cleanup_enabled: Mapped[bool] = _flag(False)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    deleted_at: Mapped[datetime | None] = mapped_column()


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # Brief: email globally unique. One person approves in several namespaces (tenants), so the
        # key is per organization.
        sa.UniqueConstraint("organization_id", "email"),
        _enum_check("role", domain.UserRole),
        sa.Index("idx_users_email", "email"),
        sa.Index("idx_users_role", "role"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    email: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    # Identities come from Kubernetes or the command line; CloudSweep holds no passwords of its own.
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    first_name: Mapped[str | None] = mapped_column(sa.String(100))
    last_name: Mapped[str | None] = mapped_column(sa.String(100))
    role: Mapped[str] = mapped_column(sa.String(20), nullable=False, server_default="member")
    is_active: Mapped[bool] = _flag(True)
    email_verified: Mapped[bool] = _flag(False)
    last_login_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class AwsAccount(Base):
    __tablename__ = "aws_accounts"
    __table_args__ = (
        sa.CheckConstraint("account_id ~ '^[0-9]{12}$'", name="account_id_12_digits"),
        _enum_check("connection_status", domain.ConnectionStatus),
        sa.Index("idx_aws_accounts_org_account", "organization_id", "account_id", unique=True),
        sa.Index("idx_aws_accounts_scan_enabled", "scan_enabled"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    account_id: Mapped[str] = mapped_column(sa.String(12), nullable=False)
    account_name: Mapped[str | None] = mapped_column(sa.String(255))
    # None: scanned on the user's own credentials (``cloudsweep scan`` without a role); never cleaned.
    role_arn: Mapped[str | None] = mapped_column(sa.String(512), nullable=True)
    external_id: Mapped[str | None] = mapped_column(sa.String(255))
    regions: Mapped[list[str]] = mapped_column(
        pg.ARRAY(sa.Text), nullable=False, server_default=sa.text("ARRAY['us-east-1', 'us-west-2']")
    )
    scan_enabled: Mapped[bool] = _flag(True)
    auto_cleanup_enabled: Mapped[bool] = _flag(False)
    last_scan_at: Mapped[datetime | None] = mapped_column()
    connection_status: Mapped[str] = mapped_column(
        sa.String(20), nullable=False, server_default="pending"
    )
    connection_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    # Set when the AwsAccount object is deleted: scans stop, history stays.
    deleted_at: Mapped[datetime | None] = mapped_column()


class AccountClaim(Base):
    """Which organization holds an AWS account: one row per account ID, so two organizations (or
    two operator replicas registering for them at once) can never both hold it; the primary key
    decides. Released when the holder's AwsAccount is deleted."""

    __tablename__ = "aws_account_claims"
    __table_args__ = (
        sa.CheckConstraint("account_id ~ '^[0-9]{12}$'", name="account_id_12_digits"),
    )

    account_id: Mapped[str] = mapped_column(sa.String(12), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    claimed_at: Mapped[datetime] = _created_at()


class ScanResult(Base):
    __tablename__ = "scan_results"
    __table_args__ = (
        _enum_check("scan_type", domain.ScanType),
        _enum_check("status", domain.ScanStatus),
        sa.Index("idx_scan_results_aws_account", "aws_account_id"),
        sa.Index("idx_scan_results_status", "status"),
        sa.Index("idx_scan_results_started_at", "started_at"),
        sa.Index("idx_scan_results_account_started", "aws_account_id", sa.text("started_at DESC")),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    aws_account_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("aws_accounts.id", ondelete="CASCADE"), nullable=False
    )
    scan_type: Mapped[str] = mapped_column(sa.String(20), nullable=False, server_default="full")
    status: Mapped[str] = mapped_column(sa.String(20), nullable=False, server_default="running")
    regions_scanned: Mapped[list[str] | None] = mapped_column(pg.ARRAY(sa.Text))
    total_resources_scanned: Mapped[int] = mapped_column(
        nullable=False, server_default=sa.text("0")
    )
    total_waste_items_found: Mapped[int] = mapped_column(
        nullable=False, server_default=sa.text("0")
    )
    total_monthly_waste_cost: Mapped[Decimal] = mapped_column(
        _money(12), nullable=False, server_default=sa.text("0.00")
    )
    total_annual_waste_cost: Mapped[Decimal] = mapped_column(
        _money(12), nullable=False, server_default=sa.text("0.00")
    )
    # Brief: INTEGER seconds. Scans of small accounts take under a second; keep milliseconds.
    scan_duration_seconds: Mapped[Decimal | None] = mapped_column(sa.Numeric(10, 3))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    scan_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", pg.JSONB)
    started_at: Mapped[datetime] = mapped_column(nullable=False, server_default=sa.func.now())
    completed_at: Mapped[datetime | None] = mapped_column()
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )


class WasteItem(Base):
    """The current state of one wasted resource; each scan that sees it updates the row."""

    __tablename__ = "waste_items"
    __table_args__ = (
        sa.CheckConstraint(
            "confidence_score >= 1 AND confidence_score <= 100", name="confidence_score_range"
        ),
        sa.CheckConstraint("monthly_cost >= 0 AND annual_cost >= 0", name="cost_non_negative"),
        _enum_check("risk_level", domain.RiskLevel),
        _enum_check("cleanup_status", domain.CleanupStatus),
        sa.Index("idx_waste_items_scan_result", "scan_result_id"),
        sa.Index("idx_waste_items_aws_account", "aws_account_id"),
        sa.Index("idx_waste_items_resource_type", "resource_type"),
        sa.Index("idx_waste_items_cleanup_status", "cleanup_status"),
        sa.Index("idx_waste_items_risk_level", "risk_level"),
        sa.Index("idx_waste_items_monthly_cost", sa.text("monthly_cost DESC")),
        # Brief: (aws_account_id, resource_id, resource_type). Allocation and other IDs are only
        # unique within a region, so the region is part of the key.
        sa.Index(
            "idx_waste_items_resource",
            "aws_account_id",
            "region",
            "resource_type",
            "resource_id",
            unique=True,
        ),
        # What metrics and listings read: the items still out there.
        sa.Index(
            "idx_waste_items_current",
            "aws_account_id",
            "resource_type",
            postgresql_where=sa.text("gone_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    # Brief: NOT NULL ... ON DELETE CASCADE, which made scan retention delete live findings. Here it
    # is the latest scan that saw the item, and dropping old scans leaves the item alone.
    scan_result_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("scan_results.id", ondelete="SET NULL")
    )
    aws_account_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("aws_accounts.id", ondelete="CASCADE"), nullable=False
    )
    resource_type: Mapped[str] = mapped_column(sa.String(50), nullable=False)
    resource_id: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    resource_arn: Mapped[str | None] = mapped_column(sa.String(2048))
    region: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    availability_zone: Mapped[str | None] = mapped_column(sa.String(30))
    monthly_cost: Mapped[Decimal] = mapped_column(_money(10), nullable=False)
    annual_cost: Mapped[Decimal] = mapped_column(_money(12), nullable=False)
    currency: Mapped[str] = mapped_column(sa.String(3), nullable=False, server_default="USD")
    confidence_score: Mapped[int] = mapped_column(nullable=False)
    risk_level: Mapped[str] = mapped_column(sa.String(10), nullable=False)
    safety_checks_passed: Mapped[bool] = _flag(False)
    cleanup_status: Mapped[str] = mapped_column(
        sa.String(20), nullable=False, server_default="pending"
    )
    cleanup_approved_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    cleanup_approved_at: Mapped[datetime | None] = mapped_column()
    cleanup_executed_at: Mapped[datetime | None] = mapped_column()
    cleanup_error: Mapped[str | None] = mapped_column(sa.Text)
    resource_details: Mapped[dict[str, Any]] = mapped_column(pg.JSONB, nullable=False)
    cleanup_metadata: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)
    discovered_at: Mapped[datetime] = mapped_column(nullable=False, server_default=sa.func.now())
    updated_at: Mapped[datetime] = _updated_at()
    # Added: when a scan last saw it, and when a full scan first failed to see it (gone from AWS).
    last_seen_at: Mapped[datetime] = mapped_column(nullable=False, server_default=sa.func.now())
    gone_at: Mapped[datetime | None] = mapped_column()


# Protected items (their protection-tag check failed): shown with their cost, never summed as waste.
# The same predicate in raw SQL (metrics) and as an ORM expression (reports).
_PROTECTED_JSON = json.dumps([{"name": domain.PROTECTION_CHECK, "passed": False}])


def protected_sql(table: str = "") -> str:
    """The predicate in SQL text, on ``table``'s (an alias) or the only table's columns."""
    column = f"{table}.resource_details" if table else "resource_details"
    return f"(({column} -> 'safety_checks') @> '{_PROTECTED_JSON}'::jsonb)"


def is_protected() -> sa.ColumnElement[bool]:
    return WasteItem.resource_details["safety_checks"].op("@>", is_comparison=True)(
        sa.cast(sa.literal(_PROTECTED_JSON), pg.JSONB)
    )


class WasteItemObservation(Base):
    """One row per item per scan that saw it: the history behind ``waste_trends``.

    Range-partitioned by month of ``observed_at``; retention drops whole partitions.
    """

    __tablename__ = "waste_item_observations"
    __table_args__ = (
        sa.Index("idx_waste_item_observations_account_time", "aws_account_id", "observed_at"),
        {"postgresql_partition_by": "RANGE (observed_at)"},
    )

    waste_item_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("waste_items.id", ondelete="CASCADE"), primary_key=True
    )
    # No foreign keys on scan and account: their per-row checks cost 40% of a scan's upsert. Both
    # are reached through waste_items (whose cascade removes observations), and retention drops
    # observations by partition, on the same 12 months as scans.
    scan_result_id: Mapped[uuid.UUID] = mapped_column(pg.UUID(as_uuid=True), primary_key=True)
    observed_at: Mapped[datetime] = mapped_column(primary_key=True)
    aws_account_id: Mapped[uuid.UUID] = mapped_column(pg.UUID(as_uuid=True), nullable=False)
    resource_type: Mapped[str] = mapped_column(sa.String(50), nullable=False)
    monthly_cost: Mapped[Decimal] = mapped_column(_money(10), nullable=False)
    confidence_score: Mapped[int] = mapped_column(nullable=False)


class CleanupRun(Base):
    """One cleanup run: its mode, fixed when it starts, and the plan it recorded before acting."""

    __tablename__ = "cleanup_runs"
    __table_args__ = (
        _enum_check("execution_method", domain.ExecutionMethod),
        _enum_check("status", domain.RunStatus),
        sa.Index("idx_cleanup_runs_org_started", "organization_id", sa.text("started_at DESC")),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    dry_run: Mapped[bool] = mapped_column(nullable=False)
    execution_method: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    executed_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(sa.String(20), nullable=False, server_default="running")
    policies: Mapped[list[dict[str, Any]]] = mapped_column(pg.JSONB, nullable=False)
    # Counts per decision and the IDs of the items the run may act on (bounded by the caps).
    plan: Mapped[dict[str, Any]] = mapped_column(pg.JSONB, nullable=False)
    summary: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)
    started_at: Mapped[datetime] = mapped_column(nullable=False, server_default=sa.func.now())
    completed_at: Mapped[datetime | None] = mapped_column()


class CleanupAction(Base):
    """The audit trail: every cleanup attempt, dry run or real, success or failure.

    A real attempt is inserted with status ``started`` (the intent, committed before any AWS call),
    then finished once with its outcome. The partial unique indexes below are the last line of the
    exactly-once guarantee: however workers race, an item has at most one real attempt that is
    under way or succeeded (and not rolled back), and an action at most one such rollback.
    """

    __tablename__ = "cleanup_actions"
    __table_args__ = (
        _enum_check("action_type", domain.ActionType),
        _enum_check("execution_method", domain.ExecutionMethod),
        _enum_check("status", domain.AttemptStatus),
        sa.Index("idx_cleanup_actions_waste_item", "waste_item_id"),
        sa.Index("idx_cleanup_actions_executed_by", "executed_by"),
        sa.Index("idx_cleanup_actions_success", "success"),
        sa.Index("idx_cleanup_actions_executed_at", "executed_at"),
        sa.Index("idx_cleanup_actions_run", "run_id"),
        sa.Index(
            "uq_cleanup_actions_one_live_attempt",
            "waste_item_id",
            unique=True,
            postgresql_where=sa.text(
                "NOT dry_run AND NOT rollback_executed AND action_type <> 'rollback' AND status IN ('started', 'succeeded')"
            ),
        ),
        sa.Index(
            "uq_cleanup_actions_one_live_rollback",
            "rollback_of",
            unique=True,
            postgresql_where=sa.text("NOT dry_run AND status IN ('started', 'succeeded')"),
        ),
        sa.Index(
            "idx_cleanup_actions_started",
            "waste_item_id",
            postgresql_where=sa.text("status = 'started'"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    waste_item_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("waste_items.id", ondelete="CASCADE"), nullable=False
    )
    action_type: Mapped[str] = mapped_column(sa.String(30), nullable=False)
    action_description: Mapped[str | None] = mapped_column(sa.Text)
    dry_run: Mapped[bool] = _flag(False)
    executed_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    execution_method: Mapped[str] = mapped_column(
        sa.String(20), nullable=False, server_default="manual"
    )
    success: Mapped[bool] = mapped_column(nullable=False)
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    aws_response: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)
    rollback_possible: Mapped[bool] = _flag(False)
    rollback_data: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)
    rollback_executed: Mapped[bool] = _flag(False)
    rollback_executed_at: Mapped[datetime | None] = mapped_column()
    estimated_monthly_savings: Mapped[Decimal | None] = mapped_column(_money(10))
    actual_monthly_savings: Mapped[Decimal | None] = mapped_column(_money(10))
    executed_at: Mapped[datetime] = mapped_column(nullable=False, server_default=sa.func.now())
    created_at: Mapped[datetime] = _created_at()
    # Added for the ledger (migration 0002).
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("cleanup_runs.id", ondelete="SET NULL")
    )
    action: Mapped[str] = mapped_column(sa.String(50), nullable=False)  # registry name
    status: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    policy_name: Mapped[str | None] = mapped_column(sa.String(255))
    decision_reason: Mapped[str | None] = mapped_column(sa.Text)
    completed_at: Mapped[datetime | None] = mapped_column()
    rollback_of: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("cleanup_actions.id", ondelete="SET NULL")
    )
    # Migration 0003: the worker's last sign of life on a started attempt. Another worker takes an
    # attempt over only when its lock is free AND this is older than any call could still be in
    # flight (a database restart frees the lock of a worker that is alive).
    heartbeat_at: Mapped[datetime | None] = mapped_column()


class CleanupPolicy(Base):
    __tablename__ = "cleanup_policies"
    __table_args__ = (
        sa.UniqueConstraint("organization_id", "name"),
        sa.CheckConstraint(
            "max_monthly_cost >= 0 AND require_approval_above >= 0", name="thresholds_non_negative"
        ),
        sa.Index("idx_cleanup_policies_resource_type", "resource_type"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    resource_type: Mapped[str] = mapped_column(sa.String(50), nullable=False)
    rules: Mapped[dict[str, Any]] = mapped_column(pg.JSONB, nullable=False)
    auto_execute: Mapped[bool] = _flag(False)
    max_monthly_cost: Mapped[Decimal] = mapped_column(
        _money(10), nullable=False, server_default=sa.text("0.00")
    )
    require_approval_above: Mapped[Decimal] = mapped_column(
        _money(10), nullable=False, server_default=sa.text("50.00")
    )
    is_active: Mapped[bool] = _flag(True)
    # Brief: NOT NULL. Policies applied from Git (CleanupPolicy objects) have no CloudSweep user.
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class NotificationSettings(Base):
    __tablename__ = "notification_settings"
    __table_args__ = (
        sa.Index("idx_notification_settings_user", "user_id", unique=True),
        sa.CheckConstraint("min_waste_amount_notify >= 0", name="min_waste_non_negative"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    scan_completed: Mapped[bool] = _flag(True)
    cleanup_completed: Mapped[bool] = _flag(True)
    high_value_waste_found: Mapped[bool] = _flag(True)
    weekly_report: Mapped[bool] = _flag(True)
    monthly_report: Mapped[bool] = _flag(True)
    email_enabled: Mapped[bool] = _flag(True)
    slack_webhook_url: Mapped[str | None] = mapped_column(sa.String(512))
    slack_enabled: Mapped[bool] = _flag(False)
    min_waste_amount_notify: Mapped[Decimal] = mapped_column(
        _money(10), nullable=False, server_default=sa.text("10.00")
    )
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class ApprovalAdmission(Base):
    """What the API server admitted for one CleanupApproval object (docs/approvals.md).

    Written by the operator's validating admission webhook, once per object UID (the first
    record wins), before the object exists; the operator honours a CleanupApproval only when
    this record matches it. The approver is the request's user, never a field of the object.
    """

    __tablename__ = "approval_admissions"

    id: Mapped[uuid.UUID] = _uuid_pk()
    object_uid: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)
    namespace: Mapped[str] = mapped_column(sa.String(63), nullable=False)
    name: Mapped[str] = mapped_column(sa.String(253), nullable=False)
    spec_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    policy_name: Mapped[str] = mapped_column(sa.String(253), nullable=False)
    policy_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    username: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    user_groups: Mapped[list[str]] = mapped_column(
        pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")
    )
    object_created_at: Mapped[datetime | None] = mapped_column()
    admitted_at: Mapped[datetime] = mapped_column(nullable=False)
    created_at: Mapped[datetime] = _created_at()


# Materialized views: created by the migration (their SQL lives there only), read through these
# table objects, which Alembic's autogenerate does not see.
views_metadata = sa.MetaData()

savings_summary = sa.Table(
    "savings_summary",
    views_metadata,
    sa.Column("organization_id", pg.UUID(as_uuid=True)),
    sa.Column("organization_name", sa.String),
    sa.Column("aws_account_id", pg.UUID(as_uuid=True)),
    sa.Column("account_name", sa.String),
    sa.Column("month", sa.DateTime(timezone=True)),
    sa.Column("total_cleanups", sa.BigInteger),
    sa.Column("estimated_monthly_savings", sa.Numeric),
    sa.Column("actual_monthly_savings", sa.Numeric),
    sa.Column("successful_cleanups", sa.BigInteger),
    sa.Column("failed_cleanups", sa.BigInteger),
)

waste_trends = sa.Table(
    "waste_trends",
    views_metadata,
    sa.Column("organization_id", pg.UUID(as_uuid=True)),
    sa.Column("aws_account_id", pg.UUID(as_uuid=True)),
    sa.Column("resource_type", sa.String),
    sa.Column("week", sa.DateTime(timezone=True)),
    sa.Column("waste_items_found", sa.BigInteger),
    sa.Column("total_monthly_waste_cost", sa.Numeric),
    sa.Column("avg_confidence_score", sa.Numeric),
)


class AwsRequestBudget(Base):
    """A token bucket per AWS account, region and service: the request rate everyone shares.

    Not an organization's row: AWS throttles per account, and one account belongs to one
    organization. ``rate`` moves (halved on throttling, regained over a minute); ``tokens`` refill
    at ``rate`` per second since ``updated_at``. Written only by ``store.rate_budget``.
    """

    __tablename__ = "aws_request_budgets"
    __table_args__ = (
        sa.CheckConstraint("account_id ~ '^[0-9]{12}$'", name="budget_account_id_12_digits"),
        sa.CheckConstraint("rate > 0", name="budget_rate_positive"),
    )

    account_id: Mapped[str] = mapped_column(sa.String(12), primary_key=True)
    region: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    service: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(sa.Float, nullable=False)
    rate: Mapped[float] = mapped_column(sa.Float, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(nullable=False)


MATERIALIZED_VIEWS = ("savings_summary", "waste_trends")
