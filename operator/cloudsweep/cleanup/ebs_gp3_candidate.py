"""Cleanup action for volumes that should be gp3: change the type in place (undoable).

Registered in ``cleanup/__init__.py``; driven by ``cleanup.executor`` for approved
``ebs-gp3-candidate`` findings, whose ``resource_details`` carry the tags, the gp3 ``target``
(IOPS and throughput that match or exceed the volume's) and, under ``pricing``, the type, size and
IOPS the scan saw.

Example CleanupPolicy rule::

    rules:
      - resourceType: ebs-gp3-candidate
        action: modify-to-gp3

``modify-to-gp3``, step by step:

- recheck: ``DescribeVolumes`` and ``DescribeVolumesModifications``; "gone" when the volume is
  already gp3 or no longer exists; refused when it carries a protection tag, its type, size or
  IOPS changed since the scan, or a modification is still in progress.
- dry run: ``ModifyVolume`` with ``DryRun=True``.
- prepare: records the volume's type, size, IOPS and throughput and the gp3 target
  (``volume_id, original_volume_type, size, original_iops, original_throughput, target_iops,
  target_throughput``). Nothing is created, so nothing needs finding again.
- execute: reads the volume first and treats a gp3 volume (or a gp3 modification under way) as
  done: the answer of an earlier attempt was lost. Else records ``modify_requested_at`` and calls
  ``ModifyVolume`` to gp3 with the target IOPS and throughput.
- rollback: ``ModifyVolume`` back to the recorded type (and IOPS for io1/io2). AWS allows one
  modification of a volume per six hours: inside that cooldown the rollback fails, recoverable,
  and says from when it can run.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
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
    call,
    changes_since_scan,
    dry_run_calls,
    gone_before_recorded,
    jsonable,
    protected_by,
    tag_map,
)
from cloudsweep.cleanup.ebs_volume import describe_volume
from cloudsweep.domain import ActionType

# AWS: "you must wait at least six hours ... before you can modify the same volume".
MODIFICATION_COOLDOWN = timedelta(hours=6)
_IN_PROGRESS = frozenset({"modifying", "optimizing"})
_IOPS_TYPES = frozenset({"io1", "io2"})


def latest_modification(ctx: ActionContext, volume_id: str) -> dict[str, Any] | None:
    """The volume's most recent modification (DescribeVolumesModifications), or None."""
    try:
        found = call(ctx, "DescribeVolumesModifications", VolumeIds=[volume_id]).get(
            "VolumesModifications", []
        )
    except aws.AwsError as exc:
        # AWS answers "not found" for a volume that was never modified.
        if exc.kind is ErrorKind.NOT_FOUND:
            return None
        raise
    modifications: list[dict[str, Any]] = [dict(m) for m in found]
    if not modifications:
        return None
    return max(modifications, key=lambda m: str(m.get("StartTime", "")))


def _cooldown_error(ctx: ActionContext, volume_id: str, since: datetime) -> aws.AwsError:
    since = since.astimezone(UTC)
    until = since + MODIFICATION_COOLDOWN
    return aws.AwsError(
        ErrorKind.RECOVERABLE,
        service="ec2",
        operation="ModifyVolume",
        code="ModificationCooldown",
        message=f"volume {volume_id} was modified at {since:%Y-%m-%d %H:%M} UTC and AWS allows "
        f"the next modification of a volume six hours later: run this rollback again at or "
        f"after {until:%Y-%m-%d %H:%M} UTC",
        region=ctx.region,
    )


@register
class ModifyToGp3(CleanupAction):
    """Change the volume to gp3 with IOPS and throughput that match or exceed what it has.

    Example CleanupPolicy rule::

        - resourceType: ebs-gp3-candidate
          action: modify-to-gp3

    No data is lost and the volume stays attached (AWS changes the type online); performance may
    be briefly lower while the volume is ``optimizing``.
    """

    resource_type: ClassVar[str] = "ebs-gp3-candidate"
    action: ClassVar[str] = "modify-to-gp3"
    action_type: ClassVar[ActionType] = ActionType.RESIZE
    rollback_possible: ClassVar[bool] = True
    rollback_note: ClassVar[str] = (
        "modifies the volume back to its recorded type and IOPS, once AWS's six-hour cooldown "
        "after the change to gp3 has passed"
    )
    permissions: ClassVar[tuple[str, ...]] = (
        "ec2:DescribeVolumes",
        "ec2:DescribeVolumesModifications",
        "ec2:ModifyVolume",
    )

    def recheck(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        volume = describe_volume(ctx, item.resource_id)
        if volume is None:
            return Recheck.gone("volume no longer exists")
        tags = tag_map(volume.get("Tags"))
        facts: dict[str, Any] = {
            "volume_type": volume.get("VolumeType"),
            "size": volume.get("Size"),
            "iops": volume.get("Iops"),
            "tags": tags,
        }
        if volume.get("VolumeType") == "gp3":
            return Recheck.gone("volume is gp3 already", **facts)
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
            ),
        )
        if changes:
            return Recheck(False, f"volume changed since the scan: {', '.join(changes)}", facts)
        if not (item.resource_details.get("target") or {}).get("iops"):
            return Recheck(False, "the finding has no gp3 target: scan again", facts)
        modification = latest_modification(ctx, item.resource_id)
        if modification and modification.get("ModificationState") in _IN_PROGRESS:
            state = modification.get("ModificationState")
            return Recheck(False, f"a modification of the volume is {state}", facts)
        return Recheck(True, "still not gp3, unprotected and unchanged", facts)

    def _request(self, item: CleanupItem) -> dict[str, Any]:
        target = item.resource_details.get("target") or {}
        return {
            "VolumeId": item.resource_id,
            "VolumeType": "gp3",
            "Iops": int(target["iops"]),
            "Throughput": int(target["throughput_mibps"]),
        }

    def dry_run(
        self, ctx: ActionContext, item: CleanupItem, params: ActionParameters
    ) -> DryRunResult:
        return dry_run_calls(ctx, [("ModifyVolume", self._request(item))])

    def prepare(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        recorded: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        if recorded.get("original_volume_type"):
            return dict(recorded)  # a rerun: the volume may be gp3 by now
        volume = describe_volume(ctx, item.resource_id)
        if volume is None:
            raise gone_before_recorded(
                ctx, "ec2", "DescribeVolumes", "InvalidVolume.NotFound", item.resource_id
            )
        volume_type = str(volume["VolumeType"])
        request = self._request(item)
        return {
            "volume_id": item.resource_id,
            "original_volume_type": volume_type,
            "size": int(volume["Size"]),
            "original_iops": volume.get("Iops") if volume_type in _IOPS_TYPES else None,
            "original_throughput": volume.get("Throughput"),
            "target_iops": request["Iops"],
            "target_throughput": request["Throughput"],
        }

    def execute(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        rollback_data: Mapping[str, Any],
    ) -> Outcome:
        volume = describe_volume(ctx, item.resource_id)
        if volume is None:
            raise gone_before_recorded(
                ctx, "ec2", "ModifyVolume", "InvalidVolume.NotFound", item.resource_id
            )
        modification = latest_modification(ctx, item.resource_id)
        if volume.get("VolumeType") == "gp3" or (
            modification
            and modification.get("TargetVolumeType") == "gp3"
            and modification.get("ModificationState") in _IN_PROGRESS
        ):
            return Outcome(
                {"VolumeId": item.resource_id, "VolumeType": "gp3"},
                already_done=True,
                note=f"{item.resource_id} was already modified to gp3 (an earlier attempt)",
            )
        # Into the ledger before the call: the rollback's cooldown starts no earlier than this.
        ctx.checkpoint({"modify_requested_at": ctx.now().isoformat()})
        response = call(
            ctx,
            "ModifyVolume",
            VolumeId=item.resource_id,
            VolumeType="gp3",
            Iops=int(rollback_data["target_iops"]),
            Throughput=int(rollback_data["target_throughput"]),
        )
        return Outcome(
            jsonable(response),
            note=f"modified {item.resource_id} from {rollback_data['original_volume_type']} to "
            f"gp3 ({rollback_data['target_iops']} IOPS, {rollback_data['target_throughput']} MiB/s)",
        )

    def rollback(
        self, ctx: ActionContext, rollback_data: Mapping[str, Any], params: ActionParameters
    ) -> Outcome:
        volume_id = str(rollback_data["volume_id"])
        original = str(rollback_data["original_volume_type"])
        volume = describe_volume(ctx, volume_id)
        if volume is None:
            raise aws.AwsError(
                ErrorKind.TERMINAL,
                service="ec2",
                operation="ModifyVolume",
                code="InvalidVolume.NotFound",
                message=f"volume {volume_id} no longer exists: there is nothing to modify back",
                region=ctx.region,
            )
        if volume.get("VolumeType") == original:
            return Outcome(
                {"VolumeId": volume_id, "VolumeType": original},
                already_done=True,
                note=f"{volume_id} is {original} already",
            )
        modification = latest_modification(ctx, volume_id)
        started = [
            datetime.fromisoformat(str(rollback_data["modify_requested_at"]))
            if rollback_data.get("modify_requested_at")
            else None,
            modification.get("StartTime") if modification else None,
        ]
        since = max((s for s in started if isinstance(s, datetime)), default=None)
        if since is not None and ctx.now() < since + MODIFICATION_COOLDOWN:
            raise _cooldown_error(ctx, volume_id, since)
        if modification and modification.get("ModificationState") in _IN_PROGRESS:
            raise aws.AwsError(
                ErrorKind.RECOVERABLE,
                service="ec2",
                operation="ModifyVolume",
                code="IncorrectModificationState",
                message=f"volume {volume_id} is still {modification.get('ModificationState')}: "
                "run the rollback again when the modification has completed",
                region=ctx.region,
            )
        request: dict[str, Any] = {"VolumeId": volume_id, "VolumeType": original}
        if original in _IOPS_TYPES and rollback_data.get("original_iops"):
            request["Iops"] = int(rollback_data["original_iops"])
        response = call(ctx, "ModifyVolume", **request)
        return Outcome(jsonable(response), note=f"modified {volume_id} back to {original}")


__all__ = ["MODIFICATION_COOLDOWN", "ModifyToGp3"]
