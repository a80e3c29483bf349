"""The migrations build exactly what the models describe, and undo it."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cloudsweep.store import migrate, models
from cloudsweep.store.engine import get_engine


def _include(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    if type_ == "table" and name is not None:
        return not (
            name.startswith(models.OBSERVATION_PARTITION_PREFIX)
            or name in models.MATERIALIZED_VIEWS
        )
    return True


def test_upgrade_then_models_and_schema_agree(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url)
    with get_engine(empty_database_url).connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"include_object": _include, "compare_type": True, "compare_server_default": True},
        )
        diff = compare_metadata(context, models.Base.metadata)
    assert diff == []


def test_upgrade_downgrade_upgrade_on_empty_database(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url)
    assert migrate.current_revision(empty_database_url) == migrate.head_revision()
    migrate.downgrade(empty_database_url, "base")
    with get_engine(empty_database_url).connect() as conn:
        leftovers = (
            conn.execute(
                sa.text(
                    "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                    "AND relkind IN ('r', 'p', 'm', 'v') AND relname <> 'alembic_version'"
                )
            )
            .scalars()
            .all()
        )
        functions = (
            conn.execute(sa.text("SELECT proname FROM pg_proc WHERE proname LIKE 'cloudsweep_%'"))
            .scalars()
            .all()
        )
    assert leftovers == []
    assert functions == []
    assert migrate.current_revision(empty_database_url) is None
    migrate.upgrade(empty_database_url)
    assert migrate.current_revision(empty_database_url) == migrate.head_revision()


def test_views_have_unique_indexes_for_concurrent_refresh(database_url: str) -> None:
    with get_engine(database_url).connect() as conn:
        unique = (
            conn.execute(
                sa.text(
                    "SELECT tablename FROM pg_indexes WHERE indexdef LIKE 'CREATE UNIQUE INDEX%' "
                    "AND tablename IN ('savings_summary', 'waste_trends')"
                )
            )
            .scalars()
            .all()
        )
    assert sorted(unique) == ["savings_summary", "waste_trends"]


def test_observations_table_is_partitioned_by_month(database_url: str) -> None:
    with get_engine(database_url).connect() as conn:
        strategy = conn.execute(
            sa.text(
                "SELECT partstrat FROM pg_partitioned_table "
                "WHERE partrelid = 'waste_item_observations'::regclass"
            )
        ).scalar_one()
    assert strategy == "r"


def test_ledger_migration_keeps_existing_audit_rows(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url, "0001")
    with get_engine(empty_database_url).begin() as conn:
        conn.execute(
            sa.text(
                """
                WITH o AS (INSERT INTO organizations (name, slug) VALUES ('a', 'a') RETURNING id),
                a AS (INSERT INTO aws_accounts (organization_id, account_id, role_arn)
                      SELECT id, '111111111111', 'arn:aws:iam::111111111111:role/r' FROM o RETURNING id),
                w AS (INSERT INTO waste_items (aws_account_id, resource_type, resource_id, region,
                      monthly_cost, annual_cost, confidence_score, risk_level, resource_details)
                      SELECT id, 'ebs-volume', 'vol-1', 'us-east-1', 1, 12, 90, 'low', '{}' FROM a
                      RETURNING id)
                INSERT INTO cleanup_actions (waste_item_id, action_type, success)
                SELECT id, 'delete', false FROM w
                """
            )
        )
    migrate.upgrade(empty_database_url)
    with get_engine(empty_database_url).connect() as conn:
        row = conn.execute(sa.text("SELECT action, status FROM cleanup_actions")).one()
    assert tuple(row) == ("delete", "failed")
