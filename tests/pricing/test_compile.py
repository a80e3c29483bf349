"""Compiling the bundled catalog from sourced prices: published where found, estimated and said how."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cloudsweep.pricing import build, catalog, compile
from cloudsweep.pricing.catalog import ESTIMATED, PUBLISHED, InvalidCatalog, load_catalog


def _base() -> dict[str, Any]:
    region = {
        "ebs_volumes": {"gp3": {"gb_month": "0.08"}, "gp2": {"gb_month": "0.1"}},
        "ebs_snapshots": {"standard": "0.05"},
        "public_ipv4_hourly": "0.005",
        "load_balancers_hourly": {"application": "0.0225"},
        "rds_instances": {
            "PostgreSQL": {
                "db.t3.micro": {"single_az": "0.018", "multi_az": "0.036"},
                "db.m5.large": {"single_az": "0.178", "multi_az": "0.356"},
            }
        },
        "rds_storage": {},
    }
    return {
        "regions": {
            code: {"location": code, "basis": "old", **copy.deepcopy(region)}
            for code in ("us-east-1", "ap-east-9", "eu-far-1", "xx-none-1")
        }
    }


def _sourced(prices: list[tuple[str, str, str]]) -> compile.SourcedDoc:
    return {
        "catalog_version": "2026-12-04",
        "catalog_source": "test",
        "base_estimate": "estimated: us-east-1 as compiled",
        "regional_multipliers": {
            "us-east-1": "1",
            "ap-east-9": "1.20",
            "eu-far-1": "1.10",
            "xx-none-1": "1.30",
        },
        "sources": {"bill": {"title": "a bill", "where": "here", "date": "2026-01-01"}},
        "prices": [{"region": r, "path": p, "usd": usd, "source": "bill"} for r, p, usd in prices],
    }


def _compiled(prices: list[tuple[str, str, str]], tmp_path: Path) -> catalog.PriceCatalog:
    doc = compile.compile_catalog(_base(), _sourced(prices), version="2026-12-04", source="test")
    return load_catalog(build.write_catalog(doc, tmp_path / "catalog.json"))


def test_sourced_prices_are_published_and_their_kind_is_scaled_by_their_ratio(
    tmp_path: Path,
) -> None:
    prices = _compiled(
        [
            ("ap-east-9", "ebs_volumes/gp3/gb_month", "0.096"),  # x 1.2
            ("ap-east-9", "rds_instances/PostgreSQL/db.t3.micro/single_az", "0.0283"),
            ("us-east-1", "public_ipv4_hourly", "0.005"),
            ("ap-east-9", "public_ipv4_hourly", "0.005"),
            ("eu-far-1", "public_ipv4_hourly", "0.005"),
        ],
        tmp_path,
    )
    gp3 = prices.figure_basis("ap-east-9", "ebs_volumes/gp3/gb_month")
    assert gp3.kind == PUBLISHED and gp3.source is not None and gp3.source.date == "2026-01-01"
    gp2 = prices.figure_basis("ap-east-9", "ebs_volumes/gp2/gb_month")
    assert gp2.kind == ESTIMATED and "us-east-1 x 1.2, the median ratio of the 1 EBS" in gp2.how
    assert prices.ebs_volume_monthly("ap-east-9", "gp2", 100) == Decimal("12")
    # Multi-AZ stays twice Single-AZ (the standby), whatever the rounding: 0.178 x 1.5722
    # rounds to 0.2799, 0.356 x 1.5722 to 0.5597, not 0.5598.
    for cls in ("db.t3.micro", "db.m5.large"):
        assert prices.rds_instance_monthly("ap-east-9", cls, "postgres", True) == (
            2 * prices.rds_instance_monthly("ap-east-9", cls, "postgres", False)
        )
    # No snapshot price sourced there: the general multiplier, said as such.
    snap = prices.figure_basis("ap-east-9", "ebs_snapshots/standard")
    assert "general multiplier" in snap.how and "no EBS snapshot price" in snap.how
    assert prices.ebs_snapshot_monthly("ap-east-9", 100) == Decimal("6")
    # Public IPv4: the same in every region where it was sourced (3), so not scaled elsewhere.
    ipv4 = prices.figure_basis("xx-none-1", "public_ipv4_hourly")
    assert "which every region where a public IPv4 price was sourced" in ipv4.how
    assert prices.public_ipv4_monthly("xx-none-1") == Decimal("3.65")
    # us-east-1's own unsourced figures say how they were obtained.
    assert prices.figure_basis("us-east-1", "ebs_volumes/gp2/gb_month").how == (
        "estimated: us-east-1 as compiled"
    )


def test_estimates_claim_four_significant_digits_at_most() -> None:
    assert compile.significant(Decimal("0.0131456")) == Decimal("0.01315")
    assert compile.significant(Decimal("123.456")) == Decimal("123.5")
    assert compile.significant(Decimal(0)) == Decimal(0)


def test_a_sourced_price_naming_no_source_is_refused() -> None:
    sourced = _sourced([])
    sourced["prices"].append(
        {"region": "ap-east-9", "path": "public_ipv4_hourly", "usd": "0.005", "source": "nowhere"}
    )
    with pytest.raises(InvalidCatalog, match="unknown source"):
        compile.compile_catalog(_base(), sourced, version="v", source="s")


def test_the_bundled_catalog_is_what_the_sourced_prices_compile_to() -> None:
    """Guards hand edits: change sourced_prices.json and run `python -m cloudsweep.pricing.compile`."""
    bundled_path = catalog.bundled_catalog_path()
    bundled = json.loads(bundled_path.read_text())
    sourced = compile.load_sourced(bundled_path.parent / compile.SOURCED_PRICES_FILE)
    compiled = compile.compile_catalog(
        bundled,
        sourced,
        version=sourced["catalog_version"],
        source=sourced["catalog_source"],
    )
    assert build.dumps_catalog(compiled) == bundled_path.read_text()


# --- the loader refuses per-figure bases it cannot honour ------------------------------------------


def _doc_with(**region_extra: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "version": "2026-01-01",
        "source": "test",
        "currency": "USD",
        "sources": {"bill": {"title": "a bill", "where": "here", "date": "2026-01-01"}},
        "regions": {
            "us-east-1": {
                "location": "US East (N. Virginia)",
                "basis": "mixed",
                "ebs_volumes": {"gp2": {"gb_month": "0.1"}},
                "ebs_snapshots": {},
                "load_balancers_hourly": {},
                "rds_instances": {},
                "rds_storage": {},
                **region_extra,
            }
        },
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"figure_sources": {"ebs_volumes/gp2/gb_month": "nowhere"}}, "names no source"),
        ({"figure_sources": {"ebs_volumes/gp9/gb_month": "bill"}}, "names no figure"),
        ({"estimates": {"nat_gateway": "estimated: somehow"}}, "names no figure"),
        ({"estimates": {"ebs_volumes": ""}}, "non-empty string"),
    ],
)
def test_per_figure_bases_must_name_real_figures_and_sources(
    extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidCatalog, match=message):
        catalog.catalog_from_document(_doc_with(**extra))


def test_a_source_without_a_date_is_refused() -> None:
    doc = _doc_with()
    del doc["sources"]["bill"]["date"]
    with pytest.raises(InvalidCatalog, match=r"sources\.bill\.date"):
        catalog.catalog_from_document(doc)
