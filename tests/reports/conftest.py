"""An organization with known waste over two weeks and one real cleanup, views refreshed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cloudsweep import domain
from cloudsweep.settings import get_settings
from cloudsweep.store import FindingFilter, Intent, Store
from cloudsweep.store.ledger import ACTIONABLE


@dataclass(frozen=True)
class Known:
    url: str
    week1: datetime
    week2: datetime


def _finding(resource_type: str, resource_id: str, cost: str) -> domain.Finding:
    return domain.Finding(
        resource_type=resource_type,
        resource_id=resource_id,
        region="us-east-1",
        monthly_cost=Decimal(cost),
        confidence=80,
        risk=domain.RiskLevel.LOW,
        availability_zone="us-east-1a",
        evidence=("unused",),
        safety_checks=(),
        tags={},
    )


@pytest.fixture
def known(database_url: str) -> Known:
    """Week 1: $33.60 (3 items); week 2: $73.60 (4 items); then vol-1 ($10) is cleaned up.

    Current waste: ebs-volume 2 items $60.00, elastic-ip 1 item $3.60; savings $10.00.
    """
    store = Store(database_url)
    organization = store.ensure_organization("team-a", name="Team <A> & Co")
    account = store.register_account(
        organization.id,
        account_id="111111111111",
        role_arn="arn:aws:iam::111111111111:role/CloudSweepScanner",
        external_id=None,
        regions=["us-east-1"],
        account_name="payments <prod>",
    )
    now = datetime.now(UTC)
    monday = (now - timedelta(days=now.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    week1, week2 = monday - timedelta(days=14), monday - timedelta(days=7)
    for started, batch in [
        (
            week1,
            [
                _finding("ebs-volume", "vol-1", "10.00"),
                _finding("ebs-volume", "vol-2", "20.00"),
                _finding("elastic-ip", "eipalloc-1", "3.60"),
            ],
        ),
        (
            week2,
            [
                _finding("ebs-volume", "vol-1", "10.00"),
                _finding("ebs-volume", "vol-2", "20.00"),
                _finding("elastic-ip", "eipalloc-1", "3.60"),
                _finding("ebs-volume", "vol-3", "40.00"),
            ],
        ),
    ]:
        scan = store.open_scan(
            account.id,
            scan_type=domain.ScanType.FULL,
            regions=["us-east-1"],
            started_at=started + timedelta(hours=9),
        )
        store.upsert_findings(scan, batch)
        store.close_scan(
            scan,
            status=domain.ScanStatus.COMPLETED,
            completed_at=started + timedelta(hours=9, minutes=1),
            resources_scanned=10,
        )
    [vol1] = [i for i in store.findings(FindingFilter("team-a")) if i.resource_id == "vol-1"]
    intent = Intent(
        item_id=vol1.id,
        run_id=None,
        action="delete-volume",
        action_type=domain.ActionType.DELETE,
        description="delete vol-1",
        method=domain.ExecutionMethod.MANUAL,
        executed_by=None,
        policy_name="old-volumes",
        decision_reason="unattached",
        rollback_possible=False,
        estimated_monthly_savings=Decimal("10.00"),
    )
    action_id = store.claim(intent, allowed=ACTIONABLE, now=now)
    assert action_id is not None
    store.finish(
        action_id,
        status=domain.AttemptStatus.SUCCEEDED,
        now=now,
        item_status=domain.CleanupStatus.CLEANED,
    )
    store.refresh_views()
    return Known(database_url, week1, week2)


@pytest.fixture
def cli_database(known: Known, monkeypatch: pytest.MonkeyPatch) -> Iterator[Known]:
    """The CLI pointed at the known database (``CLOUDSWEEP_DATABASE_URL``)."""
    monkeypatch.setenv("CLOUDSWEEP_DATABASE_URL", known.url)
    get_settings.cache_clear()
    try:
        yield known
    finally:
        get_settings.cache_clear()
