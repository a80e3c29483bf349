"""Findings as the command line shows them: ``cloudsweep scan`` and ``cloudsweep findings``.

The table has the columns that matter and keeps each finding on one line at common terminal
widths (as ``kubectl get`` does); ``--wide`` adds the long ones (why, the safety checks, the
account), and JSON and CSV always carry everything. Protected items (a protection tag excludes
them) are listed with their cost and marked, but never counted in the waste total: their owners
declared them intended.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from cloudsweep.cli import output
from cloudsweep.store import WasteItemRecord

# The default table's columns, most important first: at a narrow terminal the last ones go (they
# are all in --wide and -o json) rather than any value being cut or a row wrapping.
COLUMNS_BY_PRIORITY = ["resource_id", "monthly_cost", "resource_type", "note", "region", "risk"]
HEADERS = {
    "monthly_cost": "$/MONTH",
    "resource_type": "TYPE",
    "resource_id": "RESOURCE",
    "region": "REGION",
    "risk": "RISK",
    "note": "NOTE",
    "account_id": "ACCOUNT",
    "confidence": "CONFIDENCE",
    "safe_to_clean": "SAFE TO CLEAN",
    "why": "WHY",
}
COLUMN_ORDER = ["monthly_cost", "resource_type", "resource_id", "region", "risk", "note"]
GAP = 2  # spaces between columns
WIDE_COLUMNS = [
    "monthly_cost",
    "resource_type",
    "resource_id",
    "account_id",
    "region",
    "confidence",
    "risk",
    "safe_to_clean",
    "why",
]
DATA_COLUMNS = [
    "monthly_cost",
    "resource_type",
    "resource_id",
    "region",
    "confidence",
    "risk",
    "protected",
    "safe_to_clean",
    "why",
    "annual_cost",
    "resource_arn",
    "account_id",
]
ZERO = Decimal("0.00")


def _note(item: WasteItemRecord, failed: list[str]) -> str:
    """One short word: why this row is not plain waste to clean, if it is not (--wide says more)."""
    if item.protected:
        return "protected"
    if failed:
        return "unsafe"  # a safety check failed: never cleaned as it is
    if item.cleanup_status != "pending":
        return item.cleanup_status
    return ""


def row(item: WasteItemRecord) -> dict[str, Any]:
    details = item.resource_details
    failed = [c["name"] for c in details.get("safety_checks", []) if not c.get("passed")]
    evidence = details.get("evidence") or []
    return {
        "id": str(item.id),
        "monthly_cost": item.monthly_cost,
        "annual_cost": item.annual_cost,
        "resource_type": item.resource_type,
        "resource_id": item.resource_id,
        "resource_arn": item.resource_arn,
        "account_id": item.account_id,
        "region": item.region,
        "availability_zone": item.availability_zone,
        "confidence": item.confidence_score,
        "risk": item.risk_level,
        "protected": item.protected,
        "note": _note(item, failed),
        "safe_to_clean": "yes" if item.safety_checks_passed else "no: " + ", ".join(failed),
        "cleanup_status": item.cleanup_status,
        "why": evidence[0] if evidence else "",
        "evidence": evidence,
        "safety_checks": details.get("safety_checks", []),
        "discovered_at": item.discovered_at,
        "last_seen_at": item.last_seen_at,
    }


def fitting_columns(rows: Sequence[dict[str, Any]], width: int) -> list[str]:
    """The default columns that fit ``width`` whole, dropping the least important first."""
    natural = {
        column: max([len(HEADERS[column]), *(len(output.cell(r.get(column))) for r in rows)])
        for column in COLUMN_ORDER
    }
    kept = list(COLUMNS_BY_PRIORITY)
    while len(kept) > 2 and sum(natural[c] for c in kept) + GAP * (len(kept) - 1) > width:
        kept.pop()
    return [column for column in COLUMN_ORDER if column in kept]


def show(
    items: Sequence[WasteItemRecord],
    fmt: output.OutputFormat,
    *,
    wide: bool = False,
) -> None:
    rows = [row(item) for item in items]
    if fmt is not output.OutputFormat.TABLE:
        output.render(rows, columns=DATA_COLUMNS, fmt=fmt)
        return
    counted = [item for item in items if not item.protected]
    protected = [item for item in items if item.protected]
    total = sum((item.monthly_cost for item in counted), ZERO)
    # Like `kubectl get -o wide`: every column, lines as long as they need to be.
    columns = WIDE_COLUMNS if wide else fitting_columns(rows, output.console.width)
    output.render_plain(
        rows,
        columns=columns,
        headers=HEADERS,
        right_aligned=["monthly_cost", "confidence"],
        gap=GAP,
    )
    output.console.print(
        f"Total waste: [bold]{total:,.2f} USD/month[/bold] ({total * 12:,.2f} USD/year) "
        f"in {len(counted)} items.",
        markup=True,
    )
    if protected:
        kept = sum((item.monthly_cost for item in protected), ZERO)
        output.console.print(
            f"Protected, not counted: {kept:,.2f} USD/month in {len(protected)} items "
            "(a protection tag says they are intended)."
        )
