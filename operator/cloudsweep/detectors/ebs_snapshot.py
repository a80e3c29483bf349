"""Orphaned or old EBS snapshots that no AMI and no AWS Backup recovery point uses.

Registered in ``detectors/__init__.py``; run by the scan run for each account and region.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from pydantic import Field

from cloudsweep.aws.errors import AwsError
from cloudsweep.detectors import base, register
from cloudsweep.detectors.context import RegionContext
from cloudsweep.domain import (
    CLEANUP_ACTION_TAG,
    DEREGISTERED_IMAGE_TAG,
    RETAIN_UNTIL_TAG,
    Finding,
    RiskLevel,
    SafetyCheck,
)
from cloudsweep.pricing.snapshots import snapshot_cost_statement

_GIB = 1024**3
_BACKUP_DESCRIPTION = "This snapshot is created by the AWS Backup service"


class EbsSnapshotParameters(base.DetectorParameters):
    old_after_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="A snapshot whose source volume still exists is reported once this old.",
    )


@register
class EbsSnapshotDetector(base.Detector[EbsSnapshotParameters]):
    """Completed snapshots owned by the account that are orphaned (source volume gone) or old.

    Example ScanSchedule entry::

        detectors:
          ebs-snapshot: {old_after_days: 180, min_age_days: 7}

    Never reported: snapshots used by an AMI of the account (AWS refuses to delete them anyway) and
    snapshots that AWS Backup made or that are AWS Backup recovery points (their lifecycle belongs
    to the backup plan). When AWS Backup cannot be read, the finding carries a failed
    ``backup-reference`` check ("could not verify backup references") instead of the scan failing.

    Scoring:

    - confidence 85 when orphaned and older than ``old_after_days``; 70 when orphaned only; 45 when
      only old (the volume still exists), 55 if newer snapshots of the same volume exist; 25 when
      younger than ``min_age_days``; 15 less when backup references could not be verified.
    - risk MEDIUM when orphaned (it may hold the only copy of the data), LOW when the source volume
      still exists; HIGH with a protection tag; at least MEDIUM when any check failed.
    - cost: the snapshot's full size when AWS reports it, else the source volume's size (an upper
      bound: snapshots are incremental), at the storage tier's price.
    """

    name = "ebs-snapshot"
    resource_type = "ebs-snapshot"
    permissions = (
        "ec2:DescribeSnapshots",
        "ec2:DescribeVolumes",
        "ec2:DescribeImages",
        "backup:ListBackupVaults",
        "backup:ListRecoveryPointsByBackupVault",
    )
    Parameters = EbsSnapshotParameters

    def detect(self, ctx: RegionContext, params: EbsSnapshotParameters) -> Iterator[Finding]:
        snapshots = [s for s in ctx.inventory.snapshots() if s.get("State") == "completed"]
        if not snapshots:
            return
        volume_ids = {v["VolumeId"] for v in ctx.inventory.volumes()}
        used_by_image = ctx.inventory.image_snapshot_ids()
        backup_error: AwsError | None = None
        backup_arns: frozenset[str] = frozenset()
        try:
            backup_arns = ctx.inventory.backup_recovery_point_arns()
        except AwsError as exc:
            backup_error = exc
        per_volume: dict[str, list[str]] = {}
        for snap in sorted(snapshots, key=lambda s: s.get("StartTime", ctx.now)):
            per_volume.setdefault(snap.get("VolumeId", ""), []).append(snap["SnapshotId"])

        for snap in snapshots:
            snapshot_id = snap["SnapshotId"]
            tags = base.tag_map(snap.get("Tags"))
            arn = ctx.arn("ec2", f"snapshot/{snapshot_id}", with_account=False)
            if snapshot_id in used_by_image:
                continue
            if arn in backup_arns or _made_by_backup(snap.get("Description", ""), tags):
                continue
            created = snap.get("StartTime")
            age = base.age_days(created, ctx.now) or 0.0
            volume_id = snap.get("VolumeId", "")
            orphaned = volume_id not in volume_ids
            old = age >= params.old_after_days
            if not (orphaned or old):
                continue
            siblings = per_volume.get(volume_id, [])
            newer = len(siblings) - 1 - siblings.index(snapshot_id)

            checks = [
                base.protection_check(tags, params.protection_tags),
                base.age_check(created, ctx.now, params.min_age_days),
                SafetyCheck(base.REFERENCE_CHECK, True, "not used by any AMI of this account"),
                SafetyCheck("backup-reference", True, "not an AWS Backup recovery point")
                if backup_error is None
                else SafetyCheck(
                    "backup-reference",
                    False,
                    f"could not verify backup references: {backup_error.code} "
                    f"({backup_error.message[:120]})",
                ),
            ]
            undo_of = tags.get(CLEANUP_ACTION_TAG)
            if undo_of:
                # Taken by a cleanup before it deleted a volume: it costs money, so it is listed,
                # but it is the undo data of that action and no policy may remove it.
                checks.append(
                    SafetyCheck(
                        "cleanup-undo-data",
                        False,
                        f"keeps the undo data of cleanup action {undo_of} (`cloudsweep rollback`)",
                    )
                )
            grace = _ami_grace_check(tags, ctx.now)
            if grace is not None:
                checks.append(grace)
            if orphaned and old:
                score = 85.0
            elif orphaned:
                score = 70.0
            else:
                score = 55.0 if newer else 45.0
            if age < params.min_age_days:
                score = 25
            if backup_error is not None:
                score -= 15
            risk = base.risk_from(checks, RiskLevel.MEDIUM if orphaned else RiskLevel.LOW)

            full_size = snap.get("FullSnapshotSizeInBytes")
            size_gib = -(-full_size // _GIB) if full_size else snap.get("VolumeSize", 0)
            tier = str(snap.get("StorageTier", "standard")).lower()
            cost, unknown = base.priced(ctx.prices.ebs_snapshot_monthly, ctx.region, size_gib, tier)
            evidence = []
            if orphaned:
                evidence.append(f"source volume {volume_id or 'unknown'} no longer exists")
            else:
                evidence.append(f"source volume {volume_id} still exists")
            evidence.append(
                f"created {created.isoformat() if created else 'at an unknown time'}, "
                f"{age:.0f} days ago"
                + (f" (older than {params.old_after_days} days)" if old else "")
            )
            if newer:
                evidence.append(f"{newer} newer snapshot(s) of {volume_id} exist")
            evidence.append("not used by any AMI of this account")
            evidence.append(base.cost_evidence(cost, unknown, f"{size_gib} GiB of {tier} snapshot"))
            upper_bound, cost_statement = snapshot_cost_statement(
                tier, "the full snapshot size" if full_size else "the source volume's size"
            )
            evidence.append(
                f"cost is an {cost_statement}" if upper_bound else f"cost is {cost_statement}"
            )
            yield Finding(
                resource_type=self.resource_type,
                resource_id=snapshot_id,
                region=ctx.region,
                monthly_cost=cost,
                confidence=base.confidence(score),
                risk=risk,
                resource_arn=arn,
                availability_zone=None,
                evidence=tuple(evidence),
                safety_checks=tuple(checks),
                tags=tags,
                created_at=created,
                details={
                    "source_volume_id": volume_id or None,
                    "orphaned": orphaned,
                    "newer_snapshots_of_volume": newer,
                    "description": snap.get("Description", ""),
                    "cost_basis": cost_statement,
                    "cost_is_upper_bound": upper_bound,
                    **base.pricing_details(ctx, cost, unknown, size_gib=size_gib, tier=tier),
                },
            )


def _ami_grace_check(tags: dict[str, str], now: datetime) -> SafetyCheck | None:
    """The snapshot of an AMI the ``ami`` cleanup deregistered: its undo data until the grace
    period it was tagged with ends (an unreadable date keeps it protected)."""
    until_text = tags.get(RETAIN_UNTIL_TAG)
    if until_text is None:
        return None
    image = tags.get(DEREGISTERED_IMAGE_TAG, "an AMI")
    try:
        until = datetime.fromisoformat(until_text)
    except ValueError:
        until = None
    if until is None or until.tzinfo is None or now < until:
        return SafetyCheck(
            "ami-grace-period",
            False,
            f"kept until {until_text} so deregistered {image} can be registered again "
            "(`cloudsweep rollback`)",
        )
    return SafetyCheck("ami-grace-period", True, f"grace period of deregistered {image} ended")


def _made_by_backup(description: str, tags: dict[str, str]) -> bool:
    return description.startswith(_BACKUP_DESCRIPTION) or any(
        key.startswith("aws:backup:") for key in tags
    )
