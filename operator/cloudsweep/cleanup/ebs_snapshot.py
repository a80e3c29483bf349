"""Cleanup actions for orphaned or old EBS snapshots: move to the archive tier (undoable) or delete.

Registered in ``cleanup/__init__.py``; driven by ``cleanup.executor`` for approved
``ebs-snapshot`` findings of the ``ebs-snapshot`` detector, whose ``resource_details`` carry the
tags, the source volume, the description and, under ``pricing``, the size and tier priced.

Example CleanupPolicy rules::

    rules:
      - resourceType: ebs-snapshot
        action: archive          # 75% cheaper storage; restore takes 24 to 72 hours
      - resourceType: ebs-snapshot
        action: delete           # no undo
        match: {minConfidence: 85}

Both actions, step by step:

- recheck: ``DescribeSnapshots``; refused when the snapshot is not ``completed``, carries a
  protection tag, is the rollback copy another cleanup action kept (tagged
  ``cloudsweep.io/action-id`` and ``cloudsweep.io/source-volume``), or is now used by an AMI of
  the account (``DescribeImages`` of the account's own AMIs); "gone" when it no longer exists.
- dry run: ``ModifySnapshotTier`` / ``DeleteSnapshot`` with ``DryRun=True``.
- prepare: records the snapshot (``snapshot_id, volume_id, volume_size, description,
  storage_tier, encrypted, kms_key_id, start_time, tags``), for the audit trail and, for
  ``archive``, for the restore.
- execute: ``archive`` first reads the tiering status and treats an archive in progress or done
  as done (a lost response), else ``ModifySnapshotTier``; ``delete`` calls ``DeleteSnapshot`` and
  treats ``InvalidSnapshot.NotFound`` as done.
- rollback (``archive`` only): ``RestoreSnapshotTier`` with ``PermanentRestore=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from cloudsweep import aws
from cloudsweep.cleanup import register
from cloudsweep.cleanup.base import (
    ACTION_TAG,
    ActionContext,
    ActionParameters,
    CleanupAction,
    CleanupItem,
    DryRunResult,
    Outcome,
    Recheck,
)
from cloudsweep.cleanup.common import (
    call,
    destroy,
    dry_run_calls,
    jsonable,
    protected_by,
    savings_keeping,
    tag_map,
    user_tags,
)
from cloudsweep.cleanup.ebs_volume import SOURCE_VOLUME_TAG, describe_snapshot
from cloudsweep.domain import DEREGISTERED_IMAGE_TAG, RETAIN_UNTIL_TAG, ActionType, money
from cloudsweep.pricing import PriceCatalog

# Tiering statuses (DescribeSnapshotTierStatus) after which an archive request has nothing to do.
_ARCHIVING = frozenset({"archival-in-progress", "archival-completed"})
_RESTORING = frozenset(
    {
        "permanent-restore-in-progress",
        "permanent-restore-completed",
        "temporary-restore-in-progress",
    }
)
_READ_PERMISSIONS = ("ec2:DescribeImages", "ec2:DescribeSnapshots")


def _archive_monthly(prices: PriceCatalog, region: str, size_gib: int) -> Decimal:
    return prices.ebs_snapshot_monthly(region, size_gib, "archive")


def images_using(ctx: ActionContext, snapshot_id: str) -> list[str]:
    """IDs of the account's own AMIs whose block devices use the snapshot.

    Lists the account's AMIs and matches client-side instead of using DescribeImages' filter
    ``block-device-mapping.snapshot-id``: moto (5.2) does not implement that filter, and the
    listing gives the same answer in AWS.
    """
    images: list[str] = []
    with aws.translated("ec2", "DescribeImages", ctx.region):
        paginator = ctx.client("ec2").get_paginator("describe_images")
        for page in paginator.paginate(Owners=["self"]):
            for image in page.get("Images", []):
                for mapping in image.get("BlockDeviceMappings", []):
                    if mapping.get("Ebs", {}).get("SnapshotId") == snapshot_id:
                        images.append(str(image["ImageId"]))
    return sorted(set(images))


def _grace_over(retain_until: str, now: datetime) -> bool:
    """Whether the grace period tagged by the ``ami`` deregister action has ended; an unreadable
    date never ends (the detector judges it the same way)."""
    try:
        until = datetime.fromisoformat(retain_until)
    except ValueError:
        return False
    return until.tzinfo is not None and now >= until


def tier_status(ctx: ActionContext, snapshot_id: str) -> dict[str, Any]:
    statuses = call(
        ctx,
        "DescribeSnapshotTierStatus",
        Filters=[{"Name": "snapshot-id", "Values": [snapshot_id]}],
    ).get("SnapshotTierStatuses", [])
    return dict(statuses[0]) if statuses else {}


def snapshot_record(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """What the ledger keeps of a snapshot: enough to say what it was, and to restore it."""
    return jsonable(
        {
            "snapshot_id": snapshot["SnapshotId"],
            "volume_id": snapshot.get("VolumeId"),
            "volume_size": snapshot.get("VolumeSize"),
            "description": snapshot.get("Description", ""),
            "storage_tier": snapshot.get("StorageTier", "standard"),
            "encrypted": bool(snapshot.get("Encrypted", False)),
            "kms_key_id": snapshot.get("KmsKeyId") or None,
            "start_time": snapshot.get("StartTime"),
            "tags": user_tags(tag_map(snapshot.get("Tags"))),
        }
    )


class _SnapshotAction(CleanupAction):
    resource_type: ClassVar[str] = "ebs-snapshot"

    def recheck(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        snapshot = describe_snapshot(ctx, item.resource_id)
        if snapshot is None:
            return Recheck.gone("snapshot no longer exists")
        tags = tag_map(snapshot.get("Tags"))
        facts: dict[str, Any] = {
            "state": snapshot.get("State"),
            "storage_tier": snapshot.get("StorageTier", "standard"),
            "tags": tags,
        }
        if snapshot.get("State") != "completed":
            return Recheck(False, f"snapshot is {snapshot.get('State')}, not completed", facts)
        protection = protected_by(tags, ctx.protection_tags)
        if protection is not None:
            return Recheck(False, f"snapshot is now protected by tag {protection}", facts)
        if ACTION_TAG in tags and SOURCE_VOLUME_TAG in tags:
            # Removing it would silently break the undo of the cleanup that made it.
            return Recheck(
                False,
                f"snapshot is the rollback copy of volume {tags[SOURCE_VOLUME_TAG]} kept by "
                f"cleanup action {tags[ACTION_TAG]}; remove it by hand once that undo is not "
                "needed",
                facts,
            )
        retain_until = tags.get(RETAIN_UNTIL_TAG)
        if retain_until is not None and not _grace_over(retain_until, ctx.now()):
            return Recheck(
                False,
                f"snapshot is kept until {retain_until} for the rollback of deregistered "
                f"{tags.get(DEREGISTERED_IMAGE_TAG, 'AMI')}",
                facts,
            )
        images = images_using(ctx, item.resource_id)
        if images:
            facts["images"] = images
            return Recheck(False, f"snapshot is now used by AMI {', '.join(images)}", facts)
        return Recheck(True, "still completed, unprotected and used by no AMI", facts)

    def prepare(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        recorded: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        if recorded.get("snapshot_id"):
            return dict(recorded)
        snapshot = describe_snapshot(ctx, item.resource_id)
        if snapshot is None:
            # Gone since the recheck (an earlier attempt's execute): the scan's view is all there is.
            details = item.resource_details
            return {
                "snapshot_id": item.resource_id,
                "volume_id": details.get("source_volume_id"),
                "description": details.get("description", ""),
                "tags": dict(item.tags),
                "gone_before_prepare": True,
            }
        return snapshot_record(snapshot)


@register
class ArchiveSnapshot(_SnapshotAction):
    """Move the snapshot to the EBS Snapshots Archive tier; undo restores it permanently.

    Example CleanupPolicy rule::

        - resourceType: ebs-snapshot
          action: archive

    AWS bills an archived snapshot for at least 90 days, stores it in full (not incrementally),
    and takes 24 to 72 hours to restore it; archive snapshots that are kept for compliance, not
    ones that may be needed soon.
    """

    action: ClassVar[str] = "archive"
    action_type: ClassVar[ActionType] = ActionType.ARCHIVE
    rollback_possible: ClassVar[bool] = True
    rollback_note: ClassVar[str] = (
        "restores the snapshot permanently to the standard tier (RestoreSnapshotTier); the "
        "restore takes 24 to 72 hours, and a snapshot archived less than 90 days is billed for "
        "the rest of the 90 days"
    )
    permissions: ClassVar[tuple[str, ...]] = (
        *_READ_PERMISSIONS,
        "ec2:DescribeSnapshotTierStatus",
        "ec2:ModifySnapshotTier",
        "ec2:RestoreSnapshotTier",
    )

    def estimated_monthly_savings(self, item: CleanupItem) -> Decimal:
        """The standard-tier cost minus the archive-tier cost of the same size (the size the
        scan priced: the full snapshot size when AWS reported it, else the volume's size).
        Restore fees are not counted; an unpriced archive tier counts as no saving."""
        return savings_keeping(item, "size_gib", _archive_monthly, unpriced=money(0))

    def recheck(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        result = super().recheck(ctx, item)
        if result.still_waste and result.facts.get("storage_tier") == "archive":
            # Reported as waste so that execute records the archive as done (an earlier attempt
            # whose response was lost, or a person) rather than refusing it.
            return Recheck(True, "already in the archive tier", result.facts)
        return result

    def dry_run(
        self, ctx: ActionContext, item: CleanupItem, params: ActionParameters
    ) -> DryRunResult:
        return dry_run_calls(
            ctx,
            [("ModifySnapshotTier", {"SnapshotId": item.resource_id, "StorageTier": "archive"})],
        )

    def execute(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        rollback_data: Mapping[str, Any],
    ) -> Outcome:
        status = tier_status(ctx, item.resource_id)
        if (
            status.get("StorageTier") == "archive"
            or status.get("LastTieringOperationStatus") in _ARCHIVING
        ):
            return Outcome(
                jsonable(status),
                already_done=True,
                note=f"{item.resource_id} is already archived or being archived",
            )
        # A not-found here is a failure, not success: an archive needs the snapshot to exist.
        response = call(
            ctx, "ModifySnapshotTier", SnapshotId=item.resource_id, StorageTier="archive"
        )
        return Outcome(jsonable(response), note=f"archiving {item.resource_id}")

    def rollback(
        self, ctx: ActionContext, rollback_data: Mapping[str, Any], params: ActionParameters
    ) -> Outcome:
        snapshot_id = str(rollback_data["snapshot_id"])
        status = tier_status(ctx, snapshot_id)
        if status.get("LastTieringOperationStatus") in _RESTORING or (
            status.get("StorageTier") == "standard"
            and status.get("LastTieringOperationStatus") not in _ARCHIVING
        ):
            return Outcome(
                jsonable(status),
                already_done=True,
                note=f"{snapshot_id} is already restored or being restored",
            )
        response = call(ctx, "RestoreSnapshotTier", SnapshotId=snapshot_id, PermanentRestore=True)
        return Outcome(
            jsonable(response), note=f"restoring {snapshot_id} permanently (24 to 72 hours)"
        )


@register
class DeleteSnapshot(_SnapshotAction):
    """Delete the snapshot. There is no undo: the data is gone.

    Example CleanupPolicy rule::

        - resourceType: ebs-snapshot
          action: delete
          match: {minConfidence: 85}

    The rollback data still records the snapshot (volume, size, description, tags) for the audit
    trail.
    """

    action: ClassVar[str] = "delete"
    action_type: ClassVar[ActionType] = ActionType.DELETE
    rollback_possible: ClassVar[bool] = False
    rollback_note: ClassVar[str] = (
        "AWS cannot bring a deleted snapshot back: its data is gone; its description, volume, "
        "size and tags are recorded"
    )
    permissions: ClassVar[tuple[str, ...]] = (*_READ_PERMISSIONS, "ec2:DeleteSnapshot")

    def dry_run(
        self, ctx: ActionContext, item: CleanupItem, params: ActionParameters
    ) -> DryRunResult:
        return dry_run_calls(ctx, [("DeleteSnapshot", {"SnapshotId": item.resource_id})])

    def execute(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        rollback_data: Mapping[str, Any],
    ) -> Outcome:
        return destroy(
            ctx,
            "DeleteSnapshot",
            item.resource_id,
            "deleted",
            id_key="SnapshotId",
            SnapshotId=item.resource_id,
        )


__all__ = ["ArchiveSnapshot", "DeleteSnapshot"]
