"""Cleanup of idle load balancers: delete, after recording the full configuration, and recreate.

Registered in ``cloudsweep.cleanup`` by ``@cleanup.register``; driven by the cleanup executor for
findings of the ``load-balancer`` detector, ELBv2 (application, network, gateway) and classic alike.

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

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import common
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
from cloudsweep.domain import ActionType

_ELBV2 = "elbv2"
_CLASSIC = "elb"
# Predefined policies every classic load balancer can use: they exist already, never recreate.
_CLASSIC_POLICY_PREFIXES = ("ELBSecurityPolicy-", "ELBSample-")
_REGISTERED_RE = re.compile(r"none of (\d+) registered (?:targets|instances)")


def jsonable(value: Any) -> Any:
    """A copy of an AWS response fit for JSON: datetimes as ISO strings, no ResponseMetadata."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _protected(tags: Mapping[str, str], ctx: ActionContext) -> str | None:
    found = common.protected_by(tags, ctx.protection_tags)
    return f"protection tag {found} is set" if found else None


def _registered_seen(item: CleanupItem) -> int:
    """How many targets (classic: instances) the scan saw registered."""
    recorded = item.resource_details.get("registered_targets")
    if isinstance(recorded, int):
        return recorded
    # Findings stored before the detector recorded the count: read it from the evidence.
    for line in item.resource_details.get("evidence") or ():
        match = _REGISTERED_RE.search(str(line))
        if match:
            return int(match.group(1))
    return 0


def _call(ctx: ActionContext, service: str, operation: str, method: str, **params: Any) -> Any:
    with aws.translated(service, operation, ctx.region):
        return getattr(ctx.client(service), method)(**params)


def _not_found(exc: aws.AwsError) -> bool:
    # classic ELB says AccessPointNotFound in older answers, LoadBalancerNotFound in newer ones
    return exc.kind is aws.ErrorKind.NOT_FOUND


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
        if item.resource_arn:
            return item.resource_arn
        return (
            f"arn:{ctx.partition}:elasticloadbalancing:{ctx.region}:{ctx.account_id}:"
            f"loadbalancer/{item.resource_id}"
        )

    # --- recheck ---------------------------------------------------------------------------

    def recheck(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        if self.is_classic(item):
            return self._recheck_classic(ctx, item)
        return self._recheck_elbv2(ctx, item)

    def _describe_elbv2(self, ctx: ActionContext, arn: str) -> dict[str, Any] | None:
        return common.describe_one(
            lambda: _call(
                ctx,
                _ELBV2,
                "DescribeLoadBalancers",
                "describe_load_balancers",
                LoadBalancerArns=[arn],
            ),
            "LoadBalancers",
        )

    def _describe_classic(self, ctx: ActionContext, name: str) -> dict[str, Any] | None:
        return common.describe_one(
            lambda: _call(
                ctx,
                _CLASSIC,
                "DescribeLoadBalancers",
                "describe_load_balancers",
                LoadBalancerNames=[name],
            ),
            "LoadBalancerDescriptions",
        )

    def _elbv2_attributes(self, ctx: ActionContext, arn: str) -> list[dict[str, str]]:
        answer = _call(
            ctx,
            _ELBV2,
            "DescribeLoadBalancerAttributes",
            "describe_load_balancer_attributes",
            LoadBalancerArn=arn,
        )
        return [dict(a) for a in answer.get("Attributes") or []]

    def _elbv2_tags(self, ctx: ActionContext, arns: list[str]) -> dict[str, list[dict[str, str]]]:
        tags: dict[str, list[dict[str, str]]] = {}
        # DescribeTags takes at most 20 ARNs per call.
        for start in range(0, len(arns), 20):
            answer = _call(
                ctx, _ELBV2, "DescribeTags", "describe_tags", ResourceArns=arns[start : start + 20]
            )
            for entry in answer.get("TagDescriptions") or []:
                tags[entry["ResourceArn"]] = [dict(t) for t in entry.get("Tags") or []]
        return tags

    def _target_groups_of(self, ctx: ActionContext, arn: str) -> list[dict[str, Any]]:
        pages = ctx.client(_ELBV2).get_paginator("describe_target_groups")
        try:
            with aws.translated(_ELBV2, "DescribeTargetGroups", ctx.region):
                return [
                    dict(g)
                    for page in pages.paginate(LoadBalancerArn=arn)
                    for g in page["TargetGroups"]
                ]
        except aws.AwsError as exc:
            # Some endpoints (moto) answer TargetGroupNotFound for a load balancer without any
            # target group, where AWS answers an empty list: both mean "none attached".
            if exc.code == "TargetGroupNotFound":
                return []
            raise

    def _targets(self, ctx: ActionContext, group_arn: str) -> list[dict[str, Any]]:
        answer = _call(
            ctx, _ELBV2, "DescribeTargetHealth", "describe_target_health", TargetGroupArn=group_arn
        )
        return [dict(t) for t in answer.get("TargetHealthDescriptions") or []]

    def _recheck_elbv2(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        arn = self.arn(ctx, item)
        lb = self._describe_elbv2(ctx, arn)
        if lb is None:
            return Recheck.gone(f"load balancer {item.resource_id} no longer exists")
        tags = common.tag_map(self._elbv2_tags(ctx, [arn]).get(arn))
        protected = _protected(tags, ctx)
        if protected:
            return Recheck(False, protected, {"tags": tags})
        attributes = {a["Key"]: a["Value"] for a in self._elbv2_attributes(ctx, arn)}
        if attributes.get("deletion_protection.enabled") == "true":
            return Recheck(
                False,
                "deletion protection is on (attribute deletion_protection.enabled is true)",
                {"deletion_protection": True},
            )
        # The detector's rule: waste while no target is healthy. A target registered since the
        # scan also refuses: someone is bringing the load balancer (back) into service.
        registered = healthy = 0
        groups = self._target_groups_of(ctx, arn)
        for group in groups:
            for target in self._targets(ctx, group["TargetGroupArn"]):
                registered += 1
                healthy += target.get("TargetHealth", {}).get("State") == "healthy"
        facts = {
            "tags": tags,  # the executor applies the scan's and the policy's tag rules to them
            "target_groups": [g["TargetGroupName"] for g in groups],
            "registered_targets": registered,
            "healthy_targets": healthy,
            "state": lb.get("State", {}).get("Code"),
        }
        if healthy:
            return Recheck(False, f"{healthy} target(s) are healthy now", facts)
        seen = _registered_seen(item)
        if registered > seen:
            return Recheck(
                False,
                f"targets were registered since the scan ({registered} now, {seen} then)",
                facts,
            )
        return Recheck(True, "still idle: no healthy target, not protected", facts)

    def _recheck_classic(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        name = item.resource_id
        lb = self._describe_classic(ctx, name)
        if lb is None:
            return Recheck.gone(f"classic load balancer {name} no longer exists")
        changed = self._replaced(item.resource_details.get("created_at"), lb)
        if changed:
            return Recheck(False, changed)
        tags = common.tag_map(self._classic_tags(ctx, name))
        protected = _protected(tags, ctx)
        if protected:
            return Recheck(False, protected, {"tags": tags})
        instances = [i["InstanceId"] for i in lb.get("Instances") or []]
        facts: dict[str, Any] = {"tags": tags, "instances": instances}
        if instances:
            health = _call(
                ctx,
                _CLASSIC,
                "DescribeInstanceHealth",
                "describe_instance_health",
                LoadBalancerName=name,
            ).get("InstanceStates", [])
            in_service = [s["InstanceId"] for s in health if s.get("State") == "InService"]
            facts["in_service"] = in_service
            if in_service:
                return Recheck(False, f"{len(in_service)} instance(s) are InService now", facts)
        seen = _registered_seen(item)
        if len(instances) > seen:
            return Recheck(
                False,
                f"instances were registered since the scan ({len(instances)} now, {seen} then)",
                facts,
            )
        return Recheck(True, "still idle: no instance InService, not protected", facts)

    @staticmethod
    def _replaced(created_at: Any, lb: Mapping[str, Any]) -> str | None:
        """A classic load balancer is known by name only: one made again since is another one."""
        now_created = lb.get("CreatedTime")
        if not created_at or not isinstance(now_created, datetime):
            return None
        then = datetime.fromisoformat(str(created_at))
        if abs((now_created - then).total_seconds()) > 1:
            return (
                f"load balancer {lb.get('LoadBalancerName')} was created again since the scan "
                f"({now_created.isoformat()}, scan saw {then.isoformat()})"
            )
        return None

    def _classic_tags(self, ctx: ActionContext, name: str) -> list[dict[str, str]]:
        answer = _call(ctx, _CLASSIC, "DescribeTags", "describe_tags", LoadBalancerNames=[name])
        for entry in answer.get("TagDescriptions") or []:
            if entry.get("LoadBalancerName") == name:
                return [dict(t) for t in entry.get("Tags") or []]
        return []

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
            if self._describe_classic(ctx, item.resource_id) is None:
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
        if self._describe_elbv2(ctx, arn) is None:
            return DryRunResult(False, f"{item.resource_id} no longer exists", calls)
        attributes = {a["Key"]: a["Value"] for a in self._elbv2_attributes(ctx, arn)}
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
        if self.is_classic(item):
            data = self._record_classic(ctx, item)
        else:
            data = self._record_elbv2(ctx, item)
        data["recorded_at"] = ctx.now().isoformat()
        data["config_complete"] = True
        result: dict[str, Any] = jsonable(data)
        ctx.checkpoint(result)
        return result

    def _record_elbv2(self, ctx: ActionContext, item: CleanupItem) -> dict[str, Any]:
        arn = self.arn(ctx, item)
        lb = self._describe_elbv2(ctx, arn)
        if lb is None:
            raise common.gone_before_recorded(
                ctx, _ELBV2, "DescribeLoadBalancers", "LoadBalancerNotFound", arn
            )
        client = ctx.client(_ELBV2)
        listeners: list[dict[str, Any]] = []
        with aws.translated(_ELBV2, "DescribeListeners", ctx.region):
            for page in client.get_paginator("describe_listeners").paginate(LoadBalancerArn=arn):
                listeners += [dict(entry) for entry in page["Listeners"]]
        group_arns: list[str] = []
        for listener in listeners:
            listener_arn = listener["ListenerArn"]
            certificates: list[dict[str, Any]] = []
            with aws.translated(_ELBV2, "DescribeListenerCertificates", ctx.region):
                marker: str | None = None
                while True:
                    kwargs = {"ListenerArn": listener_arn, **({"Marker": marker} if marker else {})}
                    page = client.describe_listener_certificates(**kwargs)
                    certificates += [dict(c) for c in page.get("Certificates") or []]
                    marker = page.get("NextMarker")
                    if not marker:
                        break
            listener["Certificates"] = certificates
            rules: list[dict[str, Any]] = []
            with aws.translated(_ELBV2, "DescribeRules", ctx.region):
                marker = None
                while True:
                    kwargs = {"ListenerArn": listener_arn, **({"Marker": marker} if marker else {})}
                    page = client.describe_rules(**kwargs)
                    rules += [dict(r) for r in page.get("Rules") or []]
                    marker = page.get("NextMarker")
                    if not marker:
                        break
            # The default rule is the listener's DefaultActions; CreateRule cannot make it.
            listener["Rules"] = [r for r in rules if not r.get("IsDefault")]
            for action in listener.get("DefaultActions") or []:
                group_arns += _action_groups(action)
            for rule in listener["Rules"]:
                for action in rule.get("Actions") or []:
                    group_arns += _action_groups(action)
        attached = self._target_groups_of(ctx, arn)
        group_arns += [g["TargetGroupArn"] for g in attached]
        group_arns = list(dict.fromkeys(group_arns))
        groups: list[dict[str, Any]] = []
        if group_arns:
            with aws.translated(_ELBV2, "DescribeTargetGroups", ctx.region):
                for start in range(0, len(group_arns), 20):
                    page = client.describe_target_groups(
                        TargetGroupArns=group_arns[start : start + 20]
                    )
                    groups += [dict(g) for g in page["TargetGroups"]]
        for group in groups:
            group_arn = group["TargetGroupArn"]
            group["Attributes"] = _call(
                ctx,
                _ELBV2,
                "DescribeTargetGroupAttributes",
                "describe_target_group_attributes",
                TargetGroupArn=group_arn,
            ).get("Attributes", [])
            group["Targets"] = [
                {k: v for k, v in t["Target"].items() if k in ("Id", "Port", "AvailabilityZone")}
                for t in self._targets(ctx, group_arn)
            ]
        rule_arns = [r["RuleArn"] for listener in listeners for r in listener["Rules"]]
        tags = self._elbv2_tags(
            ctx,
            [
                arn,
                *(listener["ListenerArn"] for listener in listeners),
                *rule_arns,
                *(g["TargetGroupArn"] for g in groups),
            ],
        )
        for listener in listeners:
            listener["Tags"] = tags.get(listener["ListenerArn"], [])
            for rule in listener["Rules"]:
                rule["Tags"] = tags.get(rule["RuleArn"], [])
        for group in groups:
            group["Tags"] = tags.get(group["TargetGroupArn"], [])
        return {
            "kind": "elbv2",
            "load_balancer": lb,
            "attributes": self._elbv2_attributes(ctx, arn),
            "tags": tags.get(arn, []),
            "listeners": listeners,
            "target_groups": groups,
        }

    def _record_classic(self, ctx: ActionContext, item: CleanupItem) -> dict[str, Any]:
        name = item.resource_id
        lb = self._describe_classic(ctx, name)
        if lb is None:
            raise common.gone_before_recorded(
                ctx, _CLASSIC, "DescribeLoadBalancers", "LoadBalancerNotFound", name
            )
        attributes = _call(
            ctx,
            _CLASSIC,
            "DescribeLoadBalancerAttributes",
            "describe_load_balancer_attributes",
            LoadBalancerName=name,
        ).get("LoadBalancerAttributes", {})
        policies = _call(
            ctx,
            _CLASSIC,
            "DescribeLoadBalancerPolicies",
            "describe_load_balancer_policies",
            LoadBalancerName=name,
        ).get("PolicyDescriptions", [])
        return {
            "kind": "classic",
            "load_balancer": lb,
            "attributes": attributes,
            "tags": self._classic_tags(ctx, name),
            "policies": policies,
        }

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
            lb = self._describe_classic(ctx, name)
            if lb is None:
                return Outcome(
                    {"load_balancer_name": name},
                    already_done=True,
                    note=f"classic load balancer {name} is already gone",
                )
            recorded = rollback_data.get("load_balancer") or {}
            changed = self._replaced(recorded.get("CreatedTime"), lb)
            if changed:
                raise aws.AwsError(
                    aws.ErrorKind.TERMINAL,
                    service=_CLASSIC,
                    operation="DeleteLoadBalancer",
                    code="ResourceReplaced",
                    message=f"refusing to delete: {changed}",
                    region=ctx.region,
                )
            _call(
                ctx, _CLASSIC, "DeleteLoadBalancer", "delete_load_balancer", LoadBalancerName=name
            )
            return Outcome(
                {"load_balancer_name": name, "deleted": True},
                note=f"deleted classic load balancer {name}",
            )
        arn = self.arn(ctx, item)
        if self._describe_elbv2(ctx, arn) is None:
            return Outcome(
                {"load_balancer_arn": arn},
                already_done=True,
                note=f"load balancer {item.resource_id} is already gone",
            )
        try:
            _call(ctx, _ELBV2, "DeleteLoadBalancer", "delete_load_balancer", LoadBalancerArn=arn)
        except aws.AwsError as exc:
            if _not_found(exc):
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
            return _ClassicRestore(ctx, rollback_data).run()
        return _Elbv2Restore(ctx, rollback_data).run()


def _action_groups(action: Mapping[str, Any]) -> list[str]:
    arns = [action["TargetGroupArn"]] if action.get("TargetGroupArn") else []
    forward = action.get("ForwardConfig") or {}
    arns += [g["TargetGroupArn"] for g in forward.get("TargetGroups") or []]
    return arns


def _name_taken(ctx: ActionContext, service: str, name: str) -> aws.AwsError:
    return aws.AwsError(
        aws.ErrorKind.TERMINAL,
        service=service,
        operation="CreateLoadBalancer",
        code="DuplicateLoadBalancerName",
        message=f"a load balancer named {name} exists and was not made by this rollback; "
        "rename or delete it, then roll back again",
        region=ctx.region,
    )


class _Restore:
    """Rebuild a load balancer of ``service`` from its record; every step finds earlier work
    first (what this rollback made carries ``ACTION_TAG`` = its action ID, ``marker``)."""

    service: ClassVar[str]

    def __init__(self, ctx: ActionContext, data: Mapping[str, Any]) -> None:
        self.ctx = ctx
        self.data = data
        self.marker = str(ctx.action_id)
        self.notes: list[str] = []

    def call(self, operation: str, method: str, **params: Any) -> Any:
        return _call(self.ctx, self.service, operation, method, **params)


class _Elbv2Restore(_Restore):
    """Rebuild an ELBv2 load balancer, its listeners, rules and missing target groups."""

    service = _ELBV2

    def run(self) -> Outcome:
        old = self.data["load_balancer"]
        groups = self.target_groups()
        lb, reused = self.load_balancer()
        arn = lb["LoadBalancerArn"]
        attributes = [
            {"Key": a["Key"], "Value": a["Value"]}
            for a in self.data.get("attributes") or []
            # an empty value means "not set"; AWS refuses some keys with an empty value
            if a.get("Value") not in (None, "")
        ]
        if attributes:
            self.call(
                "ModifyLoadBalancerAttributes",
                "modify_load_balancer_attributes",
                LoadBalancerArn=arn,
                Attributes=attributes,
            )
        self.listeners(arn, groups)
        return Outcome(
            {
                "load_balancer_arn": arn,
                "dns_name": lb.get("DNSName"),
                "previous_arn": old.get("LoadBalancerArn"),
                "previous_dns_name": old.get("DNSName"),
                "target_groups": groups,
            },
            already_done=reused,
            note=(
                f"recreated load balancer {old['LoadBalancerName']} as {arn}, DNS name "
                f"{lb.get('DNSName')}; AWS cannot reuse the old ARN or DNS name "
                f"({old.get('DNSName')}): update DNS records and clients that used it"
                + ("".join(f"; {n}" for n in self.notes))
            ),
        )

    def tagged(self, arn: str) -> bool:
        answer = self.call("DescribeTags", "describe_tags", ResourceArns=[arn])
        for entry in answer.get("TagDescriptions") or []:
            if common.tag_map(entry.get("Tags")).get(ACTION_TAG) == self.marker:
                return True
        return False

    def target_groups(self) -> dict[str, str]:
        """Recorded target group ARN -> the ARN to use now (the same one, or a recreated one)."""
        mapping: dict[str, str] = {}
        for group in self.data.get("target_groups") or []:
            old_arn = group["TargetGroupArn"]
            try:
                self.call(
                    "DescribeTargetGroups", "describe_target_groups", TargetGroupArns=[old_arn]
                )
                mapping[old_arn] = old_arn
                continue
            except aws.AwsError as exc:
                if not _not_found(exc):
                    raise
            mapping[old_arn] = self.recreate_group(group)
        return mapping

    def recreate_group(self, group: Mapping[str, Any]) -> str:
        name = group["TargetGroupName"]
        try:
            found = self.call("DescribeTargetGroups", "describe_target_groups", Names=[name])
            existing = found["TargetGroups"][0]["TargetGroupArn"]
        except aws.AwsError as exc:
            if not _not_found(exc):
                raise
            existing = None
        if existing is not None:
            if not self.tagged(existing):
                raise aws.AwsError(
                    aws.ErrorKind.TERMINAL,
                    service=_ELBV2,
                    operation="CreateTargetGroup",
                    code="DuplicateTargetGroupName",
                    message=f"a target group named {name} exists and was not made by this "
                    "rollback; rename or delete it, then roll back again",
                    region=self.ctx.region,
                )
            return str(existing)
        kwargs: dict[str, Any] = {"Name": name, "TargetType": group.get("TargetType", "instance")}
        for key in (
            "Protocol",
            "ProtocolVersion",
            "Port",
            "VpcId",
            "HealthCheckProtocol",
            "HealthCheckPort",
            "HealthCheckEnabled",
            "HealthCheckPath",
            "HealthCheckIntervalSeconds",
            "HealthCheckTimeoutSeconds",
            "HealthyThresholdCount",
            "UnhealthyThresholdCount",
            "Matcher",
            "IpAddressType",
        ):
            if group.get(key) not in (None, ""):
                kwargs[key] = group[key]
        tags = {**common.tag_map(group.get("Tags")), ACTION_TAG: self.marker}
        created = self.call(
            "CreateTargetGroup", "create_target_group", Tags=_tag_list(tags), **kwargs
        )
        arn = str(created["TargetGroups"][0]["TargetGroupArn"])
        attributes = [
            {"Key": a["Key"], "Value": a["Value"]}
            for a in group.get("Attributes") or []
            if a.get("Value") not in (None, "")
        ]
        if attributes:
            self.call(
                "ModifyTargetGroupAttributes",
                "modify_target_group_attributes",
                TargetGroupArn=arn,
                Attributes=attributes,
            )
        self.register(arn, name, list(group.get("Targets") or []))
        self.notes.append(f"target group {name} was gone and was recreated as {arn}")
        return arn

    def register(self, group_arn: str, name: str, targets: list[dict[str, Any]]) -> None:
        """Register the recorded targets; one that AWS refuses (a stopped or terminated
        instance) is named in the outcome note rather than failing the whole rollback."""
        if not targets:
            return
        try:
            self.call(
                "RegisterTargets", "register_targets", TargetGroupArn=group_arn, Targets=targets
            )
            return
        except aws.AwsError as exc:
            if exc.kind.retryable:
                raise
        # One refused target fails the whole call: register one by one to keep the others.
        for target in targets:
            try:
                self.call(
                    "RegisterTargets",
                    "register_targets",
                    TargetGroupArn=group_arn,
                    Targets=[target],
                )
            except aws.AwsError as exc:
                if exc.kind.retryable:
                    raise
                self.notes.append(f"target {target['Id']} of {name} not registered: {exc.message}")

    def load_balancer(self) -> tuple[dict[str, Any], bool]:
        old = self.data["load_balancer"]
        name = old["LoadBalancerName"]
        try:
            found = self.call("DescribeLoadBalancers", "describe_load_balancers", Names=[name])
            existing = dict(found["LoadBalancers"][0])
        except aws.AwsError as exc:
            if not _not_found(exc):
                raise
            existing = None
        if existing is not None:
            if not self.tagged(existing["LoadBalancerArn"]):
                raise _name_taken(self.ctx, _ELBV2, name)
            return existing, True
        lb_type = old.get("Type", "application")
        kwargs: dict[str, Any] = {"Name": name, "Type": lb_type}
        if old.get("Scheme"):
            kwargs["Scheme"] = old["Scheme"]
        if old.get("IpAddressType"):
            kwargs["IpAddressType"] = old["IpAddressType"]
        if old.get("CustomerOwnedIpv4Pool"):
            kwargs["CustomerOwnedIpv4Pool"] = old["CustomerOwnedIpv4Pool"]
        if old.get("SecurityGroups") and lb_type != "gateway":
            kwargs["SecurityGroups"] = list(old["SecurityGroups"])
        mappings = []
        pinned = False
        for zone in old.get("AvailabilityZones") or []:
            mapping: dict[str, Any] = {"SubnetId": zone["SubnetId"]}
            for address in zone.get("LoadBalancerAddresses") or []:
                # Elastic IPs and fixed private addresses of an NLB: keep them, or clients break.
                if address.get("AllocationId"):
                    mapping["AllocationId"] = address["AllocationId"]
                    pinned = True
                if address.get("PrivateIPv4Address"):
                    mapping["PrivateIPv4Address"] = address["PrivateIPv4Address"]
                    pinned = True
                if address.get("IPv6Address"):
                    mapping["IPv6Address"] = address["IPv6Address"]
                    pinned = True
            mappings.append(mapping)
        if pinned:
            kwargs["SubnetMappings"] = mappings
        elif mappings:
            kwargs["Subnets"] = [m["SubnetId"] for m in mappings]
        tags = {**common.tag_map(self.data.get("tags")), ACTION_TAG: self.marker}
        created = self.call(
            "CreateLoadBalancer", "create_load_balancer", Tags=_tag_list(tags), **kwargs
        )
        return dict(created["LoadBalancers"][0]), False

    def listeners(self, arn: str, groups: Mapping[str, str]) -> None:
        existing = {
            int(entry["Port"]): entry
            for entry in self.call(
                "DescribeListeners", "describe_listeners", LoadBalancerArn=arn
            ).get("Listeners")
            or []
        }
        for listener in self.data.get("listeners") or []:
            port = int(listener["Port"])
            current = existing.get(port)
            certificates = list(listener.get("Certificates") or [])
            default = [c for c in certificates if c.get("IsDefault")] or certificates[:1]
            if current is None:
                kwargs: dict[str, Any] = {
                    "LoadBalancerArn": arn,
                    "Port": port,
                    "DefaultActions": [_remap(a, groups) for a in listener["DefaultActions"]],
                }
                for key in ("Protocol", "SslPolicy", "AlpnPolicy", "MutualAuthentication"):
                    if listener.get(key):
                        kwargs[key] = listener[key]
                if listener.get("Protocol") not in ("HTTPS", "TLS"):
                    kwargs.pop("SslPolicy", None)
                if default:
                    kwargs["Certificates"] = [{"CertificateArn": default[0]["CertificateArn"]}]
                if listener.get("Tags"):
                    kwargs["Tags"] = [dict(t) for t in listener["Tags"]]
                current = self.call("CreateListener", "create_listener", **kwargs)["Listeners"][0]
            listener_arn = current["ListenerArn"]
            extra = [
                {"CertificateArn": c["CertificateArn"]}
                for c in certificates
                if not c.get("IsDefault") and (not default or c is not default[0])
            ]
            if extra:
                # Adding a certificate that is already there is a no-op in AWS: idempotent.
                self.call(
                    "AddListenerCertificates",
                    "add_listener_certificates",
                    ListenerArn=listener_arn,
                    Certificates=extra,
                )
            self.rules(listener_arn, listener.get("Rules") or [], groups)

    def rules(
        self, listener_arn: str, rules: list[Mapping[str, Any]], groups: Mapping[str, str]
    ) -> None:
        present = {
            str(r["Priority"])
            for r in self.call("DescribeRules", "describe_rules", ListenerArn=listener_arn).get(
                "Rules"
            )
            or []
        }
        for rule in sorted(rules, key=lambda r: int(r["Priority"])):
            if str(rule["Priority"]) in present:
                continue
            kwargs: dict[str, Any] = {
                "ListenerArn": listener_arn,
                "Priority": int(rule["Priority"]),
                "Conditions": [_condition(c) for c in rule.get("Conditions") or []],
                "Actions": [_remap(a, groups) for a in rule.get("Actions") or []],
            }
            if rule.get("Tags"):
                kwargs["Tags"] = [dict(t) for t in rule["Tags"]]
            self.call("CreateRule", "create_rule", **kwargs)


def _remap(action: Mapping[str, Any], groups: Mapping[str, str]) -> dict[str, Any]:
    """An action as recorded, pointing to the target groups that exist now."""
    result = {k: v for k, v in action.items() if v not in (None, [], {})}
    if result.get("TargetGroupArn"):
        result["TargetGroupArn"] = groups.get(result["TargetGroupArn"], result["TargetGroupArn"])
    forward = result.get("ForwardConfig")
    if forward:
        result["ForwardConfig"] = {
            **forward,
            "TargetGroups": [
                {**g, "TargetGroupArn": groups.get(g["TargetGroupArn"], g["TargetGroupArn"])}
                for g in forward.get("TargetGroups") or []
            ],
        }
    return result


def _condition(condition: Mapping[str, Any]) -> dict[str, Any]:
    # DescribeRules reports both the legacy ``Values`` and the ``*Config`` form; CreateRule
    # refuses a condition that has both.
    result = {k: v for k, v in condition.items() if v not in (None, [], {})}
    if any(k.endswith("Config") for k in result):
        result.pop("Values", None)
    return result


class _ClassicRestore(_Restore):
    """Rebuild a classic load balancer (same name, so same DNS name prefix) from its record."""

    service = _CLASSIC

    def run(self) -> Outcome:
        old = self.data["load_balancer"]
        name = old["LoadBalancerName"]
        reused = False
        try:
            found = self.call(
                "DescribeLoadBalancers", "describe_load_balancers", LoadBalancerNames=[name]
            )["LoadBalancerDescriptions"]
        except aws.AwsError as exc:
            if not _not_found(exc):
                raise
            found = []
        if found:
            tags = self.call("DescribeTags", "describe_tags", LoadBalancerNames=[name])
            mine = any(
                common.tag_map(entry.get("Tags")).get(ACTION_TAG) == self.marker
                for entry in tags.get("TagDescriptions") or []
            )
            if not mine:
                raise _name_taken(self.ctx, _CLASSIC, name)
            reused = True
        else:
            self.create(old)
        self.configure(old)
        lb = self.call(
            "DescribeLoadBalancers", "describe_load_balancers", LoadBalancerNames=[name]
        )["LoadBalancerDescriptions"][0]
        return Outcome(
            {"load_balancer_name": name, "dns_name": lb.get("DNSName")},
            already_done=reused,
            note=(
                f"recreated classic load balancer {name}, DNS name {lb.get('DNSName')}; AWS "
                f"cannot reuse the old DNS name ({old.get('DNSName')}): update DNS records and "
                "clients that used it" + "".join(f"; {n}" for n in self.notes)
            ),
        )

    def create(self, old: Mapping[str, Any]) -> None:
        listeners = []
        for description in old.get("ListenerDescriptions") or []:
            listener = description["Listener"]
            listeners.append(
                {
                    k: listener[k]
                    for k in (
                        "Protocol",
                        "LoadBalancerPort",
                        "InstanceProtocol",
                        "InstancePort",
                        "SSLCertificateId",
                    )
                    if listener.get(k) not in (None, "")
                }
            )
        kwargs: dict[str, Any] = {
            "LoadBalancerName": old["LoadBalancerName"],
            "Listeners": listeners,
        }
        if old.get("Subnets"):
            # In a VPC the subnets decide the zones; AWS refuses both at once.
            kwargs["Subnets"] = list(old["Subnets"])
            if old.get("SecurityGroups"):
                kwargs["SecurityGroups"] = list(old["SecurityGroups"])
        else:
            kwargs["AvailabilityZones"] = list(old.get("AvailabilityZones") or [])
        if old.get("Scheme") == "internal":
            kwargs["Scheme"] = "internal"
        tags = {**common.tag_map(self.data.get("tags")), ACTION_TAG: self.marker}
        self.call("CreateLoadBalancer", "create_load_balancer", Tags=_tag_list(tags), **kwargs)

    def configure(self, old: Mapping[str, Any]) -> None:
        # Every call below sets a whole value, so repeating it after a crash is harmless.
        name = old["LoadBalancerName"]
        if old.get("HealthCheck"):
            self.call(
                "ConfigureHealthCheck",
                "configure_health_check",
                LoadBalancerName=name,
                HealthCheck=dict(old["HealthCheck"]),
            )
        attributes = {
            k: v for k, v in (self.data.get("attributes") or {}).items() if v not in (None, [], {})
        }
        if attributes:
            self.call(
                "ModifyLoadBalancerAttributes",
                "modify_load_balancer_attributes",
                LoadBalancerName=name,
                LoadBalancerAttributes=attributes,
            )
        self.policies(old)
        instances = [{"InstanceId": i["InstanceId"]} for i in old.get("Instances") or []]
        if instances:
            try:
                self.call(
                    "RegisterInstancesWithLoadBalancer",
                    "register_instances_with_load_balancer",
                    LoadBalancerName=name,
                    Instances=instances,
                )
            except aws.AwsError as exc:
                if exc.kind.retryable:
                    raise
                self.notes.append(f"could not register the recorded instances again: {exc}")

    def policies(self, old: Mapping[str, Any]) -> None:
        name = old["LoadBalancerName"]
        current = self.call(
            "DescribeLoadBalancerPolicies", "describe_load_balancer_policies", LoadBalancerName=name
        ).get("PolicyDescriptions", [])
        present = {p["PolicyName"] for p in current}
        recorded = old.get("Policies") or {}
        for policy in recorded.get("LBCookieStickinessPolicies") or []:
            if policy["PolicyName"] not in present:
                kwargs = {"LoadBalancerName": name, "PolicyName": policy["PolicyName"]}
                if policy.get("CookieExpirationPeriod") is not None:
                    kwargs["CookieExpirationPeriod"] = policy["CookieExpirationPeriod"]
                self.call(
                    "CreateLBCookieStickinessPolicy", "create_lb_cookie_stickiness_policy", **kwargs
                )
                present.add(policy["PolicyName"])
        for policy in recorded.get("AppCookieStickinessPolicies") or []:
            if policy["PolicyName"] not in present:
                self.call(
                    "CreateAppCookieStickinessPolicy",
                    "create_app_cookie_stickiness_policy",
                    LoadBalancerName=name,
                    PolicyName=policy["PolicyName"],
                    CookieName=policy["CookieName"],
                )
                present.add(policy["PolicyName"])
        for policy in self.data.get("policies") or []:
            policy_name = policy["PolicyName"]
            if policy_name in present or policy_name.startswith(_CLASSIC_POLICY_PREFIXES):
                continue
            self.call(
                "CreateLoadBalancerPolicy",
                "create_load_balancer_policy",
                LoadBalancerName=name,
                PolicyName=policy_name,
                PolicyTypeName=policy["PolicyTypeName"],
                PolicyAttributes=[
                    {"AttributeName": a["AttributeName"], "AttributeValue": a["AttributeValue"]}
                    for a in policy.get("PolicyAttributeDescriptions") or []
                ],
            )
            present.add(policy_name)
        for description in old.get("ListenerDescriptions") or []:
            names = list(description.get("PolicyNames") or [])
            if names:
                self.call(
                    "SetLoadBalancerPoliciesOfListener",
                    "set_load_balancer_policies_of_listener",
                    LoadBalancerName=name,
                    LoadBalancerPort=description["Listener"]["LoadBalancerPort"],
                    PolicyNames=names,
                )
        for backend in old.get("BackendServerDescriptions") or []:
            names = list(backend.get("PolicyNames") or [])
            if names:
                self.call(
                    "SetLoadBalancerPoliciesForBackendServer",
                    "set_load_balancer_policies_for_backend_server",
                    LoadBalancerName=name,
                    InstancePort=backend["InstancePort"],
                    PolicyNames=names,
                )
