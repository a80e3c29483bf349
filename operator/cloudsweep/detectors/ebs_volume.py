"""Unattached EBS volumes: billed for every provisioned GiB (and IOPS, throughput) while unused.

Registered in ``detectors/__init__.py``; run by the scan run for each account and region.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from cloudsweep.detectors import base, register
from cloudsweep.detectors.context import RegionContext
from cloudsweep.domain import Finding, RiskLevel


class EbsVolumeParameters(base.DetectorParameters):
    min_age_days: int = Field(default=7, ge=0, le=3650)


@register
class EbsVolumeDetector(base.Detector[EbsVolumeParameters]):
    """EBS volumes in state ``available`` (attached to nothing).

    Example ScanSchedule entry::

        detectors:
          ebs-volume: {min_age_days: 14, protection_tags: ["do-not-delete"]}

    Scoring (AWS does not say when a volume was detached, so age is counted from creation):

    - confidence 70 for an unattached volume; +15 if created 30 or more days ago, +10 more at 90
      days; a volume younger than ``min_age_days`` gets 30 (it may be about to be attached).
    - risk LOW when a completed snapshot of the volume exists (the data can be restored),
      MEDIUM when none does (deleting it loses the data); HIGH with a protection tag; at least
      MEDIUM when any safety check failed.
    - safety checks: ``protection-tag``, ``recently-created``. Whether a snapshot exists is
      evidence and risk, not a check: cleanup snapshots the volume before deleting it.
    """

    name = "ebs-volume"
    resource_type = "ebs-volume"
    permissions = ("ec2:DescribeVolumes", "ec2:DescribeSnapshots")
    Parameters = EbsVolumeParameters

    def detect(self, ctx: RegionContext, params: EbsVolumeParameters) -> Iterator[Finding]:
        volumes = [v for v in ctx.inventory.volumes() if v.get("State") == "available"]
        if not volumes:
            return
        # Latest completed snapshot of each volume (sorted so later ones overwrite earlier).
        snapshotted = {
            s["VolumeId"]: s["SnapshotId"]
            for s in sorted(ctx.inventory.snapshots(), key=lambda s: s.get("StartTime", ctx.now))
            if s.get("State") == "completed" and s.get("VolumeId")
        }
        for volume in volumes:
            volume_id = volume["VolumeId"]
            tags = base.tag_map(volume.get("Tags"))
            created = volume.get("CreateTime")
            age = base.age_days(created, ctx.now)
            snapshot_id = snapshotted.get(volume_id)
            checks = (
                base.protection_check(tags, params.protection_tags),
                base.age_check(created, ctx.now, params.min_age_days),
            )
            score = 70.0
            if age is not None and age >= 30:
                score += 15
            if age is not None and age >= 90:
                score += 10
            if age is None or age < params.min_age_days:
                score = 30
            risk = base.risk_from(checks, RiskLevel.LOW if snapshot_id else RiskLevel.MEDIUM)

            volume_type = volume.get("VolumeType", "gp2")
            size = volume.get("Size", 0)
            iops = volume.get("Iops") if volume_type in ("io1", "io2", "gp3") else None
            throughput = volume.get("Throughput") if volume_type == "gp3" else None
            cost, unknown = base.priced(
                ctx.prices.ebs_volume_monthly, ctx.region, volume_type, size, iops, throughput
            )
            since = created.isoformat() if created else "an unknown time"
            evidence = [
                f"unattached (state available); created {since}"
                + (f", {age:.0f} days ago" if age is not None else ""),
                base.cost_evidence(
                    cost, unknown, f"{size} GiB {volume_type}, attached to nothing,"
                ),
                f"snapshot {snapshot_id} of this volume exists"
                if snapshot_id
                else "no snapshot of this volume exists: cleanup snapshots it first",
            ]
            yield Finding(
                resource_type=self.resource_type,
                resource_id=volume_id,
                region=ctx.region,
                monthly_cost=cost,
                confidence=base.confidence(score),
                risk=risk,
                resource_arn=ctx.arn("ec2", f"volume/{volume_id}"),
                availability_zone=volume.get("AvailabilityZone"),
                evidence=tuple(evidence),
                safety_checks=checks,
                tags=tags,
                created_at=created,
                details={
                    "state": volume.get("State"),
                    "encrypted": volume.get("Encrypted", False),
                    "source_snapshot_id": volume.get("SnapshotId") or None,
                    "latest_snapshot_id": snapshot_id,
                    **base.pricing_details(
                        ctx,
                        cost,
                        unknown,
                        volume_type=volume_type,
                        size_gib=size,
                        iops=iops,
                        throughput_mibps=throughput,
                    ),
                },
            )
