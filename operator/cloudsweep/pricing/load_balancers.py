"""What a load balancer's bill shows: its hourly charge and the public IPv4 addresses it holds.

Called by the load balancer detector (``detectors/load_balancer.py``) to price a finding. An
internet-facing load balancer has a node, and with it a public IPv4 address, in each of its
Availability Zones; since February 2024 AWS bills every public IPv4 address by the hour, whoever
holds it, so removing the load balancer also saves those addresses.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

INTERNET_FACING = "internet-facing"
# ELBv2 IpAddressType whose nodes hold no public IPv4 address (IPv6 only on the internet side).
_NO_PUBLIC_IPV4 = frozenset({"dualstack-without-public-ipv4"})
# Gateway load balancers sit inside a VPC, in front of appliances: never internet-facing.
_TYPES_WITHOUT_PUBLIC_ADDRESSES = frozenset({"gateway"})


class LoadBalancerPrices(Protocol):
    """The part of ``PriceCatalog`` that prices a load balancer."""

    def load_balancer_monthly(self, region: str, lb_type: str) -> Decimal: ...

    def public_ipv4_monthly(self, region: str) -> Decimal: ...


def public_ipv4_addresses(
    lb_type: str, scheme: str | None, zone_count: int, ip_address_type: str | None = None
) -> int:
    """How many public IPv4 addresses a load balancer holds: one per Availability Zone when it
    is internet-facing with IPv4 on the internet side, none otherwise."""
    if zone_count < 0:
        raise ValueError(f"zone_count must not be negative, got {zone_count}")
    if (
        scheme != INTERNET_FACING
        or lb_type in _TYPES_WITHOUT_PUBLIC_ADDRESSES
        or ip_address_type in _NO_PUBLIC_IPV4
    ):
        return 0
    return zone_count


def load_balancer_bill_monthly(
    prices: LoadBalancerPrices,
    region: str,
    lb_type: str,
    *,
    scheme: str | None,
    zone_count: int,
    ip_address_type: str | None = None,
) -> Decimal:
    """Monthly price of a load balancer as its bill shows it: hourly charge plus its public
    IPv4 addresses (capacity units excluded: an idle load balancer uses next to none)."""
    addresses = public_ipv4_addresses(lb_type, scheme, zone_count, ip_address_type)
    total = prices.load_balancer_monthly(region, lb_type)
    if addresses:
        total += prices.public_ipv4_monthly(region) * addresses
    return total
