"""Protected waste is shown, not counted: in the findings table, the report, the trend and /metrics.

A protection tag (its ``protection-tag`` safety check failed) says the owner intends the
resource: it stays visible with its cost, apart from the waste figures. Real PostgreSQL.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from rich.console import Console

from cloudsweep import domain, metrics, reports
from cloudsweep.cli import finding_table, output
from cloudsweep.store import FindingFilter, Store

from .metrics.conftest import samples, value

ORG = "team-p"
ACCOUNT = "111111111111"


def _finding(resource_id: str, cost: str, *, protected: bool) -> domain.Finding:
    check = domain.SafetyCheck(
        domain.PROTECTION_CHECK,
        not protected,
        "protected by tag do-not-delete=true" if protected else "no protection tag",
    )
    return domain.Finding(
        resource_type="ebs-volume",
        resource_id=resource_id,
        region="us-east-1",
        monthly_cost=Decimal(cost),
        confidence=90,
        risk=domain.RiskLevel.HIGH if protected else domain.RiskLevel.LOW,
        evidence=("unattached",),
        safety_checks=(check,),
    )


@pytest.fixture
def store(database_url: str) -> Store:
    store = Store(database_url)
    org = store.ensure_organization(ORG)
    account = store.register_account(
        org.id,
        account_id=ACCOUNT,
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/CloudSweepScanner",
        external_id=None,
        regions=["us-east-1"],
    )
    started = datetime.now(UTC) - timedelta(hours=1)
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=started
    )
    store.upsert_findings(
        scan,
        [
            _finding("vol-waste", "10.00", protected=False),
            _finding("vol-kept", "25.00", protected=True),
        ],
    )
    store.close_scan(
        scan,
        status=domain.ScanStatus.COMPLETED,
        completed_at=started + timedelta(minutes=1),
        resources_scanned=2,
    )
    store.refresh_views()
    return store


def test_the_report_counts_waste_and_shows_protected_apart(store: Store) -> None:
    data = reports.build_report(store.url, ORG)
    assert data.total_monthly_cost == Decimal("10.00")
    assert data.total_items == 1
    assert (data.protected.items, data.protected.monthly_cost) == (1, Decimal("25.00"))
    assert [(p.items, p.monthly_cost) for p in data.trend] == [(1, Decimal("10.00"))]
    assert [(a.items, a.monthly_cost) for a in data.accounts] == [(1, Decimal("10.00"))]
    assert data.as_dict()["summary"]["protected_monthly_cost"] == Decimal("25.00")
    assert "total-protected" in reports.render_html(data)


def test_metrics_keep_protected_out_of_waste(store: Store) -> None:
    found = samples(metrics.CloudSweepCollector(store.url).collect())  # type: ignore[arg-type]
    base = {
        "namespace": ORG,
        "account": ACCOUNT,
        "region": "us-east-1",
        "resource_type": "ebs-volume",
    }
    waste = {
        labels: v
        for (name, labels), v in found.items()
        if name == "cloudsweep_waste_monthly_cost_dollars"
    }
    assert sum(waste.values()) == 10.0
    assert value(found, "cloudsweep_protected_monthly_cost_dollars", **base) == 25.0
    assert value(found, "cloudsweep_protected_items", **base) == 1.0
    top = [labels for (name, labels), _ in found.items() if name.startswith("cloudsweep_top_waste")]
    assert all(dict(labels)["resource_id"] != "vol-kept" for labels in top)


def test_the_findings_table_marks_protected_and_leaves_it_out_of_the_total(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=buffer, width=100, markup=False))
    items = store.findings(FindingFilter(ORG))
    finding_table.show(items, output.OutputFormat.TABLE)
    text = buffer.getvalue()
    [kept] = [line for line in text.splitlines() if "vol-kept" in line]
    assert "protected" in kept
    assert "Total waste: 10.00 USD/month (120.00 USD/year) in 1 items." in text
    assert "Protected, not counted: 25.00 USD/month in 1 items" in text
