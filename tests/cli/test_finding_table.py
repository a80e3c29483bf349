"""The findings table at a terminal's width: one line per finding, no value cut, the rest --wide."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rich.console import Console

from cloudsweep.cli import finding_table, output
from cloudsweep.store import WasteItemRecord

LONG_ID = "app/payments-internal-alb/0123456789abcdef"


def _item(resource_id: str, kind: str, cost: str, failed: list[str], status: str = "pending"):
    now = datetime.now(UTC)
    return WasteItemRecord(
        id=uuid.uuid4(),
        organization_slug="o",
        account_id="123456789012",
        region="ap-southeast-1",
        resource_type=kind,
        resource_id=resource_id,
        resource_arn=None,
        availability_zone=None,
        monthly_cost=Decimal(cost),
        annual_cost=Decimal(cost) * 12,
        confidence_score=90,
        risk_level="medium",
        safety_checks_passed=not failed,
        cleanup_status=status,
        resource_details={
            "evidence": ["no targets and no requests for 14 days, which is a long sentence"],
            "safety_checks": [{"name": name, "passed": False} for name in failed],
        },
        discovered_at=now,
        last_seen_at=now,
        gone_at=None,
    )


ITEMS = [
    _item(LONG_ID, "load-balancer", "1234.56", ["recently-created", "deletion-protection"]),
    _item("vol-0123456789abcdef0", "ebs-volume", "12.00", ["protection-tag"]),
    _item("snap-0123456789abcdef0", "ebs-snapshot", "3.50", []),
    _item("db-payments-reporting-replica-2", "rds-instance", "456.78", [], "approved"),
]


def _render(monkeypatch: pytest.MonkeyPatch, width: int, *, wide: bool = False) -> str:
    buffer = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=buffer, width=width, markup=False))
    finding_table.show(ITEMS, output.OutputFormat.TABLE, wide=wide)
    return buffer.getvalue()


@pytest.mark.parametrize("width", [80, 100, 120, 160])
def test_every_finding_is_one_whole_line(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    text = _render(monkeypatch, width)
    table = text.split("Total waste:")[0].splitlines()
    assert len(table) == 1 + len(ITEMS)  # the header, then one line per finding
    assert all(len(line.rstrip()) <= width for line in table)
    for item in ITEMS:
        [line] = [line for line in table if item.resource_id in line]
        assert f"{item.monthly_cost:,.2f}" in line
    [protected] = [line for line in table if "vol-0123456789abcdef0" in line]
    assert "protected" in protected


def test_columns_that_do_not_fit_are_left_to_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    narrow = _render(monkeypatch, 80).splitlines()[0].split()
    assert narrow == ["$/MONTH", "TYPE", "RESOURCE", "NOTE"]
    roomy = _render(monkeypatch, 120).splitlines()[0].split()
    assert roomy == ["$/MONTH", "TYPE", "RESOURCE", "REGION", "RISK", "NOTE"]
    wide = _render(monkeypatch, 200, wide=True)
    assert "SAFE TO CLEAN" in wide and "no: recently-created, deletion-protection" in wide
    assert "123456789012" in wide
