"""Retention drops old observation partitions, deletes old scans and actions, makes partitions ahead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from cloudsweep import domain
from cloudsweep.store import FindingFilter, Store
from cloudsweep.store.engine import get_engine

from .conftest import finding


def _partitions(url: str) -> list[str]:
    with get_engine(url).connect() as conn:
        return sorted(
            conn.execute(
                sa.text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'waste_item_observations'::regclass"
                )
            ).scalars()
        )


def test_retention_drops_whole_partitions_and_keeps_live_findings(
    store: Store, make_account
) -> None:
    account = make_account()
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    old = datetime(2025, 9, 10, tzinfo=UTC)  # more than 12 months before now
    recent = datetime(2026, 10, 5, tzinfo=UTC)
    old_scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=old
    )
    store.upsert_findings(old_scan, [finding("vol-old-and-current")])
    store.close_scan(
        old_scan, status=domain.ScanStatus.COMPLETED, completed_at=old, resources_scanned=1
    )
    new_scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=recent
    )
    store.upsert_findings(new_scan, [finding("vol-recent")])
    assert "waste_item_observations_y2025m09" in _partitions(store.url)

    report = store.apply_retention(now)

    assert report.scans_deleted == 1
    assert "waste_item_observations_y2025m09" in report.partitions_dropped
    assert "waste_item_observations_y2025m09" not in _partitions(store.url)
    assert "waste_item_observations_y2026m10" in _partitions(store.url)
    # Made ahead: this month and the next three.
    for name in ("y2026m11", "y2026m12", "y2027m01", "y2027m02"):
        assert f"waste_item_observations_{name}" in _partitions(store.url)
    # The finding first seen by the dropped scan is still there: retention never deletes live waste.
    assert {i.resource_id for i in store.findings(FindingFilter("team-a"))} == {
        "vol-old-and-current",
        "vol-recent",
    }
    assert set(report.views_refreshed) == {"savings_summary", "waste_trends"}


def test_retention_deletes_actions_after_24_months(store: Store, make_account) -> None:
    account = make_account()
    now = datetime(2026, 11, 25, tzinfo=UTC)
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=now
    )
    store.upsert_findings(scan, [finding("vol-1")])
    with get_engine(store.url).begin() as conn:
        item = conn.execute(sa.text("SELECT id FROM waste_items")).scalar_one()
        for age in (30, 729, 731, 1000):
            conn.execute(
                sa.text(
                    "INSERT INTO cleanup_actions (waste_item_id, action_type, action, status, success, "
                    "executed_at) VALUES (:w, 'delete', 'delete', 'failed', false, :t)"
                ),
                {"w": item, "t": now - timedelta(days=age)},
            )
    report = store.apply_retention(now)
    assert report.actions_deleted == 2
    with get_engine(store.url).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM cleanup_actions")).scalar_one() == 2


def test_retention_twice_is_harmless(store: Store) -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    store.apply_retention(now)
    second = store.apply_retention(now)
    assert second.partitions_created == 0
    assert second.partitions_dropped == ()
