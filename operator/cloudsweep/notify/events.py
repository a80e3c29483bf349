"""The events people are told about, and the message each one becomes.

Built by ``notify.dispatch`` from a ``ScanOutcome`` (scan completed, high-value waste found), a
``RunReport`` (cleanup completed) or ``reports.ReportData`` (weekly and monthly reports); rendered by
``notify.slack`` and ``notify.email`` from the channel-neutral ``Message``. An event's ``kind`` is
the ``notification_settings`` column that turns it on or off.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from cloudsweep.store.notification_settings import Tenant
from cloudsweep.store.reporting import NewWaste

if TYPE_CHECKING:
    from cloudsweep.cleaning import RunReport
    from cloudsweep.reports import ReportData
    from cloudsweep.scanning import ScanOutcome

ZERO = Decimal("0.00")


class EventKind(enum.StrEnum):
    SCAN_COMPLETED = "scan_completed"
    CLEANUP_COMPLETED = "cleanup_completed"
    HIGH_VALUE_WASTE = "high_value_waste_found"
    WEEKLY_REPORT = "weekly_report"
    MONTHLY_REPORT = "monthly_report"


class Tone(enum.StrEnum):
    GOOD = "good"
    WARNING = "warning"
    BAD = "bad"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Message:
    """What any channel shows: a subject, one sentence, facts (label, value) and a short list."""

    subject: str
    summary: str
    facts: tuple[tuple[str, str], ...] = ()
    items_title: str = ""
    items: tuple[str, ...] = ()
    tone: Tone = Tone.INFO


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    tenant: Tenant
    message: Message
    # Compared with a user's ``min_waste_amount_notify`` (high-value waste only).
    amount: Decimal | None = None
    key: str = field(default="")


def money(value: Decimal) -> str:
    return f"${value:,.2f}"


def _decimal(value: object) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else ZERO
    except InvalidOperation:
        return ZERO


def _account(tenant: Tenant) -> str:
    if tenant.account_name:
        return f"{tenant.account_id} ({tenant.account_name})"
    return tenant.account_id or "?"


def scan_completed(outcome: ScanOutcome, tenant: Tenant) -> Event:
    scan = outcome.scan
    failed = outcome.failed_tasks
    tone = {"completed": Tone.GOOD, "partial": Tone.WARNING}.get(scan.status, Tone.BAD)
    if outcome.error or scan.status == "failed":
        summary = (
            f"The scan of account {_account(tenant)} failed: {outcome.error or scan.error_message}"
        )
    else:
        summary = (
            f"The scan of account {_account(tenant)} {scan.status}: "
            f"{scan.total_waste_items_found} waste items costing "
            f"{money(scan.total_monthly_waste_cost)} a month."
        )
    facts = [
        ("Organization", tenant.slug),
        ("Account", _account(tenant)),
        ("Status", scan.status),
        ("Waste items", str(scan.total_waste_items_found)),
        ("Monthly waste", money(scan.total_monthly_waste_cost)),
        ("Annual waste", money(scan.total_annual_waste_cost)),
        ("Regions", ", ".join(scan.regions) or "-"),
    ]
    if scan.duration_seconds is not None:
        facts.append(("Duration", f"{scan.duration_seconds} s"))
    items = tuple(
        f"{task.region} / {task.detector}: {task.error_kind or 'error'}: {task.error}"
        for task in failed[:10]
    )
    return Event(
        kind=EventKind.SCAN_COMPLETED,
        tenant=tenant,
        message=Message(
            subject=f"Scan {scan.status}: account {_account(tenant)}, "
            f"{money(scan.total_monthly_waste_cost)}/month of waste",
            summary=summary,
            facts=tuple(facts),
            items_title=f"{len(failed)} region/detector failures" if failed else "",
            items=items,
            tone=tone,
        ),
        key=f"scan:{scan.id}",
    )


def high_value_waste(outcome: ScanOutcome, tenant: Tenant, found: NewWaste) -> Event | None:
    """New waste this scan found, or None when it found none; users' thresholds apply later."""
    if found.items == 0 or found.monthly_cost <= ZERO:
        return None
    items = tuple(
        f"{money(item.monthly_cost)}/month  {item.resource_type} {item.resource_id} "
        f"({item.region}, account {item.account_id})"
        for item in found.top
    )
    return Event(
        kind=EventKind.HIGH_VALUE_WASTE,
        tenant=tenant,
        message=Message(
            subject=f"New waste: {money(found.monthly_cost)}/month in account {_account(tenant)}",
            summary=(
                f"A scan of account {_account(tenant)} found {found.items} new waste items costing "
                f"{money(found.monthly_cost)} a month ({money(found.monthly_cost * 12)} a year)."
            ),
            facts=(
                ("Organization", tenant.slug),
                ("Account", _account(tenant)),
                ("New items", str(found.items)),
                ("Monthly cost", money(found.monthly_cost)),
            ),
            items_title="The most expensive" if items else "",
            items=items,
            tone=Tone.WARNING,
        ),
        amount=found.monthly_cost,
        key=f"high-value:{outcome.scan.id}",
    )


def cleanup_completed(report: RunReport, tenant: Tenant) -> Event:
    counts: dict[str, int] = {}
    for result in report.results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    succeeded = [r for r in report.results if r.outcome in ("succeeded", "recovered")]
    saved = sum((_decimal(r.monthly_cost) for r in succeeded), ZERO)
    failed = counts.get("failed", 0)
    mode = "dry run" if report.dry_run else "cleanup"
    if report.dry_run:
        would = sum(
            (_decimal(r.monthly_cost) for r in report.results if r.outcome == "dry-run-ok"), ZERO
        )
        summary = (
            f"A dry run planned {counts.get('dry-run-ok', 0)} removals worth {money(would)} "
            "a month; nothing was changed."
        )
    else:
        summary = f"A cleanup removed {len(succeeded)} resources, saving {money(saved)} a month" + (
            f"; {failed} failed." if failed else "."
        )
    facts = [("Organization", tenant.slug), ("Mode", mode)]
    facts += [(outcome, str(count)) for outcome, count in sorted(counts.items())]
    if not report.dry_run:
        facts.append(("Monthly savings", money(saved)))
    problems = tuple(
        f"{r.resource_type} {r.resource_id} ({r.region}, account {r.account_id}): {r.message}"
        for r in report.results
        if r.outcome in ("failed", "dry-run-fail")
    )[:10]
    return Event(
        kind=EventKind.CLEANUP_COMPLETED,
        tenant=tenant,
        message=Message(
            subject=f"{mode.capitalize()} completed in {tenant.slug}: "
            + (
                f"{len(succeeded)} removed, {money(saved)}/month saved"
                if not report.dry_run
                else f"{counts.get('dry-run-ok', 0)} planned"
            ),
            summary=summary,
            facts=tuple(facts),
            items_title="Failures" if problems else "",
            items=problems,
            tone=Tone.BAD if failed else Tone.GOOD,
        ),
        key=f"cleanup:{report.run_id}",
    )


def _period_report(
    kind: EventKind, data: ReportData, tenant: Tenant, since: datetime, label: str
) -> Event:
    weeks = data.weekly_totals()
    change = ""
    if len(weeks) >= 2:
        delta = weeks[-1].monthly_cost - weeks[-2].monthly_cost
        change = f"{'+' if delta >= 0 else '-'}{money(abs(delta))} since the week before"
    savings = [s for s in data.savings if s.month >= since.replace(day=1)]
    estimated = sum((s.estimated_monthly_savings for s in savings), ZERO)
    cleanups = sum(s.successful_cleanups for s in savings)
    facts: list[tuple[str, str]] = [
        ("Organization", tenant.slug),
        ("Waste now", f"{money(data.total_monthly_cost)}/month, {data.total_items} items"),
        ("Annual waste", money(data.total_annual_cost)),
    ]
    if change:
        facts.append(("Trend", change))
    facts.append(("Cleanups", f"{cleanups} succeeded, saving {money(estimated)}/month"))
    items = tuple(
        f"{row.resource_type}: {money(row.monthly_cost)}/month, {row.items} items"
        for row in data.waste_by_type
    )
    return Event(
        kind=kind,
        tenant=tenant,
        message=Message(
            subject=f"{label} report for {tenant.slug}: {money(data.total_monthly_cost)}/month of waste",
            summary=(
                f"{tenant.name} has {data.total_items} waste items costing "
                f"{money(data.total_monthly_cost)} a month."
            ),
            facts=tuple(facts),
            items_title="Waste by resource type" if items else "",
            items=items,
            tone=Tone.INFO,
        ),
        key=f"{kind.value}:{tenant.slug}:{data.generated_at:%Y-%m-%d}",
    )


def weekly_report(data: ReportData, tenant: Tenant) -> Event:
    return _period_report(
        EventKind.WEEKLY_REPORT, data, tenant, data.generated_at - timedelta(days=7), "Weekly"
    )


def monthly_report(data: ReportData, tenant: Tenant) -> Event:
    previous = (data.generated_at.replace(day=1) - timedelta(days=1)).replace(day=1)
    return _period_report(EventKind.MONTHLY_REPORT, data, tenant, previous, "Monthly")
