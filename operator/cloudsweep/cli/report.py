"""``cloudsweep report``: the savings and waste summary as tables or JSON, and ``--html`` a page.

Registered in ``cli/__init__.py`` as ``app.command()(report.report)``. The figures come from
``cloudsweep.reports``; ``--refresh`` refreshes the materialized views first (the CLI's scans and
the operator's daily retention refresh them too).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cloudsweep.cli import output

if TYPE_CHECKING:  # imported by the command itself: `cloudsweep --help` stays light
    from cloudsweep import reports


class ReportFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


def report(
    organization: Annotated[
        str, typer.Option("--org", help="The organization (tenant).")
    ] = "default",
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write a self-contained HTML page with charts to this file.",
            dir_okay=False,
            writable=True,
        ),
    ] = None,
    fmt: Annotated[ReportFormat, typer.Option("--output", "-o", help="table or json")] = (
        ReportFormat.TABLE
    ),
    weeks: Annotated[int, typer.Option("--weeks", min=1, max=260, help="Weeks of trend.")] = 12,
    months: Annotated[int, typer.Option("--months", min=1, max=60, help="Months of savings.")] = 12,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Refresh the materialized views first.")
    ] = False,
) -> None:
    """Print the waste and savings summary; --html FILE writes a page with charts."""
    from cloudsweep import reports
    from cloudsweep.store import Store, database

    handle = database.open_database()
    try:
        if refresh:
            Store(handle.url).refresh_views()
        data = reports.build_report(handle.url, organization, weeks=weeks, months=months)
    finally:
        handle.close()
    if html is not None:
        html.write_text(reports.render_html(data), encoding="utf-8")
    if fmt is ReportFormat.JSON:
        payload = data.as_dict()
        if html is not None:
            payload["html"] = str(html)
        output.print_json(payload)
        return
    _print_tables(data)
    if html is not None:
        output.errors.print(f"wrote {html}")


def _print_tables(data: reports.ReportData) -> None:
    from cloudsweep import reports

    summary = [
        {"figure": "waste items", "value": str(data.total_items)},
        {"figure": "monthly waste", "value": reports.money(data.total_monthly_cost)},
        {"figure": "annual waste", "value": reports.money(data.total_annual_cost)},
        {
            "figure": "protected (not counted)",
            "value": f"{reports.money(data.protected.monthly_cost)} in {data.protected.items} items",
        },
        {"figure": "real cleanups", "value": str(data.cleanups)},
        {"figure": "savings (estimated, $/month)", "value": reports.money(data.estimated_savings)},
        {"figure": "savings (confirmed, $/month)", "value": reports.money(data.actual_savings)},
    ]
    output.render(
        summary,
        columns=["figure", "value"],
        fmt=output.OutputFormat.TABLE,
        title=f"CloudSweep report of {data.organization}",
        right_aligned=["value"],
    )
    output.render(
        [
            {
                "resource_type": r.resource_type,
                "items": r.items,
                "monthly_cost": r.monthly_cost,
                "annual_cost": r.annual_cost,
            }
            for r in data.waste_by_type
        ],
        columns=["resource_type", "items", "monthly_cost", "annual_cost"],
        fmt=output.OutputFormat.TABLE,
        title="Waste by resource type",
        right_aligned=["items", "monthly_cost", "annual_cost"],
    )
    output.render(
        [
            {"week": t.week.strftime("%Y-%m-%d"), "items": t.items, "monthly_cost": t.monthly_cost}
            for t in data.weekly_totals()
        ],
        columns=["week", "items", "monthly_cost"],
        fmt=output.OutputFormat.TABLE,
        title="Weekly waste trend",
        right_aligned=["items", "monthly_cost"],
    )
    output.render(
        [
            {
                "month": s.month.strftime("%Y-%m"),
                "cleanups": s.total_cleanups,
                "succeeded": s.successful_cleanups,
                "failed": s.failed_cleanups,
                "estimated_savings": s.estimated_monthly_savings,
                "actual_savings": s.actual_monthly_savings,
            }
            for s in data.savings
        ],
        columns=["month", "cleanups", "succeeded", "failed", "estimated_savings", "actual_savings"],
        fmt=output.OutputFormat.TABLE,
        title="Savings per month",
        right_aligned=["cleanups", "succeeded", "failed", "estimated_savings", "actual_savings"],
    )
