"""Cleanup action for unused AMIs: deregister the image, keep its snapshots for a grace period
(undoable while they exist).

Registered in ``cleanup/__init__.py``; driven by ``cleanup.executor`` for approved ``ami``
findings of the ``ami`` detector.

Example CleanupPolicy rule::

    rules:
      - resourceType: ami
        action: deregister
        parameters: {snapshot_grace_days: 30}

``deregister``, step by step:

- recheck: ``DescribeImages``; "gone" when the image is deregistered or unknown; refused when it
  carries a protection tag or is now used by an instance (``DescribeInstances``), a launch template
  version or an Auto Scaling launch configuration.
- dry run: ``DeregisterImage`` and ``CreateTags`` (on the snapshots) with ``DryRun=True``.
- prepare: records what ``RegisterImage`` needs to make the image again (name, description,
  architecture, root device, virtualization type, ENA/SR-IOV, boot mode, TPM, IMDS support, block
  device mappings with their snapshots, tags), checkpointed, then tags the snapshots with
  ``cloudsweep.io/retain-until`` (now + ``snapshot_grace_days``) and
  ``cloudsweep.io/deregistered-image``: the ebs-snapshot detector and actions leave them alone
  until then, and take over after.
- execute: checks that every recorded snapshot still exists, then ``DeregisterImage`` without
  deleting snapshots; an unknown or unavailable image means an earlier attempt did it.
- rollback: ``RegisterImage`` from the recorded snapshots (refused, with the reason, when one of
  them is gone), tagged with the rollback's action ID so a rerun finds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import Field

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
    dry_run_calls,
    earlier_attempt,
    gone_before_recorded,
    jsonable,
    protected_by,
    tag_map,
    tag_specification,
    user_tags,
)
from cloudsweep.cleanup.ebs_volume import describe_snapshot
from cloudsweep.domain import DEREGISTERED_IMAGE_TAG, RETAIN_UNTIL_TAG, ActionType, money

# DeregisterImage answers these for an image that is gone (Unavailable: deregistered recently).
_GONE_CODES = frozenset({"InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"})
# DescribeImages fields RegisterImage takes back, as (describe key, register parameter).
_REGISTER_FIELDS = (
    ("Name", "Name"),
    ("Description", "Description"),
    ("Architecture", "Architecture"),
    ("RootDeviceName", "RootDeviceName"),
    ("VirtualizationType", "VirtualizationType"),
    ("EnaSupport", "EnaSupport"),
    ("SriovNetSupport", "SriovNetSupport"),
    ("BootMode", "BootMode"),
    ("TpmSupport", "TpmSupport"),
    ("ImdsSupport", "ImdsSupport"),
    ("KernelId", "KernelId"),
    ("RamdiskId", "RamdiskId"),
)
_EBS_FIELDS = (
    "SnapshotId",
    "VolumeSize",
    "VolumeType",
    "DeleteOnTermination",
    "Iops",
    "Throughput",
)


class DeregisterParameters(ActionParameters):
    snapshot_grace_days: int = Field(
        default=30,
        ge=1,
        le=365,
        description="Days the image's snapshots are kept (and the rollback possible) before the "
        "ebs-snapshot detector reports them.",
    )


def describe_image(ctx: ActionContext, image_id: str) -> dict[str, Any] | None:
    try:
        images = call(ctx, "DescribeImages", ImageIds=[image_id]).get("Images", [])
    except aws.AwsError as exc:
        if exc.code in _GONE_CODES or exc.kind is ErrorKind.NOT_FOUND:
            return None
        raise
    return dict(images[0]) if images else None


def image_users(ctx: ActionContext, image_id: str) -> list[str]:
    """What launches from the image now: instances, launch template versions, launch configs."""
    users: list[str] = []
    with aws.translated("ec2", "DescribeInstances", ctx.region):
        pages = (
            ctx.client("ec2")
            .get_paginator("describe_instances")
            .paginate(Filters=[{"Name": "image-id", "Values": [image_id]}])
        )
        for page in pages:
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    if (instance.get("State") or {}).get("Name") != "terminated":
                        users.append(f"instance {instance['InstanceId']}")
    with aws.translated("ec2", "DescribeLaunchTemplateVersions", ctx.region):
        client = ctx.client("ec2")
        for page in client.get_paginator("describe_launch_templates").paginate():
            for template in page.get("LaunchTemplates", []):
                versions = client.get_paginator("describe_launch_template_versions").paginate(
                    LaunchTemplateId=template["LaunchTemplateId"]
                )
                for version_page in versions:
                    for version in version_page.get("LaunchTemplateVersions", []):
                        if (version.get("LaunchTemplateData") or {}).get("ImageId") == image_id:
                            users.append(
                                f"launch template {template.get('LaunchTemplateName')} "
                                f"version {version.get('VersionNumber')}"
                            )
    with aws.translated("autoscaling", "DescribeLaunchConfigurations", ctx.region):
        configs = ctx.client("autoscaling").get_paginator("describe_launch_configurations")
        for page in configs.paginate():
            for config in page.get("LaunchConfigurations", []):
                if config.get("ImageId") == image_id:
                    users.append(f"launch configuration {config['LaunchConfigurationName']}")
    return users


def registration(image: Mapping[str, Any]) -> dict[str, Any]:
    """What RegisterImage needs to make ``image`` again from its snapshots."""
    params = {param: image[key] for key, param in _REGISTER_FIELDS if image.get(key) is not None}
    mappings = []
    for mapping in image.get("BlockDeviceMappings") or ():
        entry: dict[str, Any] = {"DeviceName": mapping["DeviceName"]}
        if "Ebs" in mapping:
            entry["Ebs"] = {k: mapping["Ebs"][k] for k in _EBS_FIELDS if k in mapping["Ebs"]}
        if "VirtualName" in mapping:
            entry["VirtualName"] = mapping["VirtualName"]
        if "NoDevice" in mapping:
            entry["NoDevice"] = mapping["NoDevice"]
        mappings.append(entry)
    params["BlockDeviceMappings"] = mappings
    return jsonable(params)


def _snapshot_ids(register_params: Mapping[str, Any]) -> list[str]:
    return [
        str(m["Ebs"]["SnapshotId"])
        for m in register_params.get("BlockDeviceMappings") or ()
        if (m.get("Ebs") or {}).get("SnapshotId")
    ]


def _missing_snapshots(ctx: ActionContext, snapshot_ids: list[str]) -> list[str]:
    """The recorded snapshots that no longer exist (one call each: an AMI has a few)."""
    return [s for s in snapshot_ids if describe_snapshot(ctx, s) is None]


@register
class DeregisterImage(CleanupAction):
    """Deregister the AMI and keep its snapshots for ``snapshot_grace_days`` days.

    Example CleanupPolicy rule::

        - resourceType: ami
          action: deregister
          parameters: {snapshot_grace_days: 30}

    The savings come when the snapshots go: after the grace period the ebs-snapshot detector
    reports them and its ``delete`` or ``archive`` actions (with their own savings) take over, so
    this action's own estimate is 0 and nothing is counted twice.
    """

    resource_type: ClassVar[str] = "ami"
    action: ClassVar[str] = "deregister"
    action_type: ClassVar[ActionType] = ActionType.DELETE
    rollback_possible: ClassVar[bool] = True
    rollback_note: ClassVar[str] = (
        "registers the image again from its kept snapshots (a new AMI ID, same name, "
        "architecture, devices and tags), while the snapshots exist"
    )
    permissions: ClassVar[tuple[str, ...]] = (
        "autoscaling:DescribeLaunchConfigurations",
        "ec2:CreateTags",
        "ec2:DeregisterImage",
        "ec2:DescribeImages",
        "ec2:DescribeInstances",
        "ec2:DescribeLaunchTemplateVersions",
        "ec2:DescribeLaunchTemplates",
        "ec2:DescribeSnapshots",
        "ec2:RegisterImage",
    )
    Parameters: ClassVar[type[ActionParameters]] = DeregisterParameters

    def estimated_monthly_savings(self, item: CleanupItem) -> Decimal:
        return money(0)

    def recheck(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        image = describe_image(ctx, item.resource_id)
        if image is None or image.get("State") == "deregistered":
            return Recheck.gone("image is deregistered")
        tags = tag_map(image.get("Tags"))
        facts: dict[str, Any] = {"state": image.get("State"), "tags": tags}
        if image.get("State") != "available":
            return Recheck(False, f"image is {image.get('State')}, not available", facts)
        protection = protected_by(tags, ctx.protection_tags)
        if protection is not None:
            return Recheck(False, f"image is now protected by tag {protection}", facts)
        users = image_users(ctx, item.resource_id)
        if users:
            facts["used_by"] = users
            return Recheck(False, f"image is now used by {', '.join(users[:5])}", facts)
        return Recheck(True, "still available, unprotected and used by nothing", facts)

    def dry_run(
        self, ctx: ActionContext, item: CleanupItem, params: ActionParameters
    ) -> DryRunResult:
        image = describe_image(ctx, item.resource_id) or {}
        snapshots = _snapshot_ids(registration(image)) if image else []
        calls: list[tuple[str, dict[str, Any]]] = [
            ("DeregisterImage", {"ImageId": item.resource_id})
        ]
        if snapshots:
            calls.insert(
                0,
                (
                    "CreateTags",
                    {
                        "Resources": snapshots,
                        "Tags": [{"Key": RETAIN_UNTIL_TAG, "Value": "dry-run"}],
                    },
                ),
            )
        return dry_run_calls(ctx, calls)

    def prepare(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        recorded: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        assert isinstance(params, DeregisterParameters)
        if recorded.get("register"):
            data = dict(recorded)
        else:
            image = describe_image(ctx, item.resource_id)
            if image is None:
                raise gone_before_recorded(
                    ctx, "ec2", "DescribeImages", "InvalidAMIID.NotFound", item.resource_id
                )
            retain_until = (ctx.now() + timedelta(days=params.snapshot_grace_days)).isoformat(
                timespec="seconds"
            )
            data = {
                "image_id": item.resource_id,
                "register": registration(image),
                "tags": user_tags(tag_map(image.get("Tags"))),
                "snapshot_ids": _snapshot_ids(registration(image)),
                "retain_until": retain_until,
            }
            # Into the ledger before the snapshots are tagged: a rerun tags the same date.
            ctx.checkpoint(data)
        if data["snapshot_ids"]:
            call(
                ctx,
                "CreateTags",
                Resources=list(data["snapshot_ids"]),
                Tags=[
                    {"Key": RETAIN_UNTIL_TAG, "Value": str(data["retain_until"])},
                    {"Key": DEREGISTERED_IMAGE_TAG, "Value": item.resource_id},
                ],
            )
        return data

    def execute(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        rollback_data: Mapping[str, Any],
    ) -> Outcome:
        if not rollback_data.get("register"):
            raise MissingRollbackData(
                "DeregisterImage",
                "deregister",
                item.resource_id,
                ctx.region,
                "its registration was not recorded",
            )
        missing = _missing_snapshots(ctx, list(rollback_data.get("snapshot_ids") or []))
        if missing:
            raise aws.AwsError(
                ErrorKind.TERMINAL,
                service="ec2",
                operation="DeregisterImage",
                code="MissingRollbackData",
                message=f"refusing to deregister {item.resource_id}: its snapshot(s) "
                f"{', '.join(missing)} are gone, so it could not be registered again",
                region=ctx.region,
            )
        try:
            # Never DeleteAssociatedSnapshots: the snapshots are the undo data.
            response = call(ctx, "DeregisterImage", ImageId=item.resource_id)
        except aws.AwsError as exc:
            if exc.code in _GONE_CODES or exc.kind is ErrorKind.NOT_FOUND:
                return Outcome(
                    {"ImageId": item.resource_id, "Error": exc.code},
                    already_done=True,
                    note=f"{item.resource_id} was already deregistered (an earlier attempt)",
                )
            raise
        return Outcome(
            {**jsonable(response), "ImageId": item.resource_id},
            note=f"deregistered {item.resource_id}; snapshots "
            f"{', '.join(rollback_data.get('snapshot_ids') or []) or '(none)'} kept until "
            f"{rollback_data.get('retain_until')}",
        )

    def rollback(
        self, ctx: ActionContext, rollback_data: Mapping[str, Any], params: ActionParameters
    ) -> Outcome:
        action_id = str(ctx.action_id)
        register = dict(rollback_data["register"])
        earlier = self._registered_again(ctx, str(register.get("Name", "")))
        if earlier is not None:
            return Outcome(
                {"ImageId": earlier, "PreviousImageId": rollback_data.get("image_id")},
                already_done=True,
                note=f"{rollback_data.get('image_id')} was registered again as {earlier} "
                "(an earlier attempt)",
            )
        missing = _missing_snapshots(ctx, list(rollback_data.get("snapshot_ids") or []))
        if missing:
            raise aws.AwsError(
                ErrorKind.TERMINAL,
                service="ec2",
                operation="RegisterImage",
                code="InvalidSnapshot.NotFound",
                message=f"snapshot(s) {', '.join(missing)} of {rollback_data.get('image_id')} "
                "are gone (the grace period ended or someone deleted them): the image cannot "
                "be registered again",
                region=ctx.region,
            )
        tags = action_tags(rollback_data.get("tags"), action_id)
        response = call(
            ctx, "RegisterImage", **register, TagSpecifications=tag_specification("image", tags)
        )
        image_id = str(response["ImageId"])
        ctx.checkpoint({"registered_image_id": image_id})
        # Some endpoints ignore TagSpecifications of RegisterImage; CreateTags is idempotent.
        call(
            ctx,
            "CreateTags",
            Resources=[image_id],
            Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        )
        return Outcome(
            {"ImageId": image_id, "PreviousImageId": rollback_data.get("image_id")},
            note=f"{rollback_data.get('image_id')} registered again as {image_id}",
        )

    def _registered_again(self, ctx: ActionContext, name: str) -> str | None:
        """The image an earlier attempt of this rollback registered: tagged with its action ID,
        or (its answer lost before the tags were set) the account's image of the same name, which
        AWS keeps unique per region."""
        usable = earlier_attempt(
            ctx, "DescribeImages", "Images", Owners=["self"], live=_usable_image
        )
        if not usable and name:
            found = call(
                ctx,
                "DescribeImages",
                Owners=["self"],
                Filters=[{"Name": "name", "Values": [name]}],
            ).get("Images", [])
            usable = [i for i in found if _usable_image(i)]
        return str(usable[0]["ImageId"]) if usable else None


def _usable_image(image: Mapping[str, Any]) -> bool:
    return image.get("State") in ("available", "pending")


__all__ = ["DeregisterImage", "DeregisterParameters"]
