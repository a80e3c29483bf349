"""The materialized views give the numbers a person would compute by hand from known data."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from cloudsweep import domain
from cloudsweep.store import Store
from cloudsweep.store.engine import get_engine
from tests.waiting import wait_for

from .conftest import finding


def _rows(url: str, sql: str) -> list[sa.Row]:
    with get_engine(url).connect() as conn:
        return list(conn.execute(sa.text(sql)))


def test_waste_trends_counts_each_item_once_per_week_with_its_latest_cost(
    store: Store, make_account
) -> None:
    account = make_account()
    now = datetime.now(UTC)
    monday = (now - timedelta(days=now.weekday() + 7)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    # Two scans in one week (vol-1's cost changes), one scan the next week without vol-2.
    for started, batch in [
        (
            monday,
            [
                finding("vol-1", cost="10.00", confidence=80),
                finding("vol-2", cost="5.00", confidence=60),
            ],
        ),
        (
            monday + timedelta(days=2),
            [
                finding("vol-1", cost="12.00", confidence=80),
                finding("vol-2", cost="5.00", confidence=60),
            ],
        ),
        (monday + timedelta(days=7), [finding("vol-1", cost="12.00", confidence=90)]),
    ]:
        scan = store.open_scan(
            account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=started
        )
        store.upsert_findings(scan, batch)
        store.close_scan(
            scan,
            status=domain.ScanStatus.COMPLETED,
            completed_at=started + timedelta(minutes=1),
            resources_scanned=10,
        )
    # A scan still running does not count.
    running = store.open_scan(
        account.id,
        scan_type=domain.ScanType.FULL,
        regions=["us-east-1"],
        started_at=monday + timedelta(days=8),
    )
    store.upsert_findings(running, [finding("vol-9", cost="99.00")])

    store.refresh_views()
    rows = _rows(
        store.url,
        "SELECT week, waste_items_found, total_monthly_waste_cost, avg_confidence_score "
        "FROM waste_trends ORDER BY week",
    )
    assert [(r.waste_items_found, r.total_monthly_waste_cost) for r in rows] == [
        (2, Decimal("17.00")),
        (1, Decimal("12.00")),
    ]
    assert rows[0].avg_confidence_score == 70
    assert rows[0].week == monday.replace(hour=0)
    assert rows[1].week - rows[0].week == timedelta(days=7)


def test_savings_summary_counts_real_actions_per_month(store: Store, make_account) -> None:
    account = make_account()
    started = datetime.now(UTC) - timedelta(days=1)
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=started
    )
    store.upsert_findings(scan, [finding("vol-1"), finding("vol-2")])
    with get_engine(store.url).begin() as conn:
        ids = (
            conn.execute(sa.text("SELECT id FROM waste_items ORDER BY resource_id")).scalars().all()
        )
        for item_id, action, dry_run, success, saving in [
            (ids[0], "delete", False, True, "10.00"),
            (ids[1], "delete", False, False, "8.00"),
            (ids[1], "delete", True, True, "8.00"),  # dry runs save nothing
        ]:
            conn.execute(
                sa.text(
                    "INSERT INTO cleanup_actions (id, waste_item_id, action_type, action, status, dry_run, "
                    "success, estimated_monthly_savings, actual_monthly_savings) "
                    "VALUES (:id, :w, :a, :a, CASE WHEN :s THEN 'succeeded' ELSE 'failed' END, "
                    ":d, :s, :e, :e)"
                ),
                {
                    "id": uuid.uuid4(),
                    "w": item_id,
                    "a": action,
                    "d": dry_run,
                    "s": success,
                    "e": saving,
                },
            )
    store.refresh_views()
    [row] = _rows(store.url, "SELECT * FROM savings_summary")
    assert row.total_cleanups == 2
    assert row.successful_cleanups == 1
    assert row.failed_cleanups == 1
    assert row.estimated_monthly_savings == Decimal("10.00")
    assert row.actual_monthly_savings == Decimal("10.00")
    # Refreshing again (concurrently, views populated) is fine and idempotent.
    store.refresh_views(concurrently=True)
    assert len(_rows(store.url, "SELECT * FROM savings_summary")) == 1


def _one_week_of_waste(store: Store, make_account) -> None:
    """One completed scan yesterday that found one 10.00 volume: one row of waste_trends."""
    account = make_account()
    started = datetime.now(UTC) - timedelta(days=1)
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=started
    )
    store.upsert_findings(scan, [finding("vol-1", cost="10.00")])
    store.close_scan(
        scan,
        status=domain.ScanStatus.COMPLETED,
        completed_at=started + timedelta(minutes=1),
        resources_scanned=1,
    )


def test_the_views_stay_readable_while_they_refresh(store: Store, make_account) -> None:
    """Grafana and the metrics read the views at any time: a refresh must not block them.

    The refresh is held in the middle (waste_trends reads scan_results, locked here by another
    transaction), after it locked both views; a reader then gets the contents of the last
    refresh at once. A plain REFRESH takes an ACCESS EXCLUSIVE lock on the view, and the reader
    would wait (here: give up after its lock_timeout).
    """
    _one_week_of_waste(store, make_account)
    store.refresh_views()
    engine = get_engine(store.url)
    with engine.connect() as blocker, ThreadPoolExecutor(1) as pool:
        blocker.execute(sa.text("LOCK TABLE scan_results IN ACCESS EXCLUSIVE MODE"))
        try:
            refreshing = pool.submit(store.refresh_views)
            wait_for(
                lambda: _rows(
                    store.url,
                    # pg_locks is the server's; databases cloned from one template share OIDs.
                    "SELECT 1 FROM pg_locks WHERE relation = 'scan_results'::regclass "
                    "AND NOT granted AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())",
                ),
                timeout=30,
                what="the refresh waiting for scan_results",
            )
            with engine.connect() as reader:
                reader.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
                trends = list(
                    reader.execute(sa.text("SELECT total_monthly_waste_cost FROM waste_trends"))
                )
                savings = reader.execute(sa.text("SELECT count(*) FROM savings_summary"))
                assert [row.total_monthly_waste_cost for row in trends] == [Decimal("10.00")]
                assert savings.scalar_one() == 0
        finally:
            blocker.rollback()
        assert refreshing.result(timeout=30) == ("savings_summary", "waste_trends")


def test_a_plain_refresh_fills_views_that_hold_no_data(store: Store, make_account) -> None:
    """A view left WITH NO DATA (unreadable until refreshed) cannot be refreshed CONCURRENTLY;
    asked for a plain refresh, the store fills it."""
    _one_week_of_waste(store, make_account)
    with get_engine(store.url).begin() as conn:
        for view in ("savings_summary", "waste_trends"):
            conn.execute(sa.text(f"REFRESH MATERIALIZED VIEW {view} WITH NO DATA"))
    assert _rows(
        store.url,
        "SELECT relname FROM pg_class WHERE relkind = 'm' AND NOT relispopulated ORDER BY relname",
    ) == [("savings_summary",), ("waste_trends",)]

    assert store.refresh_views(concurrently=False) == ("savings_summary", "waste_trends")

    assert (
        _rows(store.url, "SELECT relname FROM pg_class WHERE relkind = 'm' AND NOT relispopulated")
        == []
    )
    [trend] = _rows(
        store.url, "SELECT waste_items_found, total_monthly_waste_cost FROM waste_trends"
    )
    assert (trend.waste_items_found, trend.total_monthly_waste_cost) == (1, Decimal("10.00"))
