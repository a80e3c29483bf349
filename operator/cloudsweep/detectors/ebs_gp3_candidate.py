"""EBS volumes that would cost less as gp3 with the same or better performance: gp2, and io1/io2
whose provisioned IOPS a gp3 volume can deliver.

Registered in ``detectors/__init__.py``; run by the scan run for each account and region.

A rightsizing finding, not a removal: ``monthly_cost`` is the monthly *difference* (what the
volume costs now less what the same volume costs as gp3), so totals add savings, not the volume's
whole bill. Only attached (``in-use``) volumes are reported: an unattached volume is the
``ebs-volume`` detector's, whose finding already counts its whole cost, so one volume is never
counted twice in the waste totals.

The gp3 target matches or exceeds what the volume delivers now (AWS EBS User Guide, "Amazon EBS
volume types", as of 2025):

- gp2: baseline 3 IOPS per GiB, at least 100, bursting to 3,000 below 1,000 GiB; at most 16,000.
  Throughput 128 MiB/s up to 170 GiB, 250 MiB/s above. gp3 target: IOPS = max(3,000, baseline),
  throughput = 128 MiB/s up to 170 GiB, else 250 MiB/s.
- io1/io2 up to 16,000 IOPS: throughput is up to 256 KiB per I/O, at most 500 MiB/s below 32,000
  IOPS. gp3 target: IOPS = max(3,000, provisioned), throughput = min(500, IOPS x 0.25) MiB/s and
  at least 125. Not offered: more than 16,000 IOPS or more than 1,000 MiB/s (gp3's ceilings),
  Multi-Attach volumes (gp3 has none), volumes above 16 TiB (gp3's largest), and a target above
  gp3's 500 IOPS per GiB.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from pydantic import Field

from cloudsweep.detectors import base, register
from cloudsweep.detectors.context import RegionContext
from cloudsweep.domain import Finding, RiskLevel, money

GP3_MAX_IOPS = 16_000
GP3_MAX_THROUGHPUT = 1_000
GP3_BASELINE_IOPS = 3_000
GP3_BASELINE_THROUGHPUT = 125
GP3_MAX_SIZE_GIB = 16_384
GP3_MAX_IOPS_PER_GIB = 500
GP3_MAX_MIBPS_PER_IOPS = Decimal("0.25")
_CANDIDATE_TYPES = ("gp2", "io1", "io2")


class EbsGp3CandidateParameters(base.DetectorParameters):
    min_savings_percent: int = Field(
        default=5,
        ge=0,
        le=100,
        description="Report a volume only if gp3 is at least this much cheaper (percent).",
    )


def gp3_target(volume_type: str, size_gib: int, iops: int | None) -> tuple[int, int] | str:
    """(gp3 IOPS, gp3 MiB/s) that match or exceed the volume, or why gp3 cannot."""
    if size_gib > GP3_MAX_SIZE_GIB:
        return f"{size_gib} GiB is above gp3's largest size ({GP3_MAX_SIZE_GIB} GiB)"
    if volume_type == "gp2":
        baseline = min(GP3_MAX_IOPS, max(100, 3 * size_gib))
        return max(GP3_BASELINE_IOPS, baseline), 128 if size_gib <= 170 else 250
    provisioned = int(iops or 0)
    if provisioned > GP3_MAX_IOPS:
        return f"{provisioned} provisioned IOPS are above gp3's {GP3_MAX_IOPS}"
    target_iops = max(GP3_BASELINE_IOPS, provisioned)
    if target_iops > max(GP3_BASELINE_IOPS, GP3_MAX_IOPS_PER_GIB * size_gib):
        return (
            f"{target_iops} IOPS on {size_gib} GiB is above gp3's {GP3_MAX_IOPS_PER_GIB} IOPS/GiB"
        )
    throughput = min(500, int(target_iops * GP3_MAX_MIBPS_PER_IOPS))
    return target_iops, max(GP3_BASELINE_THROUGHPUT, min(GP3_MAX_THROUGHPUT, throughput))


@register
class EbsGp3CandidateDetector(base.Detector[EbsGp3CandidateParameters]):
    """Attached gp2, io1 and io2 volumes that gp3 serves as well for less.

    Example ScanSchedule entry::

        detectors:
          ebs-gp3-candidate: {min_savings_percent: 10, protection_tags: ["do-not-delete"]}

    Scoring:

    - confidence 90 for gp2 (gp3 matches its baseline and burst at a lower price), 75 for io1/io2
      (the workload may rely on their latency); 40 when younger than ``min_age_days``.
    - risk LOW: ModifyVolume keeps the data and the volume stays attached. io2 is MEDIUM (io2's
      99.999% durability is above gp3's 99.8-99.9%). HIGH with a protection tag.
    - cost (``monthly_cost``): the volume's price now less its price as gp3 with the target IOPS
      and throughput, both from the catalog; below ``min_savings_percent`` it is not reported.
    """

    name = "ebs-gp3-candidate"
    resource_type = "ebs-gp3-candidate"
    permissions = ("ec2:DescribeVolumes",)
    Parameters = EbsGp3CandidateParameters

    def detect(self, ctx: RegionContext, params: EbsGp3CandidateParameters) -> Iterator[Finding]:
        for volume in ctx.inventory.volumes():
            if volume.get("State") != "in-use" or volume.get("VolumeType") not in _CANDIDATE_TYPES:
                continue
            if volume.get("MultiAttachEnabled"):
                continue  # gp3 has no Multi-Attach
            finding = self._finding(ctx, params, dict(volume))
            if finding is not None:
                yield finding

    def _finding(
        self, ctx: RegionContext, params: EbsGp3CandidateParameters, volume: dict[str, Any]
    ) -> Finding | None:
        volume_id = str(volume["VolumeId"])
        volume_type = str(volume["VolumeType"])
        size = int(volume.get("Size", 0))
        iops = int(volume["Iops"]) if volume_type != "gp2" and volume.get("Iops") else None
        target = gp3_target(volume_type, size, iops)
        if isinstance(target, str):
            return None
        target_iops, target_throughput = target
        now_cost, now_unknown = base.priced(
            ctx.prices.ebs_volume_monthly, ctx.region, volume_type, size, iops, None
        )
        gp3_cost, gp3_unknown = base.priced(
            ctx.prices.ebs_volume_monthly, ctx.region, "gp3", size, target_iops, target_throughput
        )
        unknown = now_unknown or gp3_unknown
        if unknown is not None:
            return None  # a difference of unknown prices is no saving anyone can act on
        savings = money(now_cost - gp3_cost)
        if savings <= 0 or savings * 100 < now_cost * params.min_savings_percent:
            return None
        tags = base.tag_map(volume.get("Tags"))
        created = volume.get("CreateTime")
        age = base.age_days(created, ctx.now)
        checks = (
            base.protection_check(tags, params.protection_tags),
            base.age_check(created, ctx.now, params.min_age_days),
        )
        score = 90.0 if volume_type == "gp2" else 75.0
        if age is None or age < params.min_age_days:
            score = 40
        risk = base.risk_from(checks, RiskLevel.MEDIUM if volume_type == "io2" else RiskLevel.LOW)
        attached = [
            str(a["InstanceId"]) for a in volume.get("Attachments") or () if "InstanceId" in a
        ]
        current = f"{size} GiB {volume_type}" + (f" with {iops} IOPS" if iops else "")
        evidence = (
            f"{current}, attached to {', '.join(attached) or 'an instance'}, "
            f"costs {now_cost} USD/month",
            f"as gp3 with {target_iops} IOPS and {target_throughput} MiB/s (matching or above "
            f"what it delivers now) it would cost {gp3_cost} USD/month: {savings} USD/month less",
            "ModifyVolume changes the type in place: no data is lost and the volume stays attached",
        )
        return Finding(
            resource_type=self.resource_type,
            resource_id=volume_id,
            region=ctx.region,
            monthly_cost=savings,
            confidence=base.confidence(score),
            risk=risk,
            resource_arn=ctx.arn("ec2", f"volume/{volume_id}"),
            availability_zone=volume.get("AvailabilityZone"),
            evidence=evidence,
            safety_checks=checks,
            tags=tags,
            created_at=created,
            details={
                "kind": "rightsizing",
                "attached_to": attached,
                "current_monthly_cost": str(now_cost),
                "gp3_monthly_cost": str(gp3_cost),
                "target": {
                    "volume_type": "gp3",
                    "iops": target_iops,
                    "throughput_mibps": target_throughput,
                },
                **base.pricing_details(
                    ctx,
                    savings,
                    None,
                    volume_type=volume_type,
                    size_gib=size,
                    iops=iops,
                    cost_is="monthly difference: current price less gp3 price",
                ),
            },
        )
