"""What a load balancer's bill shows: hourly charge plus one public IPv4 address per zone."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cloudsweep.pricing import load_balancers, load_catalog


@pytest.mark.parametrize(
    ("lb_type", "scheme", "zones", "ip_address_type", "expected"),
    [
        ("application", "internet-facing", 3, "ipv4", 3),
        ("application", "internet-facing", 2, "dualstack", 2),
        ("application", "internet-facing", 2, "dualstack-without-public-ipv4", 0),
        ("network", "internet-facing", 2, None, 2),
        ("classic", "internet-facing", 1, None, 1),
        ("application", "internal", 3, "ipv4", 0),
        ("gateway", "internet-facing", 2, None, 0),
        ("application", None, 2, None, 0),  # no scheme reported: no evidence of an address
    ],
)
def test_public_ipv4_addresses_are_one_per_zone_when_internet_facing(
    lb_type: str, scheme: str | None, zones: int, ip_address_type: str | None, expected: int
) -> None:
    assert load_balancers.public_ipv4_addresses(lb_type, scheme, zones, ip_address_type) == expected


def test_the_bill_adds_the_addresses_to_the_hourly_charge() -> None:
    prices = load_catalog()
    alone = prices.load_balancer_monthly("ap-southeast-1", "application")
    bill = load_balancers.load_balancer_bill_monthly(
        prices, "ap-southeast-1", "application", scheme="internet-facing", zone_count=3
    )
    assert bill == alone + 3 * prices.public_ipv4_monthly("ap-southeast-1")
    # Singapore, from its May 2025 bill: 0.0252 x 730 + 3 x 0.005 x 730 = 29.346.
    assert bill == Decimal("29.346")
    internal = load_balancers.load_balancer_bill_monthly(
        prices, "ap-southeast-1", "application", scheme="internal", zone_count=3
    )
    assert internal == alone


def test_a_negative_zone_count_is_refused() -> None:
    with pytest.raises(ValueError, match="zone_count"):
        load_balancers.public_ipv4_addresses("application", "internet-facing", -1)
