"""What an EBS snapshot's price means: an upper bound in the standard tier, exact when archived.

Called by whoever prices a snapshot finding (the ``ebs-snapshot`` detector, reports) to say, in
the finding, what the figure bounds. A snapshot in the standard tier is incremental: AWS bills
the blocks it holds that no other snapshot of the same volume already stores, which the EC2 API
does not report; its full size (``FullSnapshotSizeInBytes``), or its volume's size, counts every
block, so the price computed from it is an upper bound, and deleting one snapshot of a chain can
save less. An archived snapshot is a full copy, billed for every block.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from cloudsweep.pricing.catalog import PriceCatalog

STANDARD = "standard"
ARCHIVE = "archive"


@dataclass(frozen=True, slots=True)
class SnapshotPrice:
    """A snapshot's monthly price and what it is: exact, or an upper bound, and why."""

    monthly: Decimal
    upper_bound: bool
    statement: str


def snapshot_price(
    prices: PriceCatalog, region: str, size_gib: int | Decimal, tier: str, *, size_basis: str
) -> SnapshotPrice:
    """Price ``size_gib`` GiB of snapshot in ``tier``; ``size_basis`` says where the size came
    from ("full snapshot size", "source volume size") and goes into the statement."""
    monthly = prices.ebs_snapshot_monthly(region, size_gib, tier)
    return SnapshotPrice(monthly, *snapshot_cost_statement(tier, size_basis))


def snapshot_cost_statement(tier: str, size_basis: str) -> tuple[bool, str]:
    """Whether a snapshot price computed from ``size_basis`` is an upper bound, and the sentence
    a finding shows about it."""
    if tier == ARCHIVE:
        return (
            False,
            f"exact: archived snapshots are full copies, billed for every block ({size_basis})",
        )
    return True, (
        f"upper bound: {size_basis} counts every block, but standard-tier snapshots are billed "
        "incrementally, only for blocks no other snapshot of the volume already stores"
    )
