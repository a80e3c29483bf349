"""Cleanup action for long-stopped EC2 instances: keep an AMI (with its snapshots), then terminate.

Registered in ``cleanup/__init__.py``; driven by ``cleanup.executor`` for approved
``ec2-stopped-instance`` findings of the ``ec2-stopped-instance`` detector, whose
``resource_details`` carry the instance type, volume IDs, Elastic IPs and, under ``pricing``, the
volumes' size and monthly cost.

Example CleanupPolicy rule::

    rules:
      - resourceType: ec2-stopped-instance
        action: snapshot-and-terminate
        parameters: {wait_delay_seconds: 15, wait_max_attempts: 480}

``snapshot-and-terminate``, step by step:

- recheck: ``DescribeInstances``; "gone" when it is shutting down or terminated; refused when it
  is not stopped, carries a protection tag, belongs to an Auto Scaling group, has termination
  protection (``DescribeInstanceAttribute``), its type or volumes changed since the scan, or it
  was started and stopped again since the scan (its stop time moved: the scan's
  ``min_stopped_days`` held for the old stop time only).
- dry run: ``CreateImage`` and ``TerminateInstances`` with ``DryRun=True``.
- prepare: records what a relaunch needs (type, subnet, security groups, IAM instance profile,
  key pair, user data (as text to read and as its exact bytes), tags, zone, volumes) and the
  AMI tagged with the action ID (from the ledger's checkpoint, else found by the tag, else
  created with ``CreateImage``: it snapshots every EBS volume), checkpointed as soon as AWS
  returns its ID, then waited for until ``available``.
- execute: checks the AMI is still ``available``, then ``TerminateInstances``;
  ``InvalidInstanceID.NotFound`` means an earlier attempt terminated it (terminating a
  terminated instance is a no-op in AWS as well).
- rollback: ``RunInstances`` from the AMI with the recorded configuration, the rollback's action
  ID as ``ClientToken`` (AWS's own idempotency: a rerun returns the same instance) and as a tag;
  then stops it, as the original was.

Volumes whose ``DeleteOnTermination`` is false survive the termination (and their bill); Elastic
IPs are disassociated, not released: the ebs-volume and elastic-ip detectors find them next.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from cloudsweep import aws
from cloudsweep.aws import ErrorKind
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
    MissingRollbackData,
    action_tags,
    call,
    describe_one,
    destroy,
    dry_run_calls,
    earlier_attempt,
    oldest_usable,
    tag_map,
    tag_specification,
    user_tags,
    wait,
)
from cloudsweep.cleanup.ec2_instance import describe_instance, instance_facts, refusal
from cloudsweep.domain import ActionType, money, stopped_at
from cloudsweep.pricing import active

SOURCE_INSTANCE_TAG = "cloudsweep.io/source-instance"
RESTORED_FROM_TAG = "cloudsweep.io/restored-from-image"
_GONE_STATES = frozenset({"shutting-down", "terminated"})
_LIVE_STATES = ("pending", "running", "stopping", "stopped")
_CONFIG_KEYS = (
    "instance_id",
    "instance_type",
    "availability_zone",
    "subnet_id",
    "security_group_ids",
    "iam_instance_profile_arn",
    "key_name",
    "user_data",
    "user_data_base64",
    "ebs_optimized",
    "volume_ids",
    "kept_volume_ids",
    "tags",
)


def describe_image(ctx: ActionContext, image_id: str) -> dict[str, Any] | None:
    return describe_one(lambda: call(ctx, "DescribeImages", ImageIds=[image_id]), "Images")


def _attribute(ctx: ActionContext, instance_id: str, attribute: str, key: str) -> Any:
    found = call(ctx, "DescribeInstanceAttribute", InstanceId=instance_id, Attribute=attribute)
    return (found.get(key) or {}).get("Value")


def instance_config(ctx: ActionContext, instance: Mapping[str, Any]) -> dict[str, Any]:
    """What ``RunInstances`` needs to launch the instance again from its AMI."""
    instance_id = str(instance["InstanceId"])
    encoded = _attribute(ctx, instance_id, "userData", "UserData")
    mappings = [m for m in instance.get("BlockDeviceMappings", []) if "Ebs" in m]
    return {
        "instance_id": instance_id,
        "instance_type": instance.get("InstanceType"),
        "availability_zone": instance.get("Placement", {}).get("AvailabilityZone"),
        "subnet_id": instance.get("SubnetId"),
        "security_group_ids": [g["GroupId"] for g in instance.get("SecurityGroups", [])],
        "iam_instance_profile_arn": (instance.get("IamInstanceProfile") or {}).get("Arn"),
        "key_name": instance.get("KeyName"),
        # DescribeInstanceAttribute answers base64: the text is for people reading the record;
        # the rollback relaunches with the exact bytes (user data may be gzip or binary).
        "user_data": base64.b64decode(encoded).decode("utf-8", "replace") if encoded else None,
        "user_data_base64": str(encoded) if encoded else None,
        "ebs_optimized": bool(instance.get("EbsOptimized", False)),
        "volume_ids": [m["Ebs"]["VolumeId"] for m in mappings],
        "kept_volume_ids": [
            m["Ebs"]["VolumeId"] for m in mappings if not m["Ebs"].get("DeleteOnTermination", True)
        ],
        "tags": user_tags(tag_map(instance.get("Tags"))),
    }


def stopped_again(item: CleanupItem, instance: Mapping[str, Any]) -> str | None:
    """Why the instance is not the one the scan saw stopped for ``min_stopped_days``: it was
    started and stopped again since (its stop time moved), or None. The scan's threshold held
    for the stop time it recorded; with that stop time unchanged, it still holds."""
    if "stopped_at" not in item.resource_details:
        return None  # a finding from before the stop time was recorded
    seen_text = item.resource_details.get("stopped_at")
    seen = datetime.fromisoformat(str(seen_text)) if seen_text else None
    live = stopped_at(instance.get("StateTransitionReason"))
    if live == seen:
        return None
    return (
        f"instance was started and stopped again since the scan: stopped at "
        f"{live.isoformat() if live else 'an unknown time'}, the scan saw it stopped since "
        f"{seen.isoformat() if seen else 'an unknown time'}"
    )


@register
class SnapshotAndTerminateInstance(CleanupAction):
    """Create an AMI of the stopped instance (snapshots of all its volumes), wait, terminate it;
    undo launches an instance from the AMI with the recorded configuration.

    Example CleanupPolicy rule::

        - resourceType: ec2-stopped-instance
          action: snapshot-and-terminate
          parameters: {wait_delay_seconds: 15, wait_max_attempts: 480}

    The AMI and its snapshots are kept (and billed at the snapshot price) until someone
    deregisters it; they carry ``cloudsweep.io/action-id`` and ``cloudsweep.io/source-instance``.
    """

    resource_type: ClassVar[str] = "ec2-stopped-instance"
    action: ClassVar[str] = "snapshot-and-terminate"
    action_type: ClassVar[ActionType] = ActionType.DELETE
    rollback_possible: ClassVar[bool] = True
    rollback_note: ClassVar[str] = (
        "launches an instance from the AMI taken before termination, with the recorded type, "
        "subnet, security groups, IAM instance profile, key pair, user data and tags, then stops "
        "it (a new instance ID; Elastic IPs must be associated again)"
    )
    permissions: ClassVar[tuple[str, ...]] = (
        "autoscaling:DescribeAutoScalingInstances",
        "ec2:CreateImage",
        "ec2:CreateTags",
        "ec2:DescribeImages",
        "ec2:DescribeInstanceAttribute",
        "ec2:DescribeInstances",
        "ec2:RunInstances",
        "ec2:StopInstances",
        "ec2:TerminateInstances",
        "iam:PassRole",
    )

    def estimated_monthly_savings(self, item: CleanupItem) -> Decimal:
        """The volumes' cost less the AMI's snapshots (at the volumes' full size: an upper bound,
        EBS stores only written blocks). Elastic IPs are disassociated, not released: not saved."""
        pricing = item.resource_details.get("pricing") or {}
        volumes = Decimal(str(pricing.get("volumes_monthly", item.monthly_cost)))
        size = pricing.get("volumes_gib")
        if size is None:
            return money(volumes)
        try:
            kept = active.active_catalog().ebs_snapshot_monthly(item.region, int(size))
        except LookupError:
            return money(volumes)
        return max(money(0), money(volumes - kept))

    def recheck(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        instance = describe_instance(ctx, item.resource_id)
        if instance is None:
            return Recheck.gone("instance no longer exists")
        facts = instance_facts(instance)
        state = str(facts["state"])
        if state in _GONE_STATES:
            return Recheck.gone(f"instance is already {state}", **facts)
        if state != "stopped":
            return Recheck(False, f"instance is {state}, not stopped: someone uses it", facts)
        why = refusal(ctx, item, instance) or stopped_again(item, instance)
        if why:
            return Recheck(False, why, facts)
        if _attribute(ctx, item.resource_id, "disableApiTermination", "DisableApiTermination"):
            return Recheck(False, "termination protection is on", facts)
        volumes = sorted(
            m["Ebs"]["VolumeId"] for m in instance.get("BlockDeviceMappings", []) if "Ebs" in m
        )
        seen = item.resource_details.get("volume_ids")
        if seen is not None and sorted(seen) != volumes:
            return Recheck(
                False, f"volumes changed since the scan: {sorted(seen)} -> {volumes}", facts
            )
        return Recheck(
            True, "still stopped, unprotected, unchanged, in no Auto Scaling group", facts
        )

    def dry_run(
        self, ctx: ActionContext, item: CleanupItem, params: ActionParameters
    ) -> DryRunResult:
        return dry_run_calls(
            ctx,
            [
                ("CreateImage", {"InstanceId": item.resource_id, "Name": self._name(ctx, item)}),
                ("TerminateInstances", {"InstanceIds": [item.resource_id]}),
            ],
        )

    @staticmethod
    def _name(ctx: ActionContext, item: CleanupItem) -> str:
        return f"cloudsweep-{item.resource_id}-{str(ctx.action_id)[:8]}"

    def prepare(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        recorded: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        image = self._earlier_image(ctx, recorded)
        instance = describe_instance(ctx, item.resource_id)
        live = instance is not None and instance.get("State", {}).get("Name") not in _GONE_STATES
        if live and instance is not None:
            config = instance_config(ctx, instance)
        elif image is not None and "instance_type" in recorded:
            # Terminated after a complete prepare (a rerun after execute): the ledger has it all.
            config = {k: recorded.get(k) for k in _CONFIG_KEYS}
        else:
            raise aws.AwsError(
                ErrorKind.NOT_FOUND,
                service="ec2",
                operation="CreateImage",
                code="InvalidInstanceID.NotFound",
                message=f"instance {item.resource_id} no longer exists and this action recorded "
                "no image and configuration of it: nothing to image or terminate",
                region=ctx.region,
            )
        if image is None:
            tags = {ACTION_TAG: str(ctx.action_id), SOURCE_INSTANCE_TAG: item.resource_id}
            image = call(
                ctx,
                "CreateImage",
                InstanceId=item.resource_id,
                Name=self._name(ctx, item),
                Description=f"CloudSweep: {item.resource_id} before termination "
                f"(action {ctx.action_id})",
                NoReboot=True,  # it is stopped: nothing to flush
                TagSpecifications=tag_specification("image", tags),
            )
        image_id = str(image["ImageId"])
        # Into the ledger before anything can fail: a crash from here on finds this image.
        if recorded.get("image_id") != image_id or "instance_type" not in recorded:
            ctx.checkpoint({"image_id": image_id, **config})
        if image.get("State") == "failed":
            raise aws.AwsError(
                ErrorKind.TERMINAL,
                service="ec2",
                operation="CreateImage",
                code="ImageFailed",
                message=f"AMI {image_id} failed ({image.get('StateReason') or 'no reason'}); the "
                "instance was not terminated. Deregister the AMI and retry the action",
                region=ctx.region,
            )
        if image.get("State") != "available":
            wait(ctx, "image_available", "DescribeImages", params, ImageIds=[image_id])
            image = describe_image(ctx, image_id) or image
        snapshot_ids = self._tag_snapshots(ctx, item, image)
        return {"image_id": image_id, "snapshot_ids": snapshot_ids, **config}

    def _tag_snapshots(
        self, ctx: ActionContext, item: CleanupItem, image: Mapping[str, Any]
    ) -> list[str]:
        """Tag the AMI's snapshots with the action ID, so whoever finds them knows why they
        exist. Tagged here rather than in CreateImage's TagSpecifications, which the emulator
        of the tests and the demo does not take for snapshots; CreateTags is idempotent."""
        snapshot_ids = [
            str(m["Ebs"]["SnapshotId"])
            for m in image.get("BlockDeviceMappings", [])
            if m.get("Ebs", {}).get("SnapshotId")
        ]
        if snapshot_ids:
            tags = {ACTION_TAG: str(ctx.action_id), SOURCE_INSTANCE_TAG: item.resource_id}
            call(
                ctx,
                "CreateTags",
                Resources=snapshot_ids,
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )
        return snapshot_ids

    def _earlier_image(
        self, ctx: ActionContext, recorded: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The AMI an earlier attempt of this action made: checkpointed, or tagged."""
        recorded_id = recorded.get("image_id")
        if recorded_id:
            image = describe_image(ctx, str(recorded_id))
            if image is not None:
                return image
        found = earlier_attempt(ctx, "DescribeImages", "Images", Owners=["self"])
        return oldest_usable(found, lambda i: i.get("State") != "failed", "CreationDate")

    def execute(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        rollback_data: Mapping[str, Any],
    ) -> Outcome:
        image_id = rollback_data.get("image_id")
        if not image_id:
            raise MissingRollbackData(
                "TerminateInstances",
                "terminate",
                item.resource_id,
                ctx.region,
                "no AMI was recorded",
            )
        # The undo copy must exist right before the instance goes: someone may have removed it.
        image = describe_image(ctx, str(image_id))
        state = image.get("State") if image else "missing"
        if state != "available":
            raise MissingRollbackData(
                "TerminateInstances",
                "terminate",
                item.resource_id,
                ctx.region,
                f"its AMI {image_id} is {state}",
            )
        outcome = destroy(
            ctx,
            "TerminateInstances",
            item.resource_id,
            "terminated",
            id_key="InstanceId",
            InstanceIds=[item.resource_id],
        )
        kept = list(rollback_data.get("kept_volume_ids") or [])
        note = f"{outcome.note}; AMI {image_id} kept for rollback"
        if kept:
            note += f"; volumes {', '.join(kept)} survive (DeleteOnTermination false)"
        return Outcome(
            {**outcome.response, "ImageId": image_id}, already_done=outcome.already_done, note=note
        )

    def rollback(
        self, ctx: ActionContext, rollback_data: Mapping[str, Any], params: ActionParameters
    ) -> Outcome:
        action_id = str(ctx.action_id)
        image_id = str(rollback_data["image_id"])
        tags = action_tags(rollback_data.get("tags"), action_id, {RESTORED_FROM_TAG: image_id})
        request: dict[str, Any] = {
            "ImageId": image_id,
            "InstanceType": rollback_data["instance_type"],
            "MinCount": 1,
            "MaxCount": 1,
            # AWS's idempotency key: a rerun of this rollback gets the same instance back.
            "ClientToken": action_id,
            "TagSpecifications": tag_specification("instance", tags),
        }
        if rollback_data.get("subnet_id"):
            request["SubnetId"] = rollback_data["subnet_id"]
        elif rollback_data.get("availability_zone"):
            request["Placement"] = {"AvailabilityZone": rollback_data["availability_zone"]}
        if rollback_data.get("security_group_ids"):
            request["SecurityGroupIds"] = list(rollback_data["security_group_ids"])
        if rollback_data.get("iam_instance_profile_arn"):
            request["IamInstanceProfile"] = {"Arn": rollback_data["iam_instance_profile_arn"]}
        if rollback_data.get("key_name"):
            request["KeyName"] = rollback_data["key_name"]
        if rollback_data.get("user_data_base64"):
            # The exact bytes; RunInstances (boto3) base64-encodes them again.
            request["UserData"] = base64.b64decode(str(rollback_data["user_data_base64"]))
        elif rollback_data.get("user_data"):
            # A record made before the exact bytes were kept: its text is all there is.
            request["UserData"] = rollback_data["user_data"]
        if rollback_data.get("ebs_optimized"):
            request["EbsOptimized"] = True
        # An earlier run of this rollback, found by its tag (the ClientToken covers AWS; the
        # tag also covers endpoints that ignore it).
        earlier = earlier_attempt(
            ctx,
            "DescribeInstances",
            "Reservations.Instances",
            filters=[{"Name": "instance-state-name", "Values": list(_LIVE_STATES)}],
            live=lambda i: i.get("State", {}).get("Name") in _LIVE_STATES,
        )
        if earlier:
            instance_id = str(earlier[0]["InstanceId"])
        else:
            launched = call(ctx, "RunInstances", **request)
            instance_id = str(launched["Instances"][0]["InstanceId"])
        ctx.checkpoint({"restored_instance_id": instance_id})
        current = describe_instance(ctx, instance_id) or {}
        if current.get("State", {}).get("Name") not in ("stopping", "stopped"):
            wait(ctx, "instance_running", "DescribeInstances", params, InstanceIds=[instance_id])
            # The original was stopped: so is its restoration (a start is the owner's call).
            call(ctx, "StopInstances", InstanceIds=[instance_id])
        wait(ctx, "instance_stopped", "DescribeInstances", params, InstanceIds=[instance_id])
        return Outcome(
            {"InstanceId": instance_id, "ImageId": image_id},
            already_done=bool(earlier),
            note=f"instance {instance_id} launched from {image_id} and stopped "
            f"(was {rollback_data.get('instance_id')})",
        )


__all__ = ["MissingRollbackData", "SnapshotAndTerminateInstance"]
