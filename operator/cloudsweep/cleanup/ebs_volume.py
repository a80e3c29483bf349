"""Cleanup action for unattached EBS volumes: snapshot, then delete (undoable).

Registered in ``cleanup/__init__.py``; driven by ``cleanup.executor`` for approved ``ebs-volume``
findings of the ``ebs-volume`` detector, whose ``resource_details`` carry the tags and, under
``pricing``, the volume type, size, IOPS and throughput the scan saw.

Example CleanupPolicy rule::

    rules:
      - resourceType: ebs-volume
        action: snapshot-and-delete
        parameters: {wait_delay_seconds: 15, wait_max_attempts: 480}

``snapshot-and-delete``, step by step:

- recheck: ``DescribeVolumes``; refused when the volume is attached, in another state than
  ``available``, carries a protection tag, or its size, type, IOPS or throughput changed since the
  scan; "gone" when it no longer exists.
- dry run: ``CreateSnapshot`` and ``DeleteVolume`` with ``DryRun=True``.
- prepare: the snapshot tagged with the action ID (from the ledger's checkpoint, else found by the
  tag, else created), checkpointed as soon as AWS returns its ID, then waited for until
  ``completed``. Returns the rollback data: ``snapshot_id, volume_id, availability_zone,
  volume_type, size, iops, throughput, encrypted, kms_key_id, multi_attach, tags``.
- execute: checks the snapshot is still there and complete, then ``DeleteVolume``; a
  ``InvalidVolume.NotFound`` answer means an earlier attempt deleted it.
- rollback: ``CreateVolume`` from the snapshot with the recorded zone, type, size, IOPS,
  throughput, encryption and tags, tagged with the rollback's own action ID so a rerun finds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

from cloudsweep import aws
from cloudsweep.aws import ErrorKind
from cloudsweep.cleanup import register
from cloudsweep.cleanup.base import (
    ActionContext,
    ActionParameters,
    CleanupAction,
    CleanupItem,
    DryRunResult,
    Outcome,
    Recheck,
)
from cloudsweep.cleanup.common import (
    MissingRollbackData,
    action_tags,
    call,
    changes_since_scan,
    describe_one,
    destroy,
    dry_run_calls,
    earlier_attempt,
    oldest_usable,
    protected_by,
    savings_keeping,
    tag_map,
    tag_specification,
    user_tags,
    wait,
)
from cloudsweep.domain import ActionType
from cloudsweep.pricing import PriceCatalog

SOURCE_VOLUME_TAG = "cloudsweep.io/source-volume"
RESTORED_FROM_TAG = "cloudsweep.io/restored-from-snapshot"
# AWS accepts Iops only for these types and Throughput only for gp3 (gp2 reports a baseline IOPS
# figure that CreateVolume would refuse).
_IOPS_TYPES = frozenset({"io1", "io2", "gp3"})
_THROUGHPUT_TYPES = frozenset({"gp3"})
_MULTI_ATTACH_TYPES = frozenset({"io1", "io2"})
# What ``volume_config`` records (the rollback data, less ``snapshot_id``).
_CONFIG_KEYS = (
    "volume_id",
    "availability_zone",
    "volume_type",
    "size",
    "iops",
    "throughput",
    "encrypted",
    "kms_key_id",
    "multi_attach",
    "tags",
)
_KMS_PERMISSIONS = (
    # Only needed for volumes encrypted with a customer-managed KMS key (AWS's documented set for
    # creating snapshots and volumes of such volumes).
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
)


def describe_volume(ctx: ActionContext, volume_id: str) -> dict[str, Any] | None:
    return describe_one(lambda: call(ctx, "DescribeVolumes", VolumeIds=[volume_id]), "Volumes")


def describe_snapshot(ctx: ActionContext, snapshot_id: str) -> dict[str, Any] | None:
    return describe_one(
        lambda: call(ctx, "DescribeSnapshots", SnapshotIds=[snapshot_id]), "Snapshots"
    )


def volume_config(volume: Mapping[str, Any]) -> dict[str, Any]:
    """What ``CreateVolume`` needs to make the volume again (the rollback data, less the
    snapshot)."""
    volume_type = str(volume.get("VolumeType", "gp2"))
    return {
        "volume_id": volume["VolumeId"],
        "availability_zone": volume["AvailabilityZone"],
        "volume_type": volume_type,
        "size": int(volume["Size"]),
        "iops": volume.get("Iops") if volume_type in _IOPS_TYPES else None,
        "throughput": volume.get("Throughput") if volume_type in _THROUGHPUT_TYPES else None,
        "encrypted": bool(volume.get("Encrypted", False)),
        "kms_key_id": volume.get("KmsKeyId") or None,
        "multi_attach": bool(volume.get("MultiAttachEnabled", False)),
        "tags": user_tags(tag_map(volume.get("Tags"))),
    }


def recheck_volume(ctx: ActionContext, item: CleanupItem) -> Recheck:
    """Is the volume still the unattached, unprotected, unchanged volume the scan saw?"""
    volume = describe_volume(ctx, item.resource_id)
    if volume is None:
        return Recheck.gone("volume no longer exists")
    tags = tag_map(volume.get("Tags"))
    facts: dict[str, Any] = {
        "state": volume.get("State"),
        "size": volume.get("Size"),
        "volume_type": volume.get("VolumeType"),
        "iops": volume.get("Iops"),
        "throughput": volume.get("Throughput"),
        "tags": tags,
    }
    attachments = [a for a in volume.get("Attachments") or () if a.get("InstanceId")]
    if attachments:
        instances = ", ".join(str(a["InstanceId"]) for a in attachments)
        facts["attached_to"] = instances
        return Recheck(False, f"volume is attached to {instances} again", facts)
    if volume.get("State") != "available":
        return Recheck(False, f"volume is {volume.get('State')}, not available", facts)
    protection = protected_by(tags, ctx.protection_tags)
    if protection is not None:
        return Recheck(False, f"volume is now protected by tag {protection}", facts)
    seen = item.resource_details.get("pricing") or {}
    changes = changes_since_scan(
        seen,
        facts,
        (
            ("size", "size_gib", "size"),
            ("type", "volume_type", "volume_type"),
            ("iops", "iops", "iops"),
            ("throughput", "throughput_mibps", "throughput"),
        ),
    )
    if changes:
        return Recheck(False, f"volume changed since the scan: {', '.join(changes)}", facts)
    return Recheck(True, "still unattached, unprotected and unchanged", facts)


# --- the action -------------------------------------------------------------------------------


@register
class SnapshotAndDeleteVolume(CleanupAction):
    """Snapshot the volume, wait for the snapshot, then delete the volume; undo recreates it.

    Example CleanupPolicy rule::

        - resourceType: ebs-volume
          action: snapshot-and-delete
          parameters: {wait_delay_seconds: 15, wait_max_attempts: 480}

    The snapshot is kept (and billed at the snapshot price) until someone deletes it; it carries
    the volume's tags, ``cloudsweep.io/action-id`` and ``cloudsweep.io/source-volume``.
    """

    resource_type: ClassVar[str] = "ebs-volume"
    action: ClassVar[str] = "snapshot-and-delete"
    action_type: ClassVar[ActionType] = ActionType.DELETE
    rollback_possible: ClassVar[bool] = True
    rollback_note: ClassVar[str] = (
        "recreates the volume from the snapshot taken before deletion, in the same availability "
        "zone with the same type, size, IOPS, throughput, encryption and tags (a new volume ID)"
    )
    permissions: ClassVar[tuple[str, ...]] = (
        "ec2:CreateSnapshot",
        "ec2:CreateTags",
        "ec2:CreateVolume",
        "ec2:DeleteVolume",
        "ec2:DescribeSnapshots",
        "ec2:DescribeVolumes",
        *_KMS_PERMISSIONS,
    )

    def estimated_monthly_savings(self, item: CleanupItem) -> Decimal:
        """The volume's cost minus the snapshot's, priced at the volume's full size in the
        standard tier: an upper bound for the snapshot (EBS stores only written blocks), so the
        savings are a lower bound. An unpriced snapshot is not subtracted."""
        return savings_keeping(item, "size_gib", PriceCatalog.ebs_snapshot_monthly)

    def recheck(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        return recheck_volume(ctx, item)

    def dry_run(
        self, ctx: ActionContext, item: CleanupItem, params: ActionParameters
    ) -> DryRunResult:
        return dry_run_calls(
            ctx,
            [
                ("CreateSnapshot", {"VolumeId": item.resource_id}),
                ("DeleteVolume", {"VolumeId": item.resource_id}),
            ],
        )

    def prepare(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        recorded: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        action_id = str(ctx.action_id)
        snapshot = self._earlier_snapshot(ctx, recorded)
        volume = describe_volume(ctx, item.resource_id)
        if volume is not None:
            config = volume_config(volume)
        elif snapshot is not None and "volume_type" in recorded:
            # Deleted after a complete prepare (a rerun after execute): the ledger has it all.
            config = {k: recorded.get(k) for k in _CONFIG_KEYS}
        else:
            raise aws.AwsError(
                ErrorKind.NOT_FOUND,
                service="ec2",
                operation="CreateSnapshot",
                code="InvalidVolume.NotFound",
                message=f"volume {item.resource_id} no longer exists and this action recorded "
                "no snapshot and configuration of it: nothing to snapshot or delete",
                region=ctx.region,
            )
        if snapshot is None:
            tags = action_tags(config["tags"], action_id, {SOURCE_VOLUME_TAG: item.resource_id})
            snapshot = call(
                ctx,
                "CreateSnapshot",
                VolumeId=item.resource_id,
                Description=f"CloudSweep: {item.resource_id} before deletion (action {action_id})",
                TagSpecifications=tag_specification("snapshot", tags),
            )
        snapshot_id = str(snapshot["SnapshotId"])
        # Into the ledger before anything else can fail: a crash from here on finds this
        # snapshot instead of taking another.
        if recorded.get("snapshot_id") != snapshot_id or "volume_type" not in recorded:
            ctx.checkpoint({"snapshot_id": snapshot_id, **config})
        if snapshot.get("State") == "error":
            raise self._snapshot_failed(ctx, snapshot)
        if snapshot.get("State") != "completed":
            wait(
                ctx,
                "snapshot_completed",
                "DescribeSnapshots",
                params,
                SnapshotIds=[snapshot_id],
            )
        return {"snapshot_id": snapshot_id, **config}

    def _earlier_snapshot(
        self, ctx: ActionContext, recorded: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The snapshot an earlier attempt of this action made: checkpointed, or tagged."""
        recorded_id = recorded.get("snapshot_id")
        if recorded_id:
            snapshot = describe_snapshot(ctx, recorded_id)
            if snapshot is not None:
                return snapshot
            # Deleted by someone since: fall through to the tag, else take a new snapshot.
        found = earlier_attempt(ctx, "DescribeSnapshots", "Snapshots", OwnerIds=["self"])
        return oldest_usable(found, lambda s: s.get("State") != "error", "StartTime")

    def _snapshot_failed(self, ctx: ActionContext, snapshot: Mapping[str, Any]) -> aws.AwsError:
        return aws.AwsError(
            ErrorKind.TERMINAL,
            service="ec2",
            operation="CreateSnapshot",
            code="SnapshotFailed",
            message=f"snapshot {snapshot['SnapshotId']} failed "
            f"({snapshot.get('StateMessage') or 'no reason given'}); the volume was not deleted. "
            f"Delete the snapshot and retry the action",
            region=ctx.region,
        )

    def execute(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        rollback_data: Mapping[str, Any],
    ) -> Outcome:
        snapshot_id = rollback_data.get("snapshot_id")
        if not snapshot_id:
            raise MissingRollbackData(
                "DeleteVolume", "delete", item.resource_id, ctx.region, "no snapshot was recorded"
            )
        # The undo copy must exist right before the data goes: someone may have deleted it since.
        snapshot = describe_snapshot(ctx, snapshot_id)
        state = snapshot.get("State") if snapshot else "missing"
        if state != "completed":
            raise MissingRollbackData(
                "DeleteVolume",
                "delete",
                item.resource_id,
                ctx.region,
                f"its snapshot {snapshot_id} is {state}",
            )
        outcome = destroy(
            ctx,
            "DeleteVolume",
            item.resource_id,
            "deleted",
            id_key="VolumeId",
            VolumeId=item.resource_id,
        )
        return Outcome(
            {**outcome.response, "SnapshotId": snapshot_id},
            already_done=outcome.already_done,
            note=f"{outcome.note}; snapshot {snapshot_id} kept for rollback",
        )

    def rollback(
        self, ctx: ActionContext, rollback_data: Mapping[str, Any], params: ActionParameters
    ) -> Outcome:
        action_id = str(ctx.action_id)
        snapshot_id = str(rollback_data["snapshot_id"])
        existing = earlier_attempt(
            ctx,
            "DescribeVolumes",
            "Volumes",
            live=lambda v: v.get("State") not in ("deleting", "deleted", "error"),
        )
        already_done = bool(existing)
        if existing:
            volume_id = str(existing[0]["VolumeId"])
        else:
            volume_id = self._create_volume(ctx, rollback_data, snapshot_id, action_id)
        ctx.checkpoint({"restored_volume_id": volume_id})
        wait(ctx, "volume_available", "DescribeVolumes", params, VolumeIds=[volume_id])
        return Outcome(
            {
                "VolumeId": volume_id,
                "SnapshotId": snapshot_id,
                "AvailabilityZone": rollback_data["availability_zone"],
            },
            already_done=already_done,
            note=f"volume {volume_id} recreated from {snapshot_id} "
            f"(was {rollback_data.get('volume_id')})",
        )

    def _create_volume(
        self, ctx: ActionContext, data: Mapping[str, Any], snapshot_id: str, action_id: str
    ) -> str:
        volume_type = str(data["volume_type"])
        tags = action_tags(data.get("tags"), action_id, {RESTORED_FROM_TAG: snapshot_id})
        request: dict[str, Any] = {
            "AvailabilityZone": data["availability_zone"],
            "SnapshotId": snapshot_id,
            "VolumeType": volume_type,
            "Size": int(data["size"]),
            "TagSpecifications": tag_specification("volume", tags),
        }
        if data.get("iops") is not None and volume_type in _IOPS_TYPES:
            request["Iops"] = int(data["iops"])
        if data.get("throughput") is not None and volume_type in _THROUGHPUT_TYPES:
            request["Throughput"] = int(data["throughput"])
        # A volume from an encrypted snapshot is encrypted anyway; the key must be named to get
        # the original (not the account default) customer-managed key.
        if data.get("encrypted"):
            request["Encrypted"] = True
            if data.get("kms_key_id"):
                request["KmsKeyId"] = data["kms_key_id"]
        if data.get("multi_attach") and volume_type in _MULTI_ATTACH_TYPES:
            request["MultiAttachEnabled"] = True
        created = call(ctx, "CreateVolume", **request)
        return str(created["VolumeId"])


__all__ = ["MissingRollbackData", "SnapshotAndDeleteVolume"]
