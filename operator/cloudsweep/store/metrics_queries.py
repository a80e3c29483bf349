"""The aggregate reads behind CloudSweep's Prometheus metrics: five GROUP BY queries per scrape.

Called by ``cloudsweep.metrics.CloudSweepCollector`` on every scrape, so every replica (and a
restarted one) exposes the same values. Results are plain frozen dataclasses; money stays
``Decimal`` (summed as ``NUMERIC`` in SQL) until the collector writes the exposition.

Cost, with 100,000 current items (``docs/benchmarks.md``): the waste aggregation is one pass over
the current items; the top items walk ``idx_waste_items_monthly_cost`` from the most expensive
down, per organization, and stop after ``top_n``; the latest scans are one index probe per account
on ``idx_scan_results_account_started``. The scan counts read every scan row, which retention
bounds to 12 months.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from cloudsweep.store.engine import get_engine
from cloudsweep.store.models import protected_sql

# Upper bounds (seconds) of the scan duration histogram's buckets; +Inf is implied.
SCAN_DURATION_BUCKETS: tuple[float, ...] = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
# The histogram covers scans that finished within this window.
SCAN_DURATION_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class WasteGroup:
    """Current items (``gone_at IS NULL``) of one label combination."""

    namespace: str
    account: str
    region: str
    resource_type: str
    risk_level: str
    cleanup_status: str
    items: int
    monthly_cost: Decimal
    protected: bool = False  # a protection tag excludes these: shown apart, never counted as waste


@dataclass(frozen=True, slots=True)
class TopItem:
    """One of a namespace's ``top_n`` most expensive current items that are not cleaned yet."""

    namespace: str
    account: str
    region: str
    resource_type: str
    resource_id: str
    monthly_cost: Decimal


@dataclass(frozen=True, slots=True)
class ActionGroup:
    """Cleanup attempts of one label combination (``action`` is the action type)."""

    namespace: str
    account: str
    resource_type: str
    action: str
    result: str
    dry_run: bool
    attempts: int
    # Savings of the attempts whose removal still stands (not rolled back).
    estimated_monthly_savings: Decimal
    actual_monthly_savings: Decimal
    last_at: datetime | None


@dataclass(frozen=True, slots=True)
class ScanGroup:
    """Finished scans of one account and outcome (``running`` scans are counted apart)."""

    namespace: str
    account: str
    outcome: str
    scans: int
    # Scans of this outcome that finished within SCAN_DURATION_WINDOW, per bucket (cumulative,
    # as Prometheus wants them, +Inf last), and the sum of their durations.
    window_buckets: tuple[int, ...]
    window_sum_seconds: Decimal


@dataclass(frozen=True, slots=True)
class AccountState:
    """An account that is not deleted, its connection, and its latest scans."""

    namespace: str
    account: str
    connection_status: str
    last_outcome: str | None  # of the latest finished scan
    last_finished_at: datetime | None
    last_successful_at: datetime | None  # latest ``completed`` scan


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    waste: tuple[WasteGroup, ...]
    top_items: tuple[TopItem, ...]
    actions: tuple[ActionGroup, ...]
    scans: tuple[ScanGroup, ...]
    accounts: tuple[AccountState, ...]


# MATERIALIZED: aggregate the items once, whatever the planner guesses before statistics exist.
_WASTE = sa.text(
    f"""
    WITH w AS MATERIALIZED (
        SELECT aws_account_id, region, resource_type, risk_level, cleanup_status,
               {protected_sql()} AS protected, count(*) AS items, sum(monthly_cost) AS monthly_cost
        FROM waste_items
        WHERE gone_at IS NULL
        GROUP BY aws_account_id, region, resource_type, risk_level, cleanup_status, 6
    )
    SELECT o.slug, a.account_id, w.region, w.resource_type, w.risk_level, w.cleanup_status,
           w.items, w.monthly_cost, w.protected
    FROM w
    JOIN aws_accounts a ON a.id = w.aws_account_id AND a.deleted_at IS NULL
    JOIN organizations o ON o.id = a.organization_id AND o.deleted_at IS NULL
    """
)

# Per organization, walk the monthly_cost index from the top and stop after :top_n matches.
_TOP_ITEMS = sa.text(
    f"""
    SELECT o.slug, t.account_id, t.region, t.resource_type, t.resource_id, t.monthly_cost
    FROM organizations o
    CROSS JOIN LATERAL (
        SELECT a.account_id, w.region, w.resource_type, w.resource_id, w.monthly_cost
        FROM waste_items w
        JOIN aws_accounts a ON a.id = w.aws_account_id
        WHERE a.organization_id = o.id AND a.deleted_at IS NULL
          AND w.gone_at IS NULL AND w.cleanup_status <> 'cleaned' AND NOT {protected_sql("w")}
        ORDER BY w.monthly_cost DESC, w.id
        LIMIT :top_n
    ) t
    WHERE o.deleted_at IS NULL
    """
)

_ACTIONS = sa.text(
    """
    SELECT o.slug, a.account_id, w.resource_type, c.action_type, c.status, c.dry_run,
           count(*) AS attempts,
           coalesce(sum(c.estimated_monthly_savings) FILTER (WHERE NOT c.rollback_executed), 0),
           coalesce(sum(c.actual_monthly_savings) FILTER (WHERE NOT c.rollback_executed), 0),
           max(coalesce(c.completed_at, c.executed_at))
    FROM cleanup_actions c
    JOIN waste_items w ON w.id = c.waste_item_id
    JOIN aws_accounts a ON a.id = w.aws_account_id AND a.deleted_at IS NULL
    JOIN organizations o ON o.id = a.organization_id AND o.deleted_at IS NULL
    GROUP BY o.slug, a.account_id, w.resource_type, c.action_type, c.status, c.dry_run
    """
)


def _scans_query() -> sa.TextClause:
    bucket_columns = ", ".join(
        f"count(*) FILTER (WHERE in_window AND scan_duration_seconds <= {bound}) AS b{i}"
        for i, bound in enumerate(SCAN_DURATION_BUCKETS)
    )
    bucket_names = ", ".join(f"s.b{i}" for i in range(len(SCAN_DURATION_BUCKETS)))
    return sa.text(
        f"""
        SELECT o.slug, a.account_id, s.status, s.scans, s.window_count, s.window_sum,
               {bucket_names}
        FROM (
            SELECT aws_account_id, status, count(*) AS scans,
                   count(*) FILTER (WHERE in_window) AS window_count,
                   coalesce(sum(scan_duration_seconds) FILTER (WHERE in_window), 0) AS window_sum,
                   {bucket_columns}
            FROM (
                SELECT aws_account_id, status, scan_duration_seconds,
                       coalesce(completed_at >= :since AND scan_duration_seconds IS NOT NULL,
                                false) AS in_window
                FROM scan_results
                WHERE status <> 'running'
            ) r
            GROUP BY aws_account_id, status
        ) s
        JOIN aws_accounts a ON a.id = s.aws_account_id AND a.deleted_at IS NULL
        JOIN organizations o ON o.id = a.organization_id AND o.deleted_at IS NULL
        """
    )


_SCANS = _scans_query()

_ACCOUNTS = sa.text(
    """
    SELECT o.slug, a.account_id, a.connection_status,
           last.status, last.completed_at, ok.completed_at
    FROM aws_accounts a
    JOIN organizations o ON o.id = a.organization_id AND o.deleted_at IS NULL
    LEFT JOIN LATERAL (
        SELECT s.status, s.completed_at FROM scan_results s
        WHERE s.aws_account_id = a.id AND s.status <> 'running'
        ORDER BY s.started_at DESC LIMIT 1
    ) last ON true
    LEFT JOIN LATERAL (
        SELECT s.completed_at FROM scan_results s
        WHERE s.aws_account_id = a.id AND s.status = 'completed'
        ORDER BY s.started_at DESC LIMIT 1
    ) ok ON true
    WHERE a.deleted_at IS NULL
    """
)


def read_snapshot(url: str, *, top_n: int, now: datetime) -> MetricsSnapshot:
    """Run the five queries in one read-only snapshot, so the families agree with each other."""
    engine = get_engine(url)
    with engine.connect().execution_options(
        isolation_level="REPEATABLE READ", postgresql_readonly=True
    ) as conn:
        waste = tuple(
            WasteGroup(
                namespace=row[0],
                account=row[1],
                region=row[2],
                resource_type=row[3],
                risk_level=row[4],
                cleanup_status=row[5],
                items=int(row[6]),
                monthly_cost=Decimal(row[7]),
                protected=bool(row[8]),
            )
            for row in conn.execute(_WASTE)
        )
        top_items = tuple(
            TopItem(
                namespace=row[0],
                account=row[1],
                region=row[2],
                resource_type=row[3],
                resource_id=row[4],
                monthly_cost=Decimal(row[5]),
            )
            for row in conn.execute(_TOP_ITEMS, {"top_n": top_n})
        )
        actions = tuple(
            ActionGroup(
                namespace=row[0],
                account=row[1],
                resource_type=row[2],
                action=row[3],
                result=row[4],
                dry_run=bool(row[5]),
                attempts=int(row[6]),
                estimated_monthly_savings=Decimal(row[7]),
                actual_monthly_savings=Decimal(row[8]),
                last_at=row[9],
            )
            for row in conn.execute(_ACTIONS)
        )
        scans = tuple(
            ScanGroup(
                namespace=row[0],
                account=row[1],
                outcome=row[2],
                scans=int(row[3]),
                window_buckets=(*(int(b) for b in row[6:]), int(row[4])),
                window_sum_seconds=Decimal(row[5]),
            )
            for row in conn.execute(_SCANS, {"since": now - SCAN_DURATION_WINDOW})
        )
        accounts = tuple(
            AccountState(
                namespace=row[0],
                account=row[1],
                connection_status=row[2],
                last_outcome=row[3],
                last_finished_at=row[4],
                last_successful_at=row[5],
            )
            for row in conn.execute(_ACCOUNTS)
        )
        conn.rollback()
    return MetricsSnapshot(
        waste=waste, top_items=top_items, actions=actions, scans=scans, accounts=accounts
    )
