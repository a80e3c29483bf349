"""Classic load balancers for the delete action: describe, re-check, record the configuration.

Called by ``cleanup.load_balancer.DeleteLoadBalancer``; the rebuild is ``lb_classic_restore``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cloudsweep.cleanup import common
from cloudsweep.cleanup.base import ActionContext, CleanupItem, Recheck
from cloudsweep.cleanup.lb_common import (
    CLASSIC,
    call,
    healthy_seen,
    protected,
    recent_traffic,
    registered_seen,
)


def describe_load_balancer(ctx: ActionContext, name: str) -> dict[str, Any] | None:
    return common.describe_one(
        lambda: call(
            ctx,
            CLASSIC,
            "DescribeLoadBalancers",
            LoadBalancerNames=[name],
        ),
        "LoadBalancerDescriptions",
    )


def recheck(ctx: ActionContext, item: CleanupItem) -> Recheck:
    name = item.resource_id
    lb = describe_load_balancer(ctx, name)
    if lb is None:
        return Recheck.gone(f"classic load balancer {name} no longer exists")
    changed = replaced(item.resource_details.get("created_at"), lb)
    if changed:
        return Recheck(False, changed)
    tags = common.tag_map(describe_tags(ctx, name))
    protection = protected(tags, ctx)
    if protection:
        return Recheck(False, protection, {"tags": tags})
    instances = [i["InstanceId"] for i in lb.get("Instances") or []]
    facts: dict[str, Any] = {"tags": tags, "instances": instances}
    if instances:
        health = call(
            ctx,
            CLASSIC,
            "DescribeInstanceHealth",
            LoadBalancerName=name,
        ).get("InstanceStates", [])
        in_service = [s["InstanceId"] for s in health if s.get("State") == "InService"]
        facts["in_service"] = in_service
        was_healthy = healthy_seen(item)
        if len(in_service) > was_healthy:
            return Recheck(
                False,
                f"{len(in_service)} instance(s) are InService now (the scan saw {was_healthy})",
                facts,
            )
        if was_healthy:
            traffic = recent_traffic(ctx, item)
            facts["traffic_last_day"] = traffic
            if traffic > 0:
                return Recheck(
                    False, f"it has traffic again: {traffic:,.0f} in the last day", facts
                )
    seen = registered_seen(item)
    if len(instances) > seen:
        return Recheck(
            False,
            f"instances were registered since the scan ({len(instances)} now, {seen} then)",
            facts,
        )
    return Recheck(True, "still idle: no instance InService, not protected", facts)


def replaced(created_at: Any, lb: Mapping[str, Any]) -> str | None:
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


def describe_tags(ctx: ActionContext, name: str) -> list[dict[str, str]]:
    answer = call(ctx, CLASSIC, "DescribeTags", LoadBalancerNames=[name])
    for entry in answer.get("TagDescriptions") or []:
        if entry.get("LoadBalancerName") == name:
            return [dict(t) for t in entry.get("Tags") or []]
    return []


def record(ctx: ActionContext, item: CleanupItem) -> dict[str, Any]:
    name = item.resource_id
    lb = describe_load_balancer(ctx, name)
    if lb is None:
        raise common.gone_before_recorded(
            ctx, CLASSIC, "DescribeLoadBalancers", "LoadBalancerNotFound", name
        )
    attributes = call(
        ctx,
        CLASSIC,
        "DescribeLoadBalancerAttributes",
        LoadBalancerName=name,
    ).get("LoadBalancerAttributes", {})
    policies = call(
        ctx,
        CLASSIC,
        "DescribeLoadBalancerPolicies",
        LoadBalancerName=name,
    ).get("PolicyDescriptions", [])
    return {
        "kind": "classic",
        "load_balancer": lb,
        "attributes": attributes,
        "tags": describe_tags(ctx, name),
        "policies": policies,
    }
