"""Scan runs and the bulk upsert of findings: idempotent, batched, closing what is gone; the scan
runs read back (by id, an account's latest, the latest of those changed since a moment, an
organization's count since a moment)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from cloudsweep import domain
from cloudsweep.store import (
    BATCH_SIZE,
    AccountClaimed,
    AccountRecord,
    FindingFilter,
    ScanRecord,
    Store,
)
from cloudsweep.store.engine import get_engine

from .conftest import T0, finding


def _count(url: str, sql: str) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def test_upsert_is_idempotent_and_keeps_one_row_per_resource(store: Store, make_account) -> None:
    account = make_account()
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    batch = [finding(f"vol-{i}") for i in range(5)]
    first = store.upsert_findings(scan, batch)
    again = store.upsert_findings(scan, batch)
    assert (first.inserted, first.updated) == (5, 0)
    assert (again.inserted, again.updated) == (0, 5)
    assert _count(store.url, "SELECT count(*) FROM waste_items") == 5
    # One observation per item per scan, however often the scan re-sends it.
    assert _count(store.url, "SELECT count(*) FROM waste_item_observations") == 5


def test_a_later_scan_updates_cost_and_adds_history(store: Store, make_account) -> None:
    account = make_account()
    first = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(first, [finding("vol-1", cost="10.00")])
    second = store.open_scan(
        account.id,
        scan_type=domain.ScanType.FULL,
        regions=["us-east-1"],
        started_at=T0 + timedelta(days=1),
    )
    store.upsert_findings(second, [finding("vol-1", cost="12.50")])
    [item] = store.findings(FindingFilter("team-a"))
    assert item.monthly_cost == Decimal("12.50")
    assert item.annual_cost == Decimal("150.00")
    assert item.resource_details["evidence"] == ["unattached since 2026-01-01"]
    assert _count(store.url, "SELECT count(*) FROM waste_item_observations") == 2


def test_duplicates_inside_one_batch_keep_the_last(store: Store, make_account) -> None:
    account = make_account()
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    result = store.upsert_findings(
        scan, [finding("vol-1", cost="1.00"), finding("vol-1", cost="2.00")]
    )
    assert result.total == 1
    [item] = store.findings(FindingFilter("team-a"))
    assert item.monthly_cost == Decimal("2.00")


def test_more_than_one_batch(store: Store, make_account) -> None:
    account = make_account()
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    count = BATCH_SIZE * 2 + 7
    batch = [finding(f"vol-{i:05d}") for i in range(count)]
    result = store.upsert_findings(scan, batch)
    assert (result.inserted, result.updated) == (count, 0)
    assert _count(store.url, "SELECT count(*) FROM waste_items") == count
    # Seen again: every batch's updates are counted, not the last batch's alone.
    again = store.upsert_findings(scan, batch)
    assert (again.inserted, again.updated) == (0, count)


def test_close_scan_computes_totals_from_what_it_saw(store: Store, make_account) -> None:
    account = make_account()
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(scan, [finding("vol-1", cost="10.00"), finding("vol-2", cost="2.55")])
    closed = store.close_scan(
        scan,
        status=domain.ScanStatus.COMPLETED,
        completed_at=T0 + timedelta(seconds=3.5),
        resources_scanned=40,
    )
    assert closed.status == "completed"
    assert closed.total_waste_items_found == 2
    assert closed.total_monthly_waste_cost == Decimal("12.55")
    assert closed.total_annual_waste_cost == Decimal("150.60")
    assert closed.duration_seconds == Decimal("3.500")
    assert (
        store.account(account.organization_id, account.account_id).last_scan_at
        == closed.completed_at
    )


def test_items_not_seen_by_a_full_scan_are_marked_gone_only_in_scanned_regions(
    store: Store, make_account
) -> None:
    account = make_account()
    first = store.open_scan(
        account.id,
        scan_type=domain.ScanType.FULL,
        regions=["us-east-1", "eu-west-1"],
        started_at=T0,
    )
    store.upsert_findings(
        first, [finding("vol-1"), finding("vol-2"), finding("vol-eu", region="eu-west-1")]
    )
    second = store.open_scan(
        account.id,
        scan_type=domain.ScanType.FULL,
        regions=["us-east-1"],
        started_at=T0 + timedelta(hours=1),
    )
    store.upsert_findings(second, [finding("vol-1")])
    # eu-west-1 failed in the second scan: only us-east-1 is closed.
    closed = store.close_unseen(
        second, regions=["us-east-1"], resource_types=["ebs-volume"], now=T0 + timedelta(hours=1)
    )
    assert closed == 1
    current = {item.resource_id for item in store.findings(FindingFilter("team-a"))}
    assert current == {"vol-1", "vol-eu"}
    everything = store.findings(FindingFilter("team-a", include_gone=True))
    assert {i.resource_id for i in everything if i.gone_at is not None} == {"vol-2"}

    # Seen again later: it is open again.
    third = store.open_scan(
        account.id,
        scan_type=domain.ScanType.FULL,
        regions=["us-east-1"],
        started_at=T0 + timedelta(hours=2),
    )
    store.upsert_findings(third, [finding("vol-2")])
    assert "vol-2" in {item.resource_id for item in store.findings(FindingFilter("team-a"))}


def test_filters(store: Store, make_account) -> None:
    account = make_account()
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(
        scan,
        [
            finding("vol-1", cost="50.00"),
            finding("vol-2", cost="1.00"),
            finding("eipalloc-1", cost="3.65", resource_type="elastic-ip", region="eu-west-1"),
        ],
    )
    assert [i.resource_id for i in store.findings(FindingFilter("team-a"))] == [
        "vol-1",
        "eipalloc-1",
        "vol-2",
    ]
    assert [
        i.resource_id for i in store.findings(FindingFilter("team-a", min_monthly_cost=Decimal(2)))
    ] == [
        "vol-1",
        "eipalloc-1",
    ]
    assert [i.resource_id for i in store.findings(FindingFilter("team-a", region="eu-west-1"))] == [
        "eipalloc-1"
    ]
    assert [
        i.resource_id for i in store.findings(FindingFilter("team-a", resource_type="elastic-ip"))
    ] == ["eipalloc-1"]
    assert store.findings(FindingFilter("team-a", account_id="999999999999")) == []
    assert len(store.findings(FindingFilter("team-a", cleanup_status="pending"))) == 3


def _scan(
    store: Store, account: AccountRecord, after: timedelta, took: timedelta | None = None
) -> ScanRecord:
    """A scan of ``account`` started ``after`` T0; completed ``took`` later (None: still running)."""
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0 + after
    )
    if took is None:
        return scan
    return store.close_scan(
        scan,
        status=domain.ScanStatus.COMPLETED,
        completed_at=T0 + after + took,
        resources_scanned=7,
    )


def test_a_scan_run_is_read_back_by_its_id_as_it_was_closed(store: Store, make_account) -> None:
    """Status, regions, error and the run's metadata (what the scan closes it with: detectors,
    failed regions, errors, API calls) are kept as the scan closed it, in its row and read back."""
    account = make_account()
    scan = store.open_scan(
        account.id,
        scan_type=domain.ScanType.FULL,
        regions=["us-east-1", "eu-west-1"],
        started_at=T0,
    )
    store.upsert_findings(scan, [finding("vol-1", cost="4.00")])
    metadata = {
        "detectors": ["ebs-volume"],
        "regions_failed": ["eu-west-1"],
        "errors": {"eu-west-1": "AccessDenied"},
        "api_calls": 9,
    }
    closed = store.close_scan(
        scan,
        status=domain.ScanStatus.PARTIAL,
        completed_at=T0 + timedelta(seconds=2),
        resources_scanned=12,
        error_message="eu-west-1: AccessDenied",
        metadata=metadata,
    )
    other = _scan(store, account, timedelta(hours=1))

    run = store.scan(scan.id)
    assert run == closed
    assert run is not None
    assert (run.id, run.status, run.regions, run.error_message, run.metadata) == (
        scan.id,
        "partial",
        ("us-east-1", "eu-west-1"),
        "eu-west-1: AccessDenied",
        metadata,
    )
    with get_engine(store.url).connect() as conn:
        row = conn.execute(
            sa.text("SELECT metadata FROM scan_results WHERE id = :id"), {"id": scan.id}
        ).scalar_one()
    assert row == metadata
    assert (run.total_waste_items_found, run.total_monthly_waste_cost) == (1, Decimal("4.00"))
    assert store.scan(other.id) == other
    assert store.scan(uuid.uuid4()) is None


def test_an_accounts_latest_scan_is_the_one_started_last(store: Store, make_account) -> None:
    a = make_account("team-a", "111111111111")
    b = make_account("team-b", "222222222222")
    idle = make_account("team-c", "333333333333")
    _scan(store, a, timedelta(0), timedelta(minutes=1))
    # Opened after the other, but started before it: not the latest.
    later = _scan(store, a, timedelta(hours=2))
    _scan(store, a, timedelta(hours=1), timedelta(minutes=1))
    of_b = _scan(store, b, timedelta(hours=3), timedelta(minutes=1))

    assert store.latest_scan(a.id) == later
    assert store.latest_scan(b.id) == of_b
    assert store.latest_scan(idle.id) is None


def test_the_latest_scans_changed_since_a_moment_are_only_of_accounts_with_news(
    store: Store, make_account
) -> None:
    a = make_account("team-a", "111111111111")
    b = make_account("team-b", "222222222222")
    c = make_account("team-c", "333333333333")
    since = T0 + timedelta(minutes=90)
    # a: an old run, and two that finished since (the later started is the latest).
    _scan(store, a, timedelta(0), timedelta(minutes=1))
    _scan(store, a, timedelta(minutes=30), timedelta(hours=3))
    a_latest = _scan(store, a, timedelta(hours=1), timedelta(hours=1))
    # b: nothing since.
    b_old = _scan(store, b, timedelta(0), timedelta(minutes=10))
    # c: one started since, still running.
    c_running = _scan(store, c, timedelta(hours=2))

    changed = store.latest_scans_changed(since)
    assert {account: run.id for account, run in changed.items()} == {
        a.id: a_latest.id,
        c.id: c_running.id,
    }
    assert changed[a.id] == a_latest
    assert {account: run.id for account, run in store.latest_scans_changed(None).items()} == {
        a.id: a_latest.id,
        b.id: b_old.id,
        c.id: c_running.id,
    }
    assert store.latest_scans_changed(T0 + timedelta(hours=5)) == {}


def test_an_organizations_scans_since_a_moment_count_all_its_accounts_and_no_others(
    store: Store, make_account
) -> None:
    a1 = make_account("team-a", "111111111111")
    a2 = make_account("team-a", "222222222222")
    b = make_account("team-b", "333333333333")
    since = T0 + timedelta(hours=1)
    _scan(store, a1, timedelta(minutes=59), timedelta(hours=1))  # finished since, started before
    _scan(store, a1, timedelta(hours=1), timedelta(minutes=1))  # started at the moment itself
    _scan(store, a1, timedelta(hours=2))
    _scan(store, a2, timedelta(hours=3), timedelta(minutes=1))
    _scan(store, b, timedelta(hours=2), timedelta(minutes=1))

    assert store.scans_since(a1.organization_id, since) == 3
    assert store.scans_since(b.organization_id, since) == 1
    assert store.scans_since(a1.organization_id, T0) == 4
    assert store.scans_since(b.organization_id, T0 + timedelta(hours=4)) == 0


def test_an_account_is_registered_to_be_scanned_and_a_scan_names_who_started_it(
    store: Store, make_account
) -> None:
    """Registered without saying (as ``cloudsweep scan`` registers its account), an account is
    one that ScanSchedules and ``cloudsweep scan --account-id`` scan; a scan keeps its starter."""
    account = make_account()
    assert account.scan_enabled is True
    assert store.account(account.organization_id, account.account_id) == account
    starter = store.ensure_user(account.organization_id, "ops@example.com")
    scan = store.open_scan(
        account.id,
        scan_type=domain.ScanType.MANUAL,
        regions=["us-east-1"],
        started_at=T0,
        created_by=starter,
    )
    with get_engine(store.url).connect() as conn:
        created_by = conn.execute(
            sa.text("SELECT created_by FROM scan_results WHERE id = :id"), {"id": scan.id}
        ).scalar_one()
    assert created_by == starter


def test_an_organization_and_an_account_keep_what_they_were_registered_with(
    store: Store,
) -> None:
    """Every field the operator's handlers pass reaches the row, read back whole; a namespace
    recreated under its name (another UID) is refused, so its UID was stored."""
    org = store.ensure_organization(
        "team-z",
        name="Team Z",
        namespace_uid="uid-team-z",
        monthly_scan_limit=40,
        auto_cleanup_enabled=True,
    )
    assert store.organization("team-z") == org
    assert (org.slug, org.name, org.monthly_scan_limit, org.auto_cleanup_enabled) == (
        "team-z",
        "Team Z",
        40,
        True,
    )
    with pytest.raises(domain.InvalidInput, match="was recreated"):
        store.ensure_organization("team-z", namespace_uid="uid-other")
    account = store.register_account(
        org.id,
        account_id="999999999999",
        role_arn="arn:aws:iam::999999999999:role/CloudSweepScanner",
        external_id="ext-z",
        regions=["eu-west-1"],
        account_name="Data (prod)",
        scan_enabled=False,
        auto_cleanup_enabled=True,
        allow_shared=True,
    )
    assert store.account(org.id, "999999999999") == account
    assert dataclasses.astuple(account)[2:10] == (
        "999999999999",
        "Data (prod)",
        "arn:aws:iam::999999999999:role/CloudSweepScanner",
        "ext-z",
        ("eu-west-1",),
        False,
        True,
        "pending",
    )
    # Held by team-z: another organization registers it only by saying it is shared.
    other = store.ensure_organization("team-y")
    with pytest.raises(AccountClaimed):
        store.register_account(
            other.id,
            account_id="999999999999",
            role_arn=None,
            external_id=None,
            regions=["eu-west-1"],
        )
    shared = store.register_account(
        other.id,
        account_id="999999999999",
        role_arn=None,
        external_id=None,
        regions=["eu-west-1"],
        allow_shared=True,
    )
    assert (shared.organization_id, shared.auto_cleanup_enabled) == (other.id, False)
