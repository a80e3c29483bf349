"""What the load balancer cleanup modules share: the two ELB APIs' calls, JSON, tags, restore base.

Imported by ``cleanup.load_balancer`` (the registered action) and its helpers ``lb_elbv2``,
``lb_classic``, ``lb_elbv2_restore`` and ``lb_classic_restore``; not an action itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from cloudsweep import aws
from cloudsweep.cleanup import common, service_calls
from cloudsweep.cleanup.base import ActionContext, CleanupItem

ELBV2 = "elbv2"
CLASSIC = "elb"
# Predefined policies every classic load balancer can use: they exist already, never recreate.
CLASSIC_POLICY_PREFIXES = ("ELBSecurityPolicy-", "ELBSample-")
REGISTERED_RE = re.compile(r"none of (\d+) registered (?:targets|instances)")


def jsonable(value: Any) -> Any:
    """A copy of an AWS response fit for JSON: datetimes as ISO strings, no ResponseMetadata."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def protected(tags: Mapping[str, str], ctx: ActionContext) -> str | None:
    found = common.protected_by(tags, ctx.protection_tags)
    return f"protection tag {found} is set" if found else None


def registered_seen(item: CleanupItem) -> int:
    """How many targets (classic: instances) the scan saw registered."""
    recorded = item.resource_details.get("registered_targets")
    if isinstance(recorded, int):
        return recorded
    # Findings stored before the detector recorded the count: read it from the evidence.
    for line in item.resource_details.get("evidence") or ():
        match = REGISTERED_RE.search(str(line))
        if match:
            return int(match.group(1))
    return 0


# One call of the item's account and region, named as AWS names it (``CreateLoadBalancer``).
call = service_calls.call


def not_found(exc: aws.AwsError) -> bool:
    # classic ELB says AccessPointNotFound in older answers, LoadBalancerNotFound in newer ones
    return exc.kind is aws.ErrorKind.NOT_FOUND


def name_taken(ctx: ActionContext, service: str, name: str) -> aws.AwsError:
    return aws.AwsError(
        aws.ErrorKind.TERMINAL,
        service=service,
        operation="CreateLoadBalancer",
        code="DuplicateLoadBalancerName",
        message=f"a load balancer named {name} exists and was not made by this rollback; "
        "rename or delete it, then roll back again",
        region=ctx.region,
    )


class Restore:
    """Rebuild a load balancer of ``service`` from its record; every step finds earlier work
    first (what this rollback made carries ``ACTION_TAG`` = its action ID, ``marker``)."""

    service: ClassVar[str]

    def __init__(self, ctx: ActionContext, data: Mapping[str, Any]) -> None:
        self.ctx = ctx
        self.data = data
        self.marker = str(ctx.action_id)
        self.notes: list[str] = []

    def call(self, operation: str, **params: Any) -> Any:
        return call(self.ctx, self.service, operation, **params)


def healthy_seen(item: CleanupItem) -> int:
    """How many targets (classic: instances) were healthy when the scan judged the load balancer
    idle by its traffic; 0 for findings of "nothing healthy behind it" (and older findings)."""
    seen = item.resource_details.get("healthy_targets")
    return seen if isinstance(seen, int) else 0


# What the detector reads per kind: (namespace, metrics, dimension name).
_TRAFFIC = {
    "application": ("AWS/ApplicationELB", ("RequestCount",), "LoadBalancer"),
    "network": ("AWS/NetworkELB", ("ProcessedBytes",), "LoadBalancer"),
    "gateway": ("AWS/GatewayELB", ("ProcessedBytes",), "LoadBalancer"),
    "classic": ("AWS/ELB", ("RequestCount", "EstimatedProcessedBytes"), "LoadBalancerName"),
}


def recent_traffic(ctx: ActionContext, item: CleanupItem, hours: int = 24) -> float:
    """Requests (or processed bytes) of the load balancer over the last ``hours``, from CloudWatch:
    a load balancer judged idle by its traffic that has some now is in use again."""
    namespace, metrics, dimension = _TRAFFIC.get(
        str(item.resource_details.get("lb_type")), _TRAFFIC["application"]
    )
    end = ctx.now().replace(second=0, microsecond=0)
    queries = [
        {
            "Id": f"m{i}",
            "MetricStat": {
                "Metric": {
                    "Namespace": namespace,
                    "MetricName": metric,
                    "Dimensions": [{"Name": dimension, "Value": item.resource_id}],
                },
                "Period": 3600,
                "Stat": "Sum",
            },
        }
        for i, metric in enumerate(metrics)
    ]
    with aws.translated("cloudwatch", "GetMetricData", ctx.region):
        answer = ctx.client("cloudwatch").get_metric_data(
            MetricDataQueries=queries, StartTime=end - timedelta(hours=hours), EndTime=end
        )
    return float(sum(sum(r.get("Values", [])) for r in answer.get("MetricDataResults", [])))
