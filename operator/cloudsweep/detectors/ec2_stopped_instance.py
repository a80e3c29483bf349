"""EC2 instances stopped for long: no instance hours, but their EBS volumes and Elastic IPs bill on.

Registered in ``detectors/__init__.py``; run by the scan run for each account and region.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import Field

from cloudsweep.detectors import base, register
from cloudsweep.detectors.context import RegionContext
from cloudsweep.domain import Finding, RiskLevel, SafetyCheck, money, stopped_at

if TYPE_CHECKING:
    from mypy_boto3_ec2.type_defs import InstanceTypeDef

ASG_TAG = "aws:autoscaling:groupName"
STOP_TIME_CHECK = "stop-time-known"
_IOPS_TYPES = frozenset({"io1", "io2", "gp3"})


class Ec2StoppedInstanceParameters(base.DetectorParameters):
    min_stopped_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="Instances stopped at least this many days are reported (30: a stop that "
        "outlasts a billing month is no pause).",
    )


@register
class Ec2StoppedInstanceDetector(base.Detector[Ec2StoppedInstanceParameters]):
    """EC2 instances stopped for at least ``min_stopped_days``, priced by what still bills.

    Example ScanSchedule entry::

        detectors:
          ec2-stopped-instance: {min_stopped_days: 60}

    The stop time comes from ``StateTransitionReason`` (``User initiated (2024-05-01 10:11:12
    GMT)``); the cost is the attached EBS volumes (``ebs_volume_monthly``) plus one public IPv4
    address per associated Elastic IP (``public_ipv4_monthly``). No extra call per instance: the
    volumes and addresses come from the region's shared listings.

    Scoring:

    - stopped for ``min_stopped_days`` or more: confidence 80;
    - stop time not given by AWS: confidence 40 and a failed ``stop-time-known`` check;
    - risk MEDIUM (terminating deletes the root volume; the cleanup action keeps an AMI with
      snapshots of every volume first); HIGH with a protection tag; a failed
      ``auto-scaling-group`` check for instances of an Auto Scaling group.
    """

    name = "ec2-stopped-instance"
    resource_type = "ec2-stopped-instance"
    permissions = ("ec2:DescribeInstances", "ec2:DescribeVolumes", "ec2:DescribeAddresses")
    Parameters = Ec2StoppedInstanceParameters

    def detect(self, ctx: RegionContext, params: Ec2StoppedInstanceParameters) -> Iterator[Finding]:
        stopped: list[tuple[InstanceTypeDef, datetime | None]] = []
        for instance in ctx.inventory.instances():
            if instance.get("State", {}).get("Name") != "stopped":
                continue
            when = stopped_at(instance.get("StateTransitionReason"))
            days = base.age_days(when, ctx.now)
            if days is not None and days < params.min_stopped_days:
                continue
            stopped.append((instance, when))
        if not stopped:
            return
        volumes_by_instance: dict[str, list[Any]] = {}
        for volume in ctx.inventory.volumes():
            for attachment in volume.get("Attachments", []):
                if attachment.get("InstanceId"):
                    volumes_by_instance.setdefault(attachment["InstanceId"], []).append(volume)
        addresses_by_instance: dict[str, list[str]] = {}
        for address in ctx.inventory.addresses():
            if address.get("InstanceId"):
                addresses_by_instance.setdefault(address["InstanceId"], []).append(
                    str(address.get("AllocationId") or address.get("PublicIp"))
                )
        for instance, when in stopped:
            instance_id = instance["InstanceId"]
            yield self._finding(
                ctx,
                params,
                instance,
                when,
                volumes_by_instance.get(instance_id, []),
                addresses_by_instance.get(instance_id, []),
            )

    def _finding(
        self,
        ctx: RegionContext,
        params: Ec2StoppedInstanceParameters,
        instance: InstanceTypeDef,
        when: datetime | None,
        volumes: list[Any],
        addresses: list[str],
    ) -> Finding:
        instance_id = instance["InstanceId"]
        tags = base.tag_map(instance.get("Tags"))
        days = base.age_days(when, ctx.now)
        group = tags.get(ASG_TAG)
        checks = (
            base.protection_check(tags, params.protection_tags),
            base.age_check(instance.get("LaunchTime"), ctx.now, params.min_age_days),
            SafetyCheck(
                STOP_TIME_CHECK,
                when is not None,
                f"stopped {days:.0f} days ago" if days is not None else "AWS gives no stop time",
            ),
            SafetyCheck(
                "auto-scaling-group",
                not group,
                f"in Auto Scaling group {group}" if group else "in no Auto Scaling group",
            ),
        )
        volume_cost = money(0)
        unknown: list[str] = []
        sizes = 0
        for volume in volumes:
            volume_type = str(volume.get("VolumeType", "gp2"))
            price, missing = base.priced(
                ctx.prices.ebs_volume_monthly,
                ctx.region,
                volume_type,
                int(volume.get("Size", 0)),
                volume.get("Iops") if volume_type in _IOPS_TYPES else None,
                volume.get("Throughput") if volume_type == "gp3" else None,
            )
            volume_cost += price
            sizes += int(volume.get("Size", 0))
            if missing:
                unknown.append(missing)
        ip_cost = money(0)
        if addresses:
            price, missing = base.priced(ctx.prices.public_ipv4_monthly, ctx.region)
            ip_cost = money(price * Decimal(len(addresses)))
            if missing:
                unknown.append(missing)
        cost = money(volume_cost + ip_cost)
        unknown_text = "; ".join(unknown) or None
        evidence = [
            f"stopped {days:.0f} days ago (at least {params.min_stopped_days})"
            if days is not None
            else f"stopped; AWS gives no stop time ({instance.get('StateTransitionReason')!r})",
            f"{len(volumes)} EBS volume(s), {sizes} GiB, billed at {volume_cost} USD/month; "
            f"{len(addresses)} Elastic IP(s) at {ip_cost} USD/month",
            base.cost_evidence(cost, unknown_text, "volumes and addresses"),
        ]
        score = 80.0 if when is not None else 40.0
        return Finding(
            resource_type=self.resource_type,
            resource_id=instance_id,
            region=ctx.region,
            monthly_cost=cost,
            confidence=base.confidence(score),
            risk=base.risk_from(checks, RiskLevel.MEDIUM),
            resource_arn=ctx.arn("ec2", f"instance/{instance_id}"),
            availability_zone=instance.get("Placement", {}).get("AvailabilityZone"),
            evidence=tuple(evidence),
            safety_checks=checks,
            tags=tags,
            created_at=instance.get("LaunchTime"),
            details={
                "state": "stopped",
                "stopped_at": when.isoformat() if when else None,
                "instance_type": instance.get("InstanceType"),
                "volume_ids": [v["VolumeId"] for v in volumes],
                "elastic_ips": addresses,
                **base.pricing_details(
                    ctx,
                    cost,
                    unknown_text,
                    volumes_gib=sizes,
                    volumes_monthly=str(volume_cost),
                    elastic_ips=len(addresses),
                    elastic_ips_monthly=str(ip_cost),
                ),
            },
        )
