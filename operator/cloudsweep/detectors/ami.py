"""Unused AMIs owned by the account: no instance, launch template version or Auto Scaling launch
configuration uses them, and they are older than an age. Their EBS snapshots are the cost.

Registered in ``detectors/__init__.py``; run by the scan run for each account and region. The
``ami`` cleanup action deregisters the image and keeps the snapshots for a grace period; after
it, the ``ebs-snapshot`` detector reports them like any other snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from pydantic import Field

from cloudsweep.detectors import base, register
from cloudsweep.detectors.context import RegionContext
from cloudsweep.domain import Finding, RiskLevel, SafetyCheck

_GIB = 1024**3
_SSM_PREFIX = "resolve:ssm:"


class AmiParameters(base.DetectorParameters):
    unused_after_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="Report an unused AMI once it is this old (days since its creation).",
    )


@register
class AmiDetector(base.Detector[AmiParameters]):
    """AMIs of this account that nothing launches from, older than ``unused_after_days``.

    Example ScanSchedule entry::

        detectors:
          ami: {unused_after_days: 180, protection_tags: ["do-not-delete", "golden-image"]}

    "Used" means named by an instance in any state but terminated, by any version of a launch
    template (not only the default one), or by an Auto Scaling launch configuration. A launch
    template version that takes its image from an SSM parameter (``resolve:ssm:...``) cannot be
    resolved here: every AMI of the region then carries a failed ``ssm-reference`` check.

    Scoring:

    - confidence 80 for an unused AMI older than ``unused_after_days``, 90 past twice that age;
      20 less when an SSM-resolved launch template could name it.
    - risk LOW: the action keeps the snapshots and can register the image again. HIGH with a
      protection tag; at least MEDIUM when any check failed.
    - cost: the image's snapshots at the snapshot price (full size when AWS reports it, else the
      volume size: an upper bound), except snapshots another AMI of the account also uses.
    """

    name = "ami"
    resource_type = "ami"
    permissions = (
        "ec2:DescribeImages",
        "ec2:DescribeSnapshots",
        "ec2:DescribeInstances",
        "ec2:DescribeLaunchTemplates",
        "ec2:DescribeLaunchTemplateVersions",
        "autoscaling:DescribeLaunchConfigurations",
    )
    Parameters = AmiParameters

    def detect(self, ctx: RegionContext, params: AmiParameters) -> Iterator[Finding]:
        images = [i for i in ctx.inventory.images() if i.get("State") == "available"]
        if not images:
            return
        in_use: dict[str, list[str]] = {}
        for instance in ctx.inventory.instances():
            # A terminated instance launches nothing again (the listing may include them).
            if (instance.get("State") or {}).get("Name") == "terminated":
                continue
            image_id = instance.get("ImageId")
            if image_id:
                in_use.setdefault(image_id, []).append(f"instance {instance['InstanceId']}")
        # Templates and launch configurations only matter for an AMI old enough to report that
        # no instance uses: without one, they are not listed (a listing of each saved a region).
        if not any(
            i["ImageId"] not in in_use and _old_enough(i, ctx, params.unused_after_days)
            for i in images
        ):
            return
        templates = ctx.inventory.launch_template_images()
        for image_id, users in templates.items():
            in_use.setdefault(image_id, []).extend(users)
        for image_id, users in ctx.inventory.launch_configuration_images().items():
            in_use.setdefault(image_id, []).extend(users)
        ssm_users = [
            u for ref, users in templates.items() if ref.startswith(_SSM_PREFIX) for u in users
        ]
        snapshots = {s["SnapshotId"]: s for s in ctx.inventory.snapshots()}
        snapshot_users: dict[str, int] = {}
        for image in ctx.inventory.images():
            for snapshot_id in _snapshot_ids(image):
                snapshot_users[snapshot_id] = snapshot_users.get(snapshot_id, 0) + 1

        for image in images:
            image_id = image["ImageId"]
            if image_id in in_use:
                continue
            created = _parse_time(image.get("CreationDate"))
            age = base.age_days(created, ctx.now)
            if age is None or age < params.unused_after_days:
                continue
            yield self._finding(
                ctx, params, dict(image), created, age, snapshots, snapshot_users, ssm_users
            )

    def _finding(
        self,
        ctx: RegionContext,
        params: AmiParameters,
        image: dict[str, Any],
        created: datetime | None,
        age: float,
        snapshots: dict[str, Any],
        snapshot_users: dict[str, int],
        ssm_users: list[str],
    ) -> Finding:
        image_id = str(image["ImageId"])
        tags = base.tag_map(image.get("Tags"))
        own = [s for s in _snapshot_ids(image) if snapshot_users.get(s, 0) == 1]
        shared = [s for s in _snapshot_ids(image) if snapshot_users.get(s, 0) > 1]
        size_gib = 0
        for snapshot_id in own:
            snapshot = snapshots.get(snapshot_id) or {}
            full = snapshot.get("FullSnapshotSizeInBytes")
            size_gib += (
                -(-int(full) // _GIB)
                if full
                else int(snapshot.get("VolumeSize") or _volume_size(image, snapshot_id))
            )
        cost, unknown = base.priced(ctx.prices.ebs_snapshot_monthly, ctx.region, size_gib)
        checks = [
            base.protection_check(tags, params.protection_tags),
            base.age_check(created, ctx.now, params.min_age_days),
            SafetyCheck(
                base.REFERENCE_CHECK,
                True,
                "not used by any instance, launch template version or launch configuration",
            ),
        ]
        if ssm_users:
            checks.append(
                SafetyCheck(
                    "ssm-reference",
                    False,
                    f"{', '.join(ssm_users[:3])} take their image from an SSM parameter, "
                    "which may name this AMI",
                )
            )
        score = 90.0 if age >= 2 * params.unused_after_days else 80.0
        if ssm_users:
            score -= 20
        evidence = [
            f"created {created.isoformat() if created else 'at an unknown time'}, {age:.0f} days ago",
            "no instance, launch template version or Auto Scaling launch configuration uses it",
            base.cost_evidence(cost, unknown, f"{len(own)} snapshot(s), {size_gib} GiB,"),
        ]
        if shared:
            evidence.append(
                f"snapshot(s) {', '.join(shared)} also used by another AMI: not counted"
            )
        return Finding(
            resource_type=self.resource_type,
            resource_id=image_id,
            region=ctx.region,
            monthly_cost=cost,
            confidence=base.confidence(score),
            risk=base.risk_from(checks, RiskLevel.LOW),
            resource_arn=ctx.arn("ec2", f"image/{image_id}", with_account=False),
            evidence=tuple(evidence),
            safety_checks=tuple(checks),
            tags=tags,
            created_at=created,
            details={
                "name": image.get("Name"),
                "snapshot_ids": _snapshot_ids(image),
                "counted_snapshot_ids": own,
                **base.pricing_details(ctx, cost, unknown, size_gib=size_gib, tier="standard"),
            },
        )


def _snapshot_ids(image: Any) -> list[str]:
    return [
        str(m["Ebs"]["SnapshotId"])
        for m in image.get("BlockDeviceMappings") or ()
        if (m.get("Ebs") or {}).get("SnapshotId")
    ]


def _volume_size(image: Any, snapshot_id: str) -> int:
    for mapping in image.get("BlockDeviceMappings") or ():
        ebs = mapping.get("Ebs") or {}
        if ebs.get("SnapshotId") == snapshot_id:
            return int(ebs.get("VolumeSize") or 0)
    return 0


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _old_enough(image: Mapping[str, Any], ctx: RegionContext, days: int) -> bool:
    """As old as ``unused_after_days`` (the detector's own test below, for one image)."""
    age = base.age_days(_parse_time(image.get("CreationDate")), ctx.now)
    return age is not None and age >= days
