"""ELBv2 (application, network, gateway) load balancers for the delete action: describe, re-check,
record the full configuration.

Called by ``cleanup.load_balancer.DeleteLoadBalancer``; the rebuild is ``lb_elbv2_restore``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudsweep import aws
from cloudsweep.cleanup import common
from cloudsweep.cleanup.base import ActionContext, CleanupItem, Recheck
from cloudsweep.cleanup.lb_common import (
    ELBV2,
    call,
    healthy_seen,
    protected,
    recent_traffic,
    registered_seen,
)


def load_balancer_arn(ctx: ActionContext, item: CleanupItem) -> str:
    if item.resource_arn:
        return item.resource_arn
    return (
        f"arn:{ctx.partition}:elasticloadbalancing:{ctx.region}:{ctx.account_id}:"
        f"loadbalancer/{item.resource_id}"
    )


def describe_load_balancer(ctx: ActionContext, arn: str) -> dict[str, Any] | None:
    return common.describe_one(
        lambda: call(
            ctx,
            ELBV2,
            "DescribeLoadBalancers",
            LoadBalancerArns=[arn],
        ),
        "LoadBalancers",
    )


def load_balancer_attributes(ctx: ActionContext, arn: str) -> list[dict[str, str]]:
    answer = call(
        ctx,
        ELBV2,
        "DescribeLoadBalancerAttributes",
        LoadBalancerArn=arn,
    )
    return [dict(a) for a in answer.get("Attributes") or []]


def describe_tags(ctx: ActionContext, arns: list[str]) -> dict[str, list[dict[str, str]]]:
    tags: dict[str, list[dict[str, str]]] = {}
    # DescribeTags takes at most 20 ARNs per call.
    for start in range(0, len(arns), 20):
        answer = call(ctx, ELBV2, "DescribeTags", ResourceArns=arns[start : start + 20])
        for entry in answer.get("TagDescriptions") or []:
            tags[entry["ResourceArn"]] = [dict(t) for t in entry.get("Tags") or []]
    return tags


def target_groups_of(ctx: ActionContext, arn: str) -> list[dict[str, Any]]:
    pages = ctx.client(ELBV2).get_paginator("describe_target_groups")
    try:
        with aws.translated(ELBV2, "DescribeTargetGroups", ctx.region):
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


def target_health(ctx: ActionContext, group_arn: str) -> list[dict[str, Any]]:
    answer = call(ctx, ELBV2, "DescribeTargetHealth", TargetGroupArn=group_arn)
    return [dict(t) for t in answer.get("TargetHealthDescriptions") or []]


def recheck(ctx: ActionContext, item: CleanupItem) -> Recheck:
    arn = load_balancer_arn(ctx, item)
    lb = describe_load_balancer(ctx, arn)
    if lb is None:
        return Recheck.gone(f"load balancer {item.resource_id} no longer exists")
    tags = common.tag_map(describe_tags(ctx, [arn]).get(arn))
    protection = protected(tags, ctx)
    if protection:
        return Recheck(False, protection, {"tags": tags})
    attributes = {a["Key"]: a["Value"] for a in load_balancer_attributes(ctx, arn)}
    if attributes.get("deletion_protection.enabled") == "true":
        return Recheck(
            False,
            "deletion protection is on (attribute deletion_protection.enabled is true)",
            {"deletion_protection": True},
        )
    # The detector's rules: waste while no target is healthy, or while healthy targets get no
    # traffic. More healthy targets than the scan saw, a target registered since, or traffic in
    # the last day refuse: someone is bringing the load balancer (back) into service.
    registered = healthy = 0
    groups = target_groups_of(ctx, arn)
    for group in groups:
        for target in target_health(ctx, group["TargetGroupArn"]):
            registered += 1
            healthy += target.get("TargetHealth", {}).get("State") == "healthy"
    facts = {
        "tags": tags,  # the executor applies the scan's and the policy's tag rules to them
        "target_groups": [g["TargetGroupName"] for g in groups],
        "registered_targets": registered,
        "healthy_targets": healthy,
        "state": lb.get("State", {}).get("Code"),
    }
    was_healthy = healthy_seen(item)
    if healthy > was_healthy:
        return Recheck(
            False, f"{healthy} target(s) are healthy now (the scan saw {was_healthy})", facts
        )
    if was_healthy:
        traffic = recent_traffic(ctx, item)
        facts["traffic_last_day"] = traffic
        if traffic > 0:
            return Recheck(False, f"it has traffic again: {traffic:,.0f} in the last day", facts)
    seen = registered_seen(item)
    if registered > seen:
        return Recheck(
            False,
            f"targets were registered since the scan ({registered} now, {seen} then)",
            facts,
        )
    return Recheck(True, "still idle: no new healthy target, no traffic, not protected", facts)


def record(ctx: ActionContext, item: CleanupItem) -> dict[str, Any]:
    arn = load_balancer_arn(ctx, item)
    lb = describe_load_balancer(ctx, arn)
    if lb is None:
        raise common.gone_before_recorded(
            ctx, ELBV2, "DescribeLoadBalancers", "LoadBalancerNotFound", arn
        )
    client = ctx.client(ELBV2)
    listeners: list[dict[str, Any]] = []
    with aws.translated(ELBV2, "DescribeListeners", ctx.region):
        for page in client.get_paginator("describe_listeners").paginate(LoadBalancerArn=arn):
            listeners += [dict(entry) for entry in page["Listeners"]]
    group_arns: list[str] = []
    for listener in listeners:
        listener_arn = listener["ListenerArn"]
        certificates: list[dict[str, Any]] = []
        with aws.translated(ELBV2, "DescribeListenerCertificates", ctx.region):
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
        with aws.translated(ELBV2, "DescribeRules", ctx.region):
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
            group_arns += action_groups(action)
        for rule in listener["Rules"]:
            for action in rule.get("Actions") or []:
                group_arns += action_groups(action)
    attached = target_groups_of(ctx, arn)
    group_arns += [g["TargetGroupArn"] for g in attached]
    group_arns = list(dict.fromkeys(group_arns))
    groups: list[dict[str, Any]] = []
    if group_arns:
        with aws.translated(ELBV2, "DescribeTargetGroups", ctx.region):
            for start in range(0, len(group_arns), 20):
                page = client.describe_target_groups(TargetGroupArns=group_arns[start : start + 20])
                groups += [dict(g) for g in page["TargetGroups"]]
    for group in groups:
        group_arn = group["TargetGroupArn"]
        group["Attributes"] = call(
            ctx,
            ELBV2,
            "DescribeTargetGroupAttributes",
            TargetGroupArn=group_arn,
        ).get("Attributes", [])
        group["Targets"] = [
            {k: v for k, v in t["Target"].items() if k in ("Id", "Port", "AvailabilityZone")}
            for t in target_health(ctx, group_arn)
        ]
    rule_arns = [r["RuleArn"] for listener in listeners for r in listener["Rules"]]
    tags = describe_tags(
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
        "attributes": load_balancer_attributes(ctx, arn),
        "tags": tags.get(arn, []),
        "listeners": listeners,
        "target_groups": groups,
    }


def action_groups(action: Mapping[str, Any]) -> list[str]:
    arns = [action["TargetGroupArn"]] if action.get("TargetGroupArn") else []
    forward = action.get("ForwardConfig") or {}
    arns += [g["TargetGroupArn"] for g in forward.get("TargetGroups") or []]
    return arns
