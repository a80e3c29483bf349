"""``cloudsweep findings``: list stored findings with filters, as a table, JSON or CSV."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import typer

from cloudsweep import domain
from cloudsweep.cli import output


def _money_option(value: str | None, option: str = "--min-cost") -> Decimal | None:
    """A money option, through the one parser of money (plain decimals only)."""
    if value is None:
        return None
    try:
        return domain.parse_money(value)
    except domain.InvalidInput as error:
        raise domain.InvalidInput(f"{option}: {error}") from None


def findings(
    organization: Annotated[
        str, typer.Option("--org", help="The organization (tenant).")
    ] = "default",
    account: Annotated[
        str | None, typer.Option("--account", help="12-digit AWS account ID.")
    ] = None,
    resource_type: Annotated[
        str | None, typer.Option("--type", help="Resource type, e.g. ebs-volume.")
    ] = None,
    region: Annotated[str | None, typer.Option("--region")] = None,
    min_cost: Annotated[
        str | None,
        typer.Option("--min-cost", help="Only items costing at least this much a month (USD)."),
    ] = None,
    status: Annotated[
        domain.CleanupStatus | None, typer.Option("--status", help="Cleanup status.")
    ] = None,
    include_gone: Annotated[
        bool, typer.Option("--all", help="Include items that later scans no longer saw.")
    ] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1)] = None,
    fmt: Annotated[
        output.OutputFormat, typer.Option("--output", "-o", help="table, json or csv")
    ] = (output.OutputFormat.TABLE),
    wide: Annotated[
        bool, typer.Option("--wide", help="More columns: why, safety checks, account.")
    ] = False,
) -> None:
    """List stored findings, most expensive first. Protected items are shown, not counted."""
    from cloudsweep.cli import finding_table
    from cloudsweep.store import FindingFilter, Store, database

    if account is not None:
        domain.validate_account_id(account)
    selection = FindingFilter(
        organization_slug=organization,
        account_id=account,
        resource_type=resource_type,
        region=region,
        min_monthly_cost=_money_option(min_cost),
        cleanup_status=status.value if status else None,
        include_gone=include_gone,
        limit=limit,
    )
    handle = database.open_database()
    try:
        store = Store(handle.url)
        if store.organization(organization) is None:
            raise domain.InvalidInput(
                f"no organization {organization!r} has been scanned yet; "
                "run `cloudsweep scan` first (the demo's organization is 'demo')"
            )
        items = store.findings(selection)
    finally:
        handle.close()
    finding_table.show(items, fmt, wide=wide)
