"""A snapshot's price says what it bounds: incremental billing makes the standard tier's an upper bound."""

from __future__ import annotations

from decimal import Decimal

from cloudsweep.pricing import load_catalog, snapshots


def test_a_standard_tier_snapshot_price_is_an_upper_bound_and_says_so() -> None:
    price = snapshots.snapshot_price(
        load_catalog(), "us-east-1", 100, "standard", size_basis="full snapshot size"
    )
    assert price.monthly == Decimal("5")  # 100 GiB x 0.05
    assert price.upper_bound
    assert price.statement.startswith("upper bound: full snapshot size counts every block")
    assert "incrementally" in price.statement


def test_an_archived_snapshot_price_is_exact() -> None:
    price = snapshots.snapshot_price(
        load_catalog(), "us-east-1", 100, "archive", size_basis="full snapshot size"
    )
    assert price.monthly == Decimal("1.25")  # 100 GiB x 0.0125
    assert not price.upper_bound
    assert price.statement.startswith("exact: archived snapshots are full copies")
