"""Elastic IPs associated with nothing: every public IPv4 address is billed by the hour.

Registered in ``detectors/__init__.py``; run by the scan run for each account and region.
"""

from __future__ import annotations

from collections.abc import Iterator

from cloudsweep.detectors import base, register
from cloudsweep.detectors.context import RegionContext
from cloudsweep.domain import Finding, RiskLevel


class ElasticIpParameters(base.DetectorParameters):
    pass


@register
class ElasticIpDetector(base.Detector[ElasticIpParameters]):
    """Elastic IP addresses with no association (no instance, no network interface).

    Example ScanSchedule entry::

        detectors:
          elastic-ip: {protection_tags: ["cloudsweep.io/protect", "allowlisted"]}

    AWS does not report when an address was allocated, so there is no recently-created check and
    ``min_age_days`` is not used. Addresses managed by an AWS service (``ServiceManaged``) are
    skipped: the service releases them.

    Scoring: confidence 90 (an association is definitive evidence of use); risk LOW (a released
    address cannot be got back, which matters if partners allow-list it: tag such addresses),
    HIGH with a protection tag.
    """

    name = "elastic-ip"
    resource_type = "elastic-ip"
    permissions = ("ec2:DescribeAddresses",)
    Parameters = ElasticIpParameters

    def detect(self, ctx: RegionContext, params: ElasticIpParameters) -> Iterator[Finding]:
        for address in ctx.inventory.addresses():
            if (
                address.get("AssociationId")
                or address.get("InstanceId")
                or address.get("NetworkInterfaceId")
                or address.get("ServiceManaged")
            ):
                continue
            allocation_id = address.get("AllocationId") or address.get("PublicIp", "")
            public_ip = address.get("PublicIp", "")
            tags = base.tag_map(address.get("Tags"))
            checks = (base.protection_check(tags, params.protection_tags),)
            cost, unknown = base.priced(ctx.prices.public_ipv4_monthly, ctx.region)
            yield Finding(
                resource_type=self.resource_type,
                resource_id=allocation_id,
                region=ctx.region,
                monthly_cost=cost,
                confidence=90,
                risk=base.risk_from(checks, RiskLevel.LOW),
                resource_arn=ctx.arn("ec2", f"elastic-ip/{allocation_id}"),
                availability_zone=None,
                evidence=(
                    f"{public_ip} is associated with no instance or network interface",
                    base.cost_evidence(cost, unknown, "public IPv4 address"),
                ),
                safety_checks=checks,
                tags=tags,
                created_at=None,
                details={
                    "public_ip": public_ip,
                    "domain": address.get("Domain"),
                    "network_border_group": address.get("NetworkBorderGroup"),
                    **base.pricing_details(ctx, cost, unknown, public_ipv4_addresses=1),
                },
            )
