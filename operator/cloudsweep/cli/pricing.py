"""``cloudsweep pricing``: show the price catalog in use, rebuild it from the AWS Price List API."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cloudsweep.cli import output

# The commands import the catalog, boto3 and the settings themselves: `cloudsweep --help` stays light.
if TYPE_CHECKING:
    from cloudsweep.pricing.catalog import PriceCatalog

app = typer.Typer(help="The price catalog that findings are priced with.", no_args_is_help=True)


@app.command()
def show(
    region: Annotated[
        str | None,
        typer.Option("--region", "-r", help="List this region's figures, each with its basis."),
    ] = None,
    fmt: Annotated[output.OutputFormat, typer.Option("--output", "-o")] = output.OutputFormat.TABLE,
) -> None:
    """Show the catalog in use: version, source, and how each region's figures were obtained.

    With --region, every figure of that region with its unit, its basis (published from a dated
    source, or estimated and how) and the source's date.
    """
    from cloudsweep.pricing import active
    from cloudsweep.settings import get_settings

    settings = get_settings()
    path = active.active_catalog_path(settings)
    catalog = active.active_catalog(settings)
    if region is not None:
        _show_region(catalog, region, fmt)
        return
    rows = [_region_row(catalog, code) for code in sorted(catalog.regions)]
    if fmt is output.OutputFormat.JSON:
        output.print_json(
            {
                "file": str(path) if path else "bundled",
                "version": catalog.version,
                "source": catalog.source,
                "regions": rows,
            }
        )
        return
    output.console.print(
        f"catalog: {path or 'bundled with CloudSweep'}\nversion: {catalog.version}\nsource: {catalog.source}"
    )
    output.render(rows, columns=["region", "published", "estimated", "basis"], fmt=fmt)


def _region_row(catalog: PriceCatalog, code: str) -> dict[str, object]:
    from cloudsweep.pricing.catalog import PUBLISHED

    figures = catalog.figures(code)
    published = sum(1 for f in figures if f.basis.kind == PUBLISHED)
    return {
        "region": code,
        "published": published,
        "estimated": len(figures) - published,
        "basis": catalog.basis(code),
    }


def _show_region(catalog: PriceCatalog, region: str, fmt: output.OutputFormat) -> None:
    if region not in catalog.regions:
        output.errors.print(
            f"error: the price catalog {catalog.version} has no region {region!r}; "
            f"it covers: {', '.join(sorted(catalog.regions))}"
        )
        raise typer.Exit(1)
    rows = [
        {
            "figure": figure.path,
            # As the catalog states it: money formatting would round 0.096 to 0.10.
            "usd": format(figure.usd.normalize(), "f"),
            "per": figure.unit,
            "basis": figure.basis.kind,
            "source_date": figure.basis.source.date if figure.basis.source else "",
            "how": figure.basis.source.title if figure.basis.source else figure.basis.how,
            "source": figure.basis.source.where if figure.basis.source else "",
        }
        for figure in catalog.figures(region)
    ]
    if fmt is output.OutputFormat.TABLE:
        prices = catalog.region(region)
        output.console.print(
            f"{region} ({prices.location}), catalog {catalog.version}: {catalog.basis(region)}"
        )
    output.render(
        rows,
        columns=["figure", "usd", "per", "basis", "source_date", "how"],
        fmt=fmt,
        right_aligned=["usd"],
        wrap=["how"],
    )


@app.command()
def refresh(
    destination: Annotated[
        Path | None,
        typer.Option("--to", help="Where to write (default: the data dir, used from then on)."),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="AWS profile with pricing:GetProducts.")
    ] = None,
) -> None:
    """Rebuild the catalog from the AWS Price List API (pricing:GetProducts)."""
    from cloudsweep.aws import pricing_api
    from cloudsweep.aws.base import base_session, pricing_client
    from cloudsweep.pricing import active, refresh_catalog, write_catalog
    from cloudsweep.settings import get_settings

    settings = get_settings()
    client = pricing_client(base_session(profile), settings.aws_endpoint_url)
    price_lists: list[str] = []
    with output.errors.status("reading the AWS Price List API...") as status:
        for service_code, filters in pricing_api.REFRESH_QUERIES:
            status.update(f"reading {service_code} prices ({len(price_lists)} products so far)...")
            price_lists.extend(
                pricing_api.iter_price_lists(client, service_code, [dict(f) for f in filters])
            )
    version = datetime.now(UTC).date().isoformat()
    document = refresh_catalog(price_lists, version=version)
    target = destination or active.refreshed_catalog_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_catalog(document, target)
    output.console.print(f"wrote catalog {version} ({len(price_lists)} products) to {target}")
