"""``cloudsweep send-reports``: deliver the weekly or monthly report to every organization's users.

Meant for a Kubernetes CronJob (or cron) that runs it once a week and once a month, beside the
operator; each user's channels and opt-ins (notification_settings) decide who receives what.
"""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from cloudsweep import domain
from cloudsweep.cli import output


class PeriodChoice(enum.StrEnum):
    """cloudsweep.notify.Period's values, without importing the notifier before the command runs
    (tests/cli/test_startup.py checks that they are the same)."""

    WEEKLY = "weekly"
    MONTHLY = "monthly"


def send_reports(
    period: Annotated[PeriodChoice, typer.Option("--period", help="weekly or monthly")],
    organizations: Annotated[
        list[str] | None, typer.Option("--org", help="Only these organizations (default: all).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for deliveries.")] = 120.0,
) -> None:
    """Send the weekly or monthly savings and waste report."""
    from cloudsweep.notify import Notifier, Period
    from cloudsweep.store import Store, database

    chosen = Period(period.value)
    handle = database.open_database()
    try:
        store = Store(handle.url)
        slugs = organizations or store.organization_slugs()
        for slug in slugs:
            if store.organization(slug) is None:
                raise domain.InvalidInput(f"no organization {slug!r}")
        notifier = Notifier(handle.url)
        for slug in slugs:
            notifier.send_report(slug, chosen)
        finished = notifier.flush(timeout)
        notifier.close(timeout=5)
        stats = notifier.stats
    finally:
        handle.close()
    output.console.print(f"{chosen.value} reports for {len(slugs)} organizations: {stats}")
    if not finished:
        output.errors.print(
            "[yellow]warning:[/yellow] some deliveries were still running at the time-out",
            markup=True,
        )
        raise typer.Exit(1)
