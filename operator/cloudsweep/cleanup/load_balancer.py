"""Cleanup of idle load balancers: delete, after recording the full configuration, and recreate.

Registered in ``cloudsweep.cleanup`` by ``@cleanup.register``; driven by the cleanup executor for
findings of the ``load-balancer`` detector, ELBv2 (application, network, gateway) and classic alike.
This module holds the action's steps; each kind's describe, re-check and record are in
``lb_elbv2`` and ``lb_classic``, its rebuild in ``lb_elbv2_restore`` and ``lb_classic_restore``,
and what they share in ``lb_common``.

Example CleanupPolicy entry::

    actions:
      - resourceType: load-balancer
        action: delete
        minConfidence: 80
        requireApproval: true

What ``rollback_data`` holds (JSON; times as ISO strings), ELBv2::

    {"kind": "elbv2", "config_complete": true, "recorded_at": "...",
     "load_balancer": {...DescribeLoadBalancers entry...},
     "attributes": [{"Key": ..., "Value": ...}], "tags": [{"Key": ..., "Value": ...}],
     "listeners": [{...DescribeListeners entry..., "Certificates": [...], "Tags": [...],
                    "Rules": [{...DescribeRules entry (non-default)..., "Tags": [...]}]}],
     "target_groups": [{...DescribeTargetGroups entry..., "Attributes": [...], "Tags": [...],
                        "Targets": [{"Id": ..., "Port": ...}]}]}

classic::

    {"kind": "classic", "config_complete": true, "recorded_at": "...",
     "load_balancer": {...DescribeLoadBalancers entry...}, "attributes": {...},
     "tags": [...], "policies": [...DescribeLoadBalancerPolicies entries...]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import (
    lb_classic,
    lb_classic_restore,
    lb_elbv2,
    lb_elbv2_restore,
)
from cloudsweep.cleanup.base import (
    ActionContext,
    ActionParameters,
    CleanupAction,
    CleanupItem,
    DryRunResult,
    Outcome,
    Recheck,
)
from cloudsweep.cleanup.lb_common import CLASSIC, ELBV2, call, jsonable, not_found
from cloudsweep.domain import ActionType


@cleanup.register
class DeleteLoadBalancer(CleanupAction):
    """Delete an idle load balancer after recording everything needed to build it again.

    Target groups are *not* deleted: they cost nothing on their own and may be shared with other
    load balancers. Rollback re-attaches the recorded target groups if they still exist and
    recreates them (with their recorded targets) from the record if not.

    A recreated load balancer gets a new ARN and DNS name (AWS never reuses them): DNS records
    that pointed at the old name must be updated; the rollback outcome names both.

    Example CleanupPolicy entry::

        actions:
          - resourceType: load-balancer
            action: delete
    """

    resource_type = "load-balancer"
    action = "delete"
    action_type = ActionType.DELETE
    rollback_possible = True
    rollback_note = (
        "recreates the load balancer from its recorded configuration (listeners, rules, "
        "certificates, attributes, tags, target groups); it gets a new ARN and DNS name"
    )
    permissions = (
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeLoadBalancerAttributes",
        "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeListenerCertificates",
        "elasticloadbalancing:DescribeRules",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetGroupAttributes",
        "elasticloadbalancing:DescribeTargetHealth",
        "elasticloadbalancing:DescribeInstanceHealth",
        "elasticloadbalancing:DescribeLoadBalancerPolicies",
        "elasticloadbalancing:DeleteLoadBalancer",
        "cloudwatch:GetMetricData",  # re-reads the traffic of one judged idle by its traffic
        # rollback
        "elasticloadbalancing:CreateLoadBalancer",
        "elasticloadbalancing:ModifyLoadBalancerAttributes",
        "elasticloadbalancing:AddTags",
        "elasticloadbalancing:CreateListener",
        "elasticloadbalancing:AddListenerCertificates",
        "elasticloadbalancing:CreateRule",
        "elasticloadbalancing:CreateTargetGroup",
        "elasticloadbalancing:ModifyTargetGroupAttributes",
        "elasticloadbalancing:RegisterTargets",
        "elasticloadbalancing:ConfigureHealthCheck",
        "elasticloadbalancing:CreateLoadBalancerPolicy",
        "elasticloadbalancing:CreateLBCookieStickinessPolicy",
        "elasticloadbalancing:CreateAppCookieStickinessPolicy",
        "elasticloadbalancing:SetLoadBalancerPoliciesOfListener",
        "elasticloadbalancing:SetLoadBalancerPoliciesForBackendServer",
        "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
    )

    # --- identity --------------------------------------------------------------------------

    @staticmethod
    def is_classic(item: CleanupItem) -> bool:
        return item.resource_details.get("lb_type") == "classic"

    @staticmethod
    def arn(ctx: ActionContext, item: CleanupItem) -> str:
        return lb_elbv2.load_balancer_arn(ctx, item)

    # --- recheck ---------------------------------------------------------------------------

    def recheck(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        if self.is_classic(item):
            return lb_classic.recheck(ctx, item)
        return lb_elbv2.recheck(ctx, item)

    # --- dry run ---------------------------------------------------------------------------

    def dry_run(
        self, ctx: ActionContext, item: CleanupItem, params: ActionParameters
    ) -> DryRunResult:
        # Neither ELB API has a DryRun parameter: check read-only what would make the delete fail.
        if self.is_classic(item):
            calls: tuple[str, ...] = (
                "elasticloadbalancing:DescribeLoadBalancers",
                "elasticloadbalancing:DescribeLoadBalancerAttributes",
                "elasticloadbalancing:DescribeTags",
                "elasticloadbalancing:DescribeLoadBalancerPolicies",
                "elasticloadbalancing:DeleteLoadBalancer",
            )
            if lb_classic.describe_load_balancer(ctx, item.resource_id) is None:
                return DryRunResult(False, f"{item.resource_id} no longer exists", calls)
            return DryRunResult(
                True,
                f"would record the configuration of classic load balancer {item.resource_id} "
                "and delete it",
                calls,
            )
        calls = (
            "elasticloadbalancing:DescribeLoadBalancers",
            "elasticloadbalancing:DescribeLoadBalancerAttributes",
            "elasticloadbalancing:DescribeTags",
            "elasticloadbalancing:DescribeListeners",
            "elasticloadbalancing:DescribeListenerCertificates",
            "elasticloadbalancing:DescribeRules",
            "elasticloadbalancing:DescribeTargetGroups",
            "elasticloadbalancing:DescribeTargetGroupAttributes",
            "elasticloadbalancing:DescribeTargetHealth",
            "elasticloadbalancing:DeleteLoadBalancer",
        )
        arn = self.arn(ctx, item)
        if lb_elbv2.describe_load_balancer(ctx, arn) is None:
            return DryRunResult(False, f"{item.resource_id} no longer exists", calls)
        attributes = {a["Key"]: a["Value"] for a in lb_elbv2.load_balancer_attributes(ctx, arn)}
        if attributes.get("deletion_protection.enabled") == "true":
            return DryRunResult(
                False,
                f"DeleteLoadBalancer would fail: deletion protection is on for {item.resource_id}",
                calls,
            )
        return DryRunResult(
            True,
            f"would record the configuration of {item.resource_id} and delete it "
            "(its target groups are kept)",
            calls,
        )

    # --- prepare ---------------------------------------------------------------------------

    def prepare(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        recorded: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        # The configuration recorded before an interrupted attempt is the one to restore: the
        # load balancer may be gone by now, or half-way through deletion.
        if recorded.get("config_complete"):
            return dict(recorded)
        record = lb_classic.record if self.is_classic(item) else lb_elbv2.record
        data = record(ctx, item)
        data["recorded_at"] = ctx.now().isoformat()
        data["config_complete"] = True
        result: dict[str, Any] = jsonable(data)
        ctx.checkpoint(result)
        return result

    # --- execute ---------------------------------------------------------------------------

    def execute(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        rollback_data: Mapping[str, Any],
    ) -> Outcome:
        # Both DeleteLoadBalancer APIs succeed for a load balancer that does not exist, so a
        # repeated call would hide whether this attempt or an earlier one deleted it: look first.
        if self.is_classic(item):
            name = item.resource_id
            lb = lb_classic.describe_load_balancer(ctx, name)
            if lb is None:
                return Outcome(
                    {"load_balancer_name": name},
                    already_done=True,
                    note=f"classic load balancer {name} is already gone",
                )
            recorded = rollback_data.get("load_balancer") or {}
            changed = lb_classic.replaced(recorded.get("CreatedTime"), lb)
            if changed:
                raise aws.AwsError(
                    aws.ErrorKind.TERMINAL,
                    service=CLASSIC,
                    operation="DeleteLoadBalancer",
                    code="ResourceReplaced",
                    message=f"refusing to delete: {changed}",
                    region=ctx.region,
                )
            call(ctx, CLASSIC, "DeleteLoadBalancer", LoadBalancerName=name)
            return Outcome(
                {"load_balancer_name": name, "deleted": True},
                note=f"deleted classic load balancer {name}",
            )
        arn = self.arn(ctx, item)
        if lb_elbv2.describe_load_balancer(ctx, arn) is None:
            return Outcome(
                {"load_balancer_arn": arn},
                already_done=True,
                note=f"load balancer {item.resource_id} is already gone",
            )
        try:
            call(ctx, ELBV2, "DeleteLoadBalancer", LoadBalancerArn=arn)
        except aws.AwsError as exc:
            if not_found(exc):
                return Outcome({"load_balancer_arn": arn}, already_done=True)
            raise
        groups = [g["TargetGroupName"] for g in rollback_data.get("target_groups") or []]
        kept = f"; target groups kept: {', '.join(groups)}" if groups else ""
        return Outcome(
            {"load_balancer_arn": arn, "deleted": True},
            note=f"deleted load balancer {item.resource_id}{kept}",
        )

    # --- rollback --------------------------------------------------------------------------

    def rollback(
        self, ctx: ActionContext, rollback_data: Mapping[str, Any], params: ActionParameters
    ) -> Outcome:
        if not rollback_data.get("config_complete"):
            raise aws.AwsError(
                aws.ErrorKind.TERMINAL,
                service="cloudsweep",
                operation="Rollback",
                code="NoRecordedConfiguration",
                message="the load balancer's configuration was never recorded; nothing to restore",
                region=ctx.region,
            )
        if rollback_data.get("kind") == "classic":
            return lb_classic_restore.ClassicRestore(ctx, rollback_data).run()
        return lb_elbv2_restore.Elbv2Restore(ctx, rollback_data).run()
