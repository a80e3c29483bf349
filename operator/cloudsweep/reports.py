"""The waste and savings report of one organization: its data, and a self-contained HTML page.

Called by ``cloudsweep report`` (``cli/report.py``) and by ``notify`` (weekly and monthly report
messages). ``build_report`` reads the store (``savings_summary`` and ``waste_trends`` views, current
waste from ``waste_items``); ``render_html`` draws the page with inline CSS and inline SVG charts
made here, so it opens offline and fetches nothing (its Content-Security-Policy forbids it). Every
string from the database is escaped.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cloudsweep import domain
from cloudsweep.store import Store
from cloudsweep.store.reporting import (
    MonthlySavings,
    ProtectedWaste,
    ReportingStore,
    TrendPoint,
    WasteByAccount,
    WasteByType,
)

ZERO = Decimal("0.00")
PALETTE = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0ea5e9", "#ec4899", "#84cc16")


@dataclass(frozen=True, slots=True)
class WeekTotal:
    week: datetime
    items: int
    monthly_cost: Decimal


@dataclass(frozen=True, slots=True)
class ReportData:
    organization: str
    organization_name: str
    generated_at: datetime
    waste_by_type: tuple[WasteByType, ...]
    accounts: tuple[WasteByAccount, ...]
    trend: tuple[TrendPoint, ...]
    savings: tuple[MonthlySavings, ...]
    # Items protection tags exclude: their owners declared them intended, so not in the totals.
    protected: ProtectedWaste = field(default_factory=lambda: ProtectedWaste(0, ZERO))

    @property
    def total_items(self) -> int:
        return sum(row.items for row in self.waste_by_type)

    @property
    def total_monthly_cost(self) -> Decimal:
        return sum((row.monthly_cost for row in self.waste_by_type), ZERO)

    @property
    def total_annual_cost(self) -> Decimal:
        return sum((row.annual_cost for row in self.waste_by_type), ZERO)

    @property
    def estimated_savings(self) -> Decimal:
        return sum((row.estimated_monthly_savings for row in self.savings), ZERO)

    @property
    def actual_savings(self) -> Decimal:
        return sum((row.actual_monthly_savings for row in self.savings), ZERO)

    @property
    def cleanups(self) -> int:
        return sum(row.total_cleanups for row in self.savings)

    def weekly_totals(self) -> list[WeekTotal]:
        items: dict[datetime, int] = defaultdict(int)
        cost: dict[datetime, Decimal] = defaultdict(lambda: ZERO)
        for point in self.trend:
            items[point.week] += point.items
            cost[point.week] += point.monthly_cost
        return [WeekTotal(week, items[week], cost[week]) for week in sorted(items)]

    def as_dict(self) -> dict[str, Any]:
        """Plain values for ``--output json``."""
        return {
            "organization": self.organization,
            "generated_at": self.generated_at,
            "summary": {
                "waste_items": self.total_items,
                "monthly_waste_cost": self.total_monthly_cost,
                "annual_waste_cost": self.total_annual_cost,
                "cleanups": self.cleanups,
                "estimated_monthly_savings": self.estimated_savings,
                "actual_monthly_savings": self.actual_savings,
                "protected_items": self.protected.items,
                "protected_monthly_cost": self.protected.monthly_cost,
            },
            "waste_by_type": [
                {
                    "resource_type": r.resource_type,
                    "items": r.items,
                    "monthly_cost": r.monthly_cost,
                    "annual_cost": r.annual_cost,
                }
                for r in self.waste_by_type
            ],
            "accounts": [
                {
                    "account_id": a.account_id,
                    "account_name": a.account_name,
                    "items": a.items,
                    "monthly_cost": a.monthly_cost,
                    "last_scan_at": a.last_scan_at,
                }
                for a in self.accounts
            ],
            "waste_trend": [
                {
                    "week": p.week,
                    "resource_type": p.resource_type,
                    "items": p.items,
                    "monthly_cost": p.monthly_cost,
                }
                for p in self.trend
            ],
            "savings": [
                {
                    "month": s.month,
                    "total_cleanups": s.total_cleanups,
                    "successful_cleanups": s.successful_cleanups,
                    "failed_cleanups": s.failed_cleanups,
                    "estimated_monthly_savings": s.estimated_monthly_savings,
                    "actual_monthly_savings": s.actual_monthly_savings,
                }
                for s in self.savings
            ],
        }


def build_report(
    url: str,
    organization_slug: str,
    *,
    now: datetime | None = None,
    weeks: int = 12,
    months: int = 12,
) -> ReportData:
    """Read the organization's report from the database at ``url``."""
    now = now or domain.utcnow()
    organization = Store(url).organization(organization_slug)
    if organization is None:
        raise domain.InvalidInput(
            f"no organization {organization_slug!r} has been scanned yet; run `cloudsweep scan` first"
        )
    reading = ReportingStore(url)
    week_start = (now - timedelta(days=now.weekday() + 7 * (weeks - 1))).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    month_start = _months_back(now, months - 1)
    return ReportData(
        organization=organization.slug,
        organization_name=organization.name,
        generated_at=now,
        waste_by_type=tuple(reading.waste_by_type(organization.id)),
        accounts=tuple(reading.waste_by_account(organization.id)),
        trend=tuple(reading.trend(organization.id, week_start)),
        savings=tuple(reading.savings(organization.id, month_start)),
        protected=reading.protected_waste(organization.id),
    )


def _months_back(now: datetime, months: int) -> datetime:
    index = now.year * 12 + now.month - 1 - months
    return now.replace(
        year=index // 12, month=index % 12 + 1, day=1, hour=0, minute=0, second=0, microsecond=0
    )


# --- HTML -------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def money(value: Decimal) -> str:
    return f"${value:,.2f}"


def _short_money(value: float) -> str:
    if value >= 1_000_000:
        return f"${value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"${value / 1000:.0f}k"
    if value >= 1000:
        return f"${value / 1000:.1f}k"
    return f"${value:,.0f}" if value >= 10 or value == 0 else f"${value:,.2f}"


def _nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``value``."""
    if value <= 0:
        return 1.0
    power: float = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return 10.0 * power


def _colors(types: Sequence[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted(types))}


def _empty_chart(message: str) -> str:
    return (
        '<svg class="chart empty" viewBox="0 0 640 120" role="img" '
        f'aria-label="{_e(message)}"><text x="320" y="64" text-anchor="middle">{_e(message)}</text>'
        "</svg>"
    )


def bar_chart(rows: Sequence[WasteByType], colors: dict[str, str]) -> str:
    """Horizontal bars: monthly waste cost per resource type."""
    if not rows:
        return _empty_chart("No waste found: nothing to chart")
    width, label_w, right_pad, bar_h, gap, top = 640, 150, 110, 26, 12, 10
    height = top + len(rows) * (bar_h + gap) + 24
    top_value = _nice_max(float(max(r.monthly_cost for r in rows)))
    plot_w = width - label_w - right_pad
    parts = [
        f'<svg class="chart" id="chart-waste-by-type" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="Monthly waste cost by resource type">'
    ]
    for i in range(5):
        x = label_w + plot_w * i / 4
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 20}"/>'
            f'<text class="axis" x="{x:.1f}" y="{height - 6}" text-anchor="middle">'
            f"{_e(_short_money(top_value * i / 4))}</text>"
        )
    for index, row in enumerate(rows):
        y = top + index * (bar_h + gap)
        w = max(2.0, plot_w * float(row.monthly_cost) / top_value)
        parts.append(
            f'<text class="label" x="{label_w - 10}" y="{y + bar_h / 2 + 5:.1f}" '
            f'text-anchor="end">{_e(row.resource_type)}</text>'
            f'<rect class="bar" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="4" '
            f'fill="{colors.get(row.resource_type, PALETTE[0])}">'
            f"<title>{_e(row.resource_type)}: {_e(money(row.monthly_cost))}/month, "
            f"{row.items} items</title></rect>"
            f'<text class="value" x="{label_w + w + 8:.1f}" y="{y + bar_h / 2 + 5:.1f}">'
            f"{_e(money(row.monthly_cost))} · {row.items}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(data: ReportData, colors: dict[str, str]) -> str:
    """Weekly waste cost: the total (bold) and one line per resource type."""
    totals = data.weekly_totals()
    if not totals:
        return _empty_chart("No weekly history yet: trends appear after scans are recorded")
    weeks = [t.week for t in totals]
    width, height, left, right, top, bottom = 640, 280, 64, 20, 16, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(float(max(t.monthly_cost for t in totals)))

    def x_of(week: datetime) -> float:
        if len(weeks) == 1:
            return left + plot_w / 2
        return left + plot_w * weeks.index(week) / (len(weeks) - 1)

    def y_of(value: Decimal) -> float:
        return top + plot_h - plot_h * float(value) / top_value

    parts = [
        f'<svg class="chart" id="chart-waste-trend" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="Weekly waste cost trend">'
    ]
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_e(_short_money(top_value * i / 4))}</text>"
        )
    step = max(1, math.ceil(len(weeks) / 8))
    for index, week in enumerate(weeks):
        if index % step == 0 or index == len(weeks) - 1:
            parts.append(
                f'<text class="axis" x="{x_of(week):.1f}" y="{height - bottom + 18}" '
                f'text-anchor="middle">{_e(week.strftime("%b %d"))}</text>'
            )
    by_type: dict[str, list[TrendPoint]] = defaultdict(list)
    for point in data.trend:
        by_type[point.resource_type].append(point)
    for name in sorted(by_type):
        points = " ".join(f"{x_of(p.week):.1f},{y_of(p.monthly_cost):.1f}" for p in by_type[name])
        parts.append(
            f'<polyline class="series" fill="none" stroke="{colors.get(name, PALETTE[0])}" '
            f'stroke-width="2" points="{points}"><title>{_e(name)}</title></polyline>'
        )
    total_points = " ".join(f"{x_of(t.week):.1f},{y_of(t.monthly_cost):.1f}" for t in totals)
    parts.append(
        f'<polyline class="total" fill="none" stroke="#111827" stroke-width="3" '
        f'points="{total_points}"/>'
    )
    for t in totals:
        parts.append(
            f'<circle cx="{x_of(t.week):.1f}" cy="{y_of(t.monthly_cost):.1f}" r="4" fill="#111827">'
            f"<title>week of {_e(t.week.strftime('%Y-%m-%d'))}: {_e(money(t.monthly_cost))}/month, "
            f"{t.items} items</title></circle>"
        )
    legend_x = left
    legend_y = height - 10
    for name in ["total", *sorted(by_type)]:
        color = "#111827" if name == "total" else colors.get(name, PALETTE[0])
        parts.append(
            f'<rect x="{legend_x}" y="{legend_y - 9}" width="12" height="12" rx="2" fill="{color}"/>'
            f'<text class="legend" x="{legend_x + 16}" y="{legend_y + 1}">{_e(name)}</text>'
        )
        legend_x += 28 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def savings_chart(rows: Sequence[MonthlySavings]) -> str:
    """Grouped bars per month: estimated and confirmed (actual) monthly savings of cleanups."""
    if not rows:
        return _empty_chart("No cleanups yet: savings appear after real (not dry-run) cleanups")
    # Full-width panel: a wider canvas keeps its text the size of the other charts'.
    width, height, left, right, top, bottom = 1280, 260, 64, 20, 16, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(max(r.estimated_monthly_savings, r.actual_monthly_savings) for r in rows)
    top_value = _nice_max(float(peak))
    slot = plot_w / len(rows)
    bar_w = min(40.0, slot / 3)
    parts = [
        f'<svg class="chart" id="chart-savings" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="Savings per month">'
    ]
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_e(_short_money(top_value * i / 4))}</text>"
        )
    for index, row in enumerate(rows):
        center = left + slot * (index + 0.5)
        for offset, value, color, name in (
            (-bar_w, row.estimated_monthly_savings, "#93c5fd", "estimated"),
            (0.0, row.actual_monthly_savings, "#16a34a", "actual"),
        ):
            h = plot_h * float(value) / top_value
            parts.append(
                f'<rect class="bar" x="{center + offset:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" fill="{color}"><title>'
                f"{_e(row.month.strftime('%B %Y'))} {name}: {_e(money(value))}/month</title></rect>"
            )
        parts.append(
            f'<text class="axis" x="{center:.1f}" y="{height - bottom + 18}" text-anchor="middle">'
            f"{_e(row.month.strftime('%b %Y'))}</text>"
        )
    parts.append(
        f'<rect x="{left}" y="{height - 19}" width="12" height="12" rx="2" fill="#93c5fd"/>'
        f'<text class="legend" x="{left + 16}" y="{height - 9}">estimated</text>'
        f'<rect x="{left + 100}" y="{height - 19}" width="12" height="12" rx="2" fill="#16a34a"/>'
        f'<text class="legend" x="{left + 116}" y="{height - 9}">actual (confirmed)</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #111827; background: #f3f4f6; }
header { background: #0f172a; color: #f8fafc; padding: 20px 32px; }
header h1 { margin: 0; font-size: 22px; }
header p { margin: 4px 0 0; color: #cbd5e1; font-size: 13px; }
main { max-width: 1360px; margin: 0 auto; padding: 24px 32px 48px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 16px; }
.card { background: #fff; border-radius: 10px; padding: 16px 20px; box-shadow: 0 1px 2px #0001; }
.card .label { color: #6b7280; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .figure { font-size: 26px; font-weight: 650; margin-top: 4px; }
.card.waste .figure { color: #b91c1c; } .card.saved .figure { color: #15803d; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px;
         margin-top: 16px; align-items: start; }
section.panel { background: #fff; border-radius: 10px; padding: 16px 20px; margin-top: 16px;
                box-shadow: 0 1px 2px #0001; }
.grid2 section.panel { margin-top: 0; }
section h2 { font-size: 16px; margin: 0 0 12px; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart.empty { max-width: 640px; margin: 0 auto; }
svg .grid { stroke: #e5e7eb; stroke-width: 1; }
svg text { font: 12px system-ui, sans-serif; fill: #374151; }
svg text.axis { fill: #6b7280; font-size: 11px; }
svg text.value { font-weight: 600; }
svg.empty text { fill: #6b7280; font-size: 14px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #e5e7eb; }
th { color: #6b7280; font-weight: 600; font-size: 12px; text-transform: uppercase; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
footer { color: #6b7280; font-size: 12px; margin-top: 24px; }
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    if not rows:
        return '<p class="none">Nothing yet.</p>'
    head = "".join(
        f'<th class="num">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(data: ReportData) -> str:
    """A self-contained page: summary cards, three SVG charts and the tables behind them."""
    types = {r.resource_type for r in data.waste_by_type} | {p.resource_type for p in data.trend}
    colors = _colors(sorted(types))
    cards = [
        ("waste", "Monthly waste", money(data.total_monthly_cost), "total-monthly-waste"),
        ("waste", "Annual waste", money(data.total_annual_cost), "total-annual-waste"),
        ("", "Waste items", str(data.total_items), "total-items"),
        (
            "",
            "Protected (not counted)",
            f"{money(data.protected.monthly_cost)} in {data.protected.items}",
            "total-protected",
        ),
        ("saved", "Savings (estimated)", money(data.estimated_savings), "total-savings"),
        ("saved", "Savings (confirmed)", money(data.actual_savings), "total-actual-savings"),
    ]
    card_html = "".join(
        f'<div class="card {kind}"><div class="label">{_e(label)}</div>'
        f'<div class="figure" id="{ident}">{_e(value)}</div></div>'
        for kind, label, value, ident in cards
    )
    by_type_table = _table(
        ["Resource type", "Items", "Monthly", "Annual"],
        [
            [r.resource_type, str(r.items), money(r.monthly_cost), money(r.annual_cost)]
            for r in data.waste_by_type
        ],
        {1, 2, 3},
    )
    accounts_table = _table(
        ["Account", "Name", "Items", "Monthly", "Last scan"],
        [
            [
                a.account_id,
                a.account_name or "",
                str(a.items),
                money(a.monthly_cost),
                a.last_scan_at.strftime("%Y-%m-%d %H:%M UTC") if a.last_scan_at else "never",
            ]
            for a in data.accounts
        ],
        {2, 3},
    )
    trend_table = _table(
        ["Week of", "Items", "Monthly cost"],
        [
            [t.week.strftime("%Y-%m-%d"), str(t.items), money(t.monthly_cost)]
            for t in data.weekly_totals()
        ],
        {1, 2},
    )
    savings_table = _table(
        ["Month", "Cleanups", "Succeeded", "Failed", "Estimated", "Confirmed"],
        [
            [
                s.month.strftime("%B %Y"),
                str(s.total_cleanups),
                str(s.successful_cleanups),
                str(s.failed_cleanups),
                money(s.estimated_monthly_savings),
                money(s.actual_monthly_savings),
            ]
            for s in data.savings
        ],
        {1, 2, 3, 4, 5},
    )
    title = f"CloudSweep report: {data.organization_name}"
    generated = data.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header><h1>{_e(title)}</h1>
<p>Organization <strong>{_e(data.organization)}</strong> · generated {_e(generated)} ·
waste still out there, weekly trend and savings of real cleanups</p></header>
<main>
<div class="cards">{card_html}</div>
<div class="grid2">
<section class="panel"><h2>Waste by resource type ($ per month · items)</h2>
{bar_chart(data.waste_by_type, colors)}</section>
<section class="panel"><h2>Weekly waste trend ($ per month)</h2>
{line_chart(data, colors)}</section>
</div>
<section class="panel"><h2>Savings per month</h2>
{savings_chart(data.savings)}</section>
<div class="grid2">
<section class="panel"><h2>Waste by resource type</h2>{by_type_table}</section>
<section class="panel"><h2>Accounts</h2>{accounts_table}</section>
<section class="panel"><h2>Weekly totals</h2>{trend_table}</section>
<section class="panel"><h2>Cleanups and savings</h2>{savings_table}</section>
</div>
<footer>Monthly figures are what the resources cost per month at list prices. Savings count real
cleanups only (no dry runs, no rollbacks); "confirmed" savings are those a later scan verified.
</footer>
</main>
</body>
</html>
"""
