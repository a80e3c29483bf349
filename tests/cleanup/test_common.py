"""The helpers every cleanup action shares; above all, re-checks are never laxer than the scan."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from cloudsweep.cleanup import CleanupItem, common
from cloudsweep.pricing import PriceCatalog

KEYS = ("cloudsweep.io/protect", "do-not-delete")


@pytest.mark.parametrize(
    ("tags", "protected"),
    [
        ({"do-not-delete": "true"}, True),
        ({"Do-Not-Delete": "yes"}, True),  # keys match whatever their case
        ({"CLOUDSWEEP.IO/PROTECT": ""}, True),  # present with no value protects
        ({"do-not-delete": "false"}, False),
        ({"do-not-delete": " Off "}, False),
        ({"team": "web"}, False),
    ],
)
def test_protection_tags_are_judged_as_the_detectors_judge_them(
    tags: dict[str, str], protected: bool
) -> None:
    assert (common.protected_by(tags, KEYS) is not None) is protected


# --- savings ----------------------------------------------------------------------------------


def _item(region: str, cost: str, pricing: dict[str, object]) -> CleanupItem:
    return CleanupItem(
        waste_item_id=uuid.uuid4(),
        account_id="123456789012",
        region=region,
        resource_type="rds-instance",
        resource_id="db-1",
        resource_arn=None,
        availability_zone=None,
        monthly_cost=Decimal(cost),
        resource_details={"pricing": pricing},
    )


def test_savings_keeping_subtract_the_kept_copy_at_the_scanned_size() -> None:
    item = _item("us-east-1", "30.00", {"allocated_storage_gib": 100})
    # 100 GiB of RDS snapshot storage at 0.095 USD/GB-month in us-east-1
    assert common.savings_keeping(
        item, "allocated_storage_gib", PriceCatalog.rds_snapshot_monthly
    ) == Decimal("20.50")
    # A copy dearer than the item saves nothing, never a negative amount.
    cheap = _item("us-east-1", "5.00", {"allocated_storage_gib": 100})
    assert common.savings_keeping(
        cheap, "allocated_storage_gib", PriceCatalog.rds_snapshot_monthly
    ) == Decimal("0.00")


def test_savings_keeping_without_a_size_or_a_price_falls_back() -> None:
    unsized = _item("us-east-1", "30.00", {})
    unknown_region = _item("cn-north-1", "30.00", {"allocated_storage_gib": 100})
    for item in (unsized, unknown_region):
        assert common.savings_keeping(
            item, "allocated_storage_gib", PriceCatalog.rds_snapshot_monthly
        ) == Decimal("30.00")
        assert common.savings_keeping(
            item, "allocated_storage_gib", PriceCatalog.rds_snapshot_monthly, unpriced=Decimal(0)
        ) == Decimal(0)
