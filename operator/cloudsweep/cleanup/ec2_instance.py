"""Cleanup action for idle running EC2 instances: stop (undone by a start).

Registered in ``cleanup/__init__.py``; driven by ``cleanup.executor`` for approved
``ec2-instance`` findings of the ``ec2-instance`` detector, whose ``resource_details`` carry the
instance type, volumes and tags the scan saw.

Example CleanupPolicy rule::

    rules:
      - resourceType: ec2-instance
        action: stop

Step by step:

- recheck: ``DescribeInstances``; "gone" when it is stopped, stopping, shutting down or
  terminated (the effect is there, or nothing is left to stop); refused when it is not running,
  carries a protection tag, belongs to an Auto Scaling group (its tag, or
  ``DescribeAutoScalingInstances``: the group would replace it), has instance-store volumes
  (``DescribeInstanceTypes``: a stop erases them), is instance-store backed or a spot instance,
  or its type changed since the scan; refused too when CloudWatch shows it busy over the last
  day by the scan's own thresholds (``GetMetricData``: CPU peak, network in + out).
- dry run: ``StopInstances`` with ``DryRun=True``.
- prepare: records ``instance_id, instance_type, state_before, availability_zone,
  private_ip_address, public_ip_address, volume_ids, tags``: a start gives the instance a new
  public IP unless an Elastic IP holds it, and the audit trail says which one it had.
- execute: ``StopInstances``; ``InvalidInstanceID.NotFound`` is done (nothing left to stop);
  stopping a stopped instance is a no-op in AWS, so a retry after a lost response repeats no
  effect.
- rollback: ``StartInstances`` (a no-op on a running instance), then waits until it runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar

from cloudsweep import aws
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
    describe_one,
    destroy,
    dry_run_calls,
    jsonable,
    protected_by,
    tag_map,
    wait,
)
from cloudsweep.domain import ActionType

ASG_TAG = "aws:autoscaling:groupName"
# States in which the stop's effect is there, or there is nothing left to stop.
_GONE_STATES = frozenset({"stopping", "stopped", "shutting-down", "terminated"})


def describe_instance(ctx: ActionContext, instance_id: str) -> dict[str, Any] | None:
    def describe() -> Mapping[str, Any]:
        reservations = call(ctx, "DescribeInstances", InstanceIds=[instance_id])
        return {
            "Instances": [i for r in reservations.get("Reservations", []) for i in r["Instances"]]
        }

    return describe_one(describe, "Instances")


def instance_facts(instance: Mapping[str, Any]) -> dict[str, Any]:
    """What a re-check reports of the instance, whatever it decides: state, type and tags."""
    return {
        "state": str(instance.get("State", {}).get("Name")),
        "instance_type": instance.get("InstanceType"),
        "tags": tag_map(instance.get("Tags")),
    }


def auto_scaling_group(ctx: ActionContext, instance: Mapping[str, Any]) -> str | None:
    """The Auto Scaling group the instance belongs to: its tag, else what Auto Scaling says
    (the tag can be removed; the membership cannot be hidden)."""
    group = tag_map(instance.get("Tags")).get(ASG_TAG)
    if group:
        return group
    with aws.translated("autoscaling", "DescribeAutoScalingInstances", ctx.region):
        found = ctx.client("autoscaling").describe_auto_scaling_instances(
            InstanceIds=[instance["InstanceId"]]
        )
    members = found.get("AutoScalingInstances") or []
    return str(members[0]["AutoScalingGroupName"]) if members else None


def not_stoppable(ctx: ActionContext, instance: Mapping[str, Any]) -> str | None:
    """Why stopping would lose data or is impossible, or None."""
    if instance.get("RootDeviceType") == "instance-store":
        return "its root device is an instance store: it cannot be stopped"
    if instance.get("InstanceLifecycle") == "spot":
        return "it is a spot instance: AWS interrupts spot instances, CloudSweep does not stop them"
    instance_type = str(instance.get("InstanceType") or "")
    if not instance_type:
        return None
    types = call(ctx, "DescribeInstanceTypes", InstanceTypes=[instance_type]).get(
        "InstanceTypes", []
    )
    if any(t.get("InstanceStorageSupported") for t in types):
        return f"{instance_type} has instance-store volumes, whose data a stop erases"
    return None


def _usage_queries(instance_id: str) -> list[dict[str, Any]]:
    dims = [{"Name": "InstanceId", "Value": instance_id}]
    return [
        {
            "Id": query_id,
            "MetricStat": {
                "Metric": {"Namespace": "AWS/EC2", "MetricName": metric, "Dimensions": dims},
                "Period": 3600,
                "Stat": stat,
            },
        }
        for query_id, metric, stat in (
            ("cpu", "CPUUtilization", "Maximum"),
            ("net_in", "NetworkIn", "Sum"),
            ("net_out", "NetworkOut", "Sum"),
        )
    ]


def busy_since_scan(ctx: ActionContext, item: CleanupItem) -> str | None:
    """Why the instance is no longer idle by the scan's own thresholds over the last day, or
    None. Missing datapoints say nothing either way (the finding already says so)."""
    details = item.resource_details
    max_cpu = details.get("max_cpu_percent")
    max_network = details.get("max_network_bytes_per_day")
    if max_cpu is None and max_network is None:
        return None  # a finding from before the thresholds were recorded
    end = ctx.now().replace(second=0, microsecond=0)
    with aws.translated("cloudwatch", "GetMetricData", ctx.region):
        answer = ctx.client("cloudwatch").get_metric_data(
            MetricDataQueries=_usage_queries(item.resource_id),
            StartTime=end - timedelta(days=1),
            EndTime=end,
        )
    values = {r["Id"]: list(r.get("Values", [])) for r in answer.get("MetricDataResults", [])}
    cpu = max(values.get("cpu") or [0.0])
    network = sum(values.get("net_in") or []) + sum(values.get("net_out") or [])
    if max_cpu is not None and cpu > float(max_cpu):
        return (
            f"busy since the scan: CPU peaked at {cpu:.1f}% in the last day (idle at <= {max_cpu}%)"
        )
    if max_network is not None and network > float(max_network):
        return (
            f"busy since the scan: {network:,.0f} bytes of network in the last day "
            f"(idle at <= {int(max_network):,})"
        )
    return None


def refusal(ctx: ActionContext, item: CleanupItem, instance: Mapping[str, Any]) -> str | None:
    """What makes a running instance no longer safe to stop, or None (shared with terminate)."""
    protection = protected_by(tag_map(instance.get("Tags")), ctx.protection_tags)
    if protection is not None:
        return f"instance is now protected by tag {protection}"
    group = auto_scaling_group(ctx, instance)
    if group:
        return (
            f"instance belongs to Auto Scaling group {group}, which would replace it: lower the "
            "group's desired capacity instead"
        )
    seen_type = item.resource_details.get("instance_type")
    if seen_type and seen_type != instance.get("InstanceType"):
        return (
            f"instance type changed since the scan: {seen_type} -> {instance.get('InstanceType')}"
        )
    return None


@register
class StopInstance(CleanupAction):
    """Stop the idle instance; a start undoes it. Its EBS volumes stay (and stay billed).

    Example CleanupPolicy rule::

        - resourceType: ec2-instance
          action: stop

    Refused, with the reason, for instances of an Auto Scaling group and instances with
    instance-store volumes.
    """

    resource_type: ClassVar[str] = "ec2-instance"
    action: ClassVar[str] = "stop"
    action_type: ClassVar[ActionType] = ActionType.STOP
    rollback_possible: ClassVar[bool] = True
    rollback_note: ClassVar[str] = (
        "starts the instance again (StartInstances); it keeps its ID, volumes and private IP, "
        "and gets a new public IP unless an Elastic IP is associated"
    )
    permissions: ClassVar[tuple[str, ...]] = (
        "autoscaling:DescribeAutoScalingInstances",
        "cloudwatch:GetMetricData",
        "ec2:DescribeInstanceTypes",
        "ec2:DescribeInstances",
        "ec2:StartInstances",
        "ec2:StopInstances",
    )

    def estimated_monthly_savings(self, item: CleanupItem) -> Decimal:
        """The instance hours (the finding's cost is those only; volumes are not counted)."""
        return item.monthly_cost

    def recheck(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        instance = describe_instance(ctx, item.resource_id)
        if instance is None:
            return Recheck.gone("instance no longer exists")
        facts = instance_facts(instance)
        state = str(facts["state"])
        if state in _GONE_STATES:
            return Recheck.gone(f"instance is already {state}", **facts)
        if state != "running":
            return Recheck(False, f"instance is {state}, not running", facts)
        why = (
            refusal(ctx, item, instance)
            or not_stoppable(ctx, instance)
            or busy_since_scan(ctx, item)
        )
        if why:
            return Recheck(False, why, facts)
        return Recheck(
            True, "still running, unprotected, stoppable and in no Auto Scaling group", facts
        )

    def dry_run(
        self, ctx: ActionContext, item: CleanupItem, params: ActionParameters
    ) -> DryRunResult:
        return dry_run_calls(ctx, [("StopInstances", {"InstanceIds": [item.resource_id]})])

    def prepare(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        recorded: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        if recorded.get("instance_id"):
            return dict(recorded)
        instance = describe_instance(ctx, item.resource_id) or {}
        data = {
            "instance_id": item.resource_id,
            "instance_type": instance.get("InstanceType")
            or item.resource_details.get("instance_type"),
            "state_before": instance.get("State", {}).get("Name"),
            "availability_zone": instance.get("Placement", {}).get("AvailabilityZone"),
            "private_ip_address": instance.get("PrivateIpAddress"),
            "public_ip_address": instance.get("PublicIpAddress"),
            "volume_ids": [
                m["Ebs"]["VolumeId"] for m in instance.get("BlockDeviceMappings", []) if "Ebs" in m
            ],
            "tags": tag_map(instance.get("Tags")) if instance else dict(item.tags),
        }
        ctx.checkpoint(data)
        return data

    def execute(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        rollback_data: Mapping[str, Any],
    ) -> Outcome:
        return destroy(
            ctx,
            "StopInstances",
            item.resource_id,
            "stopped",
            id_key="InstanceId",
            InstanceIds=[item.resource_id],
        )

    def rollback(
        self, ctx: ActionContext, rollback_data: Mapping[str, Any], params: ActionParameters
    ) -> Outcome:
        instance_id = str(rollback_data["instance_id"])
        instance = describe_instance(ctx, instance_id)
        if instance is None or instance.get("State", {}).get("Name") in (
            "shutting-down",
            "terminated",
        ):
            raise aws.AwsError(
                aws.ErrorKind.TERMINAL,
                service="ec2",
                operation="StartInstances",
                code="InstanceGone",
                message=f"instance {instance_id} was terminated since it was stopped: "
                "nothing to start",
                region=ctx.region,
            )
        already = instance.get("State", {}).get("Name") in ("pending", "running")
        response = {} if already else call(ctx, "StartInstances", InstanceIds=[instance_id])
        wait(ctx, "instance_running", "DescribeInstances", params, InstanceIds=[instance_id])
        return Outcome(
            {"InstanceId": instance_id, **jsonable(response)},
            already_done=already,
            note=f"started {instance_id} again",
        )


__all__ = ["StopInstance"]
