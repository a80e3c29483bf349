"""Cleanup action for idle NAT gateways: record the gateway and its routes, then delete it.

Registered in ``cleanup/__init__.py``; driven by ``cleanup.executor`` for approved
``nat-gateway`` findings of the ``nat-gateway`` detector, whose ``resource_details`` carry the
subnet, Elastic IP allocations and the route tables that routed to it at scan time.

Example CleanupPolicy rule::

    rules:
      - resourceType: nat-gateway
        action: delete

Step by step:

- recheck: ``DescribeNatGateways``; "gone" when it is deleting, deleted or unknown; refused when
  it is not available, carries a protection tag, or a route table routes to it now that did not
  at scan time (someone started using it), or it processed more than the scan's ``max_bytes``
  over the last day (``GetMetricData``).
- dry run: read-only (``DescribeNatGateways``, ``DescribeRouteTables``): AWS's
  ``DeleteNatGateway`` takes ``DryRun``, but the emulator of the tests and the demo ignores it
  and deletes, so CloudSweep never relies on it.
- prepare: records ``nat_gateway_id, subnet_id, allocation_id, connectivity_type,
  private_ip_address, tags`` and every route of every route table that targets the gateway
  (``route_table_id`` and its destination: IPv4 CIDR, IPv6 CIDR or prefix list), checkpointed.
- execute: ``DeleteNatGateway``; a not-found answer means an earlier attempt deleted it. The
  routes stay, as blackholes, for the rollback to repair.
- rollback: waits until the old gateway is deleted (its address is free then), then
  ``CreateNatGateway`` in the same subnet on the same allocation (the same public IP) with the
  rollback's action ID as ``ClientToken`` (a rerun gets the same gateway), waits until it is
  available, and points every recorded route at it (``ReplaceRoute``, or ``CreateRoute`` where
  the route was removed since).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
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
    MissingRollbackData,
    action_tags,
    call,
    describe_one,
    destroy,
    earlier_attempt,
    gone_before_recorded,
    protected_by,
    tag_map,
    tag_specification,
    user_tags,
    wait,
)
from cloudsweep.domain import ActionType

RESTORED_FROM_TAG = "cloudsweep.io/restored-from-nat-gateway"
_GONE_STATES = frozenset({"deleting", "deleted"})
_LIVE_STATES = ("pending", "available")
_DESTINATIONS = ("DestinationCidrBlock", "DestinationIpv6CidrBlock", "DestinationPrefixListId")


def describe_nat(ctx: ActionContext, nat_id: str) -> dict[str, Any] | None:
    return describe_one(
        lambda: call(ctx, "DescribeNatGateways", NatGatewayIds=[nat_id]), "NatGateways"
    )


def routes_to(ctx: ActionContext, nat_id: str) -> list[dict[str, str]]:
    """Every route that targets the gateway: its table and destination."""
    tables = call(
        ctx,
        "DescribeRouteTables",
        Filters=[{"Name": "route.nat-gateway-id", "Values": [nat_id]}],
    ).get("RouteTables", [])
    found = []
    for table in tables:
        for route in table.get("Routes", []):
            if route.get("NatGatewayId") != nat_id:
                continue
            destination = {k: str(route[k]) for k in _DESTINATIONS if route.get(k)}
            found.append({"route_table_id": str(table["RouteTableId"]), **destination})
    return found


def bytes_last_day(ctx: ActionContext, nat_id: str) -> float:
    """Bytes processed over the last day (in from sources and back from destinations)."""
    end = ctx.now().replace(second=0, microsecond=0)
    dims = [{"Name": "NatGatewayId", "Value": nat_id}]
    queries = [
        {
            "Id": f"m{i}",
            "MetricStat": {
                "Metric": {"Namespace": "AWS/NATGateway", "MetricName": name, "Dimensions": dims},
                "Period": 3600,
                "Stat": "Sum",
            },
        }
        for i, name in enumerate(("BytesInFromSource", "BytesInFromDestination"))
    ]
    with aws.translated("cloudwatch", "GetMetricData", ctx.region):
        answer = ctx.client("cloudwatch").get_metric_data(
            MetricDataQueries=queries, StartTime=end - timedelta(days=1), EndTime=end
        )
    return float(sum(sum(r.get("Values", [])) for r in answer.get("MetricDataResults", [])))


@register
class DeleteNatGateway(CleanupAction):
    """Delete the idle NAT gateway after recording it and its routes; undo recreates it on the
    same Elastic IP allocation and points the routes at it again.

    Example CleanupPolicy rule::

        - resourceType: nat-gateway
          action: delete

    The Elastic IP stays allocated (and billed as an idle address) for the rollback: release it
    with the elastic-ip action once the gateway is surely not wanted.
    """

    resource_type: ClassVar[str] = "nat-gateway"
    action: ClassVar[str] = "delete"
    action_type: ClassVar[ActionType] = ActionType.DELETE
    rollback_possible: ClassVar[bool] = True
    rollback_note: ClassVar[str] = (
        "recreates the NAT gateway in the same subnet on the same Elastic IP allocation (same "
        "public IP, new ID) and points every recorded route at it"
    )
    permissions: ClassVar[tuple[str, ...]] = (
        "cloudwatch:GetMetricData",
        "ec2:CreateNatGateway",
        "ec2:CreateRoute",
        "ec2:CreateTags",
        "ec2:DeleteNatGateway",
        "ec2:DescribeNatGateways",
        "ec2:DescribeRouteTables",
        "ec2:ReplaceRoute",
    )

    def recheck(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        nat = describe_nat(ctx, item.resource_id)
        if nat is None:
            return Recheck.gone("NAT gateway no longer exists")
        state = str(nat.get("State"))
        tags = tag_map(nat.get("Tags"))
        facts: dict[str, Any] = {"state": state, "subnet_id": nat.get("SubnetId"), "tags": tags}
        if state in _GONE_STATES:
            return Recheck.gone(f"NAT gateway is {state}", **facts)
        if state != "available":
            return Recheck(False, f"NAT gateway is {state}, not available", facts)
        protection = protected_by(tags, ctx.protection_tags)
        if protection is not None:
            return Recheck(False, f"NAT gateway is now protected by tag {protection}", facts)
        seen = set(item.resource_details.get("route_tables") or [])
        now = {r["route_table_id"] for r in routes_to(ctx, item.resource_id)}
        facts["route_tables"] = sorted(now)
        if now - seen:
            return Recheck(
                False,
                f"route tables {', '.join(sorted(now - seen))} route to it since the scan",
                facts,
            )
        limit = item.resource_details.get("max_bytes")
        if now and limit is not None:
            processed = bytes_last_day(ctx, item.resource_id)
            facts["bytes_last_day"] = processed
            if processed > float(limit):
                return Recheck(
                    False,
                    f"it carries traffic again: {processed:,.0f} bytes in the last day "
                    f"(idle at <= {int(limit):,})",
                    facts,
                )
        return Recheck(True, "still available, unprotected, and no new route to it", facts)

    def dry_run(
        self, ctx: ActionContext, item: CleanupItem, params: ActionParameters
    ) -> DryRunResult:
        calls = ("ec2:DescribeNatGateways", "ec2:DescribeRouteTables", "ec2:DeleteNatGateway")
        nat = describe_nat(ctx, item.resource_id)
        if nat is None or nat.get("State") != "available":
            state = nat.get("State") if nat else "missing"
            return DryRunResult(False, f"DeleteNatGateway would fail: it is {state}", calls)
        routes = routes_to(ctx, item.resource_id)
        return DryRunResult(
            True, f"would record {len(routes)} route(s) and delete {item.resource_id}", calls
        )

    def prepare(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        recorded: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        if recorded.get("allocation_id") or recorded.get("subnet_id"):
            return dict(recorded)
        nat = describe_nat(ctx, item.resource_id)
        if nat is None or nat.get("State") in _GONE_STATES:
            raise gone_before_recorded(
                ctx, "ec2", "DeleteNatGateway", "NatGatewayNotFound", item.resource_id
            )
        addresses = nat.get("NatGatewayAddresses") or []
        primary = next(
            (a for a in addresses if a.get("IsPrimary")), addresses[0] if addresses else {}
        )
        data = {
            "nat_gateway_id": item.resource_id,
            "subnet_id": nat.get("SubnetId"),
            "vpc_id": nat.get("VpcId"),
            "allocation_id": primary.get("AllocationId"),
            "public_ip": primary.get("PublicIp"),
            "private_ip_address": primary.get("PrivateIp"),
            "connectivity_type": nat.get("ConnectivityType") or "public",
            "tags": user_tags(tag_map(nat.get("Tags"))),
            "routes": routes_to(ctx, item.resource_id),
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
        if not rollback_data.get("subnet_id"):
            raise MissingRollbackData(
                "DeleteNatGateway",
                "delete",
                item.resource_id,
                ctx.region,
                "its subnet and routes were not recorded",
            )
        routes = len(rollback_data.get("routes") or [])
        return destroy(
            ctx,
            "DeleteNatGateway",
            item.resource_id,
            "deleted",
            id_key="NatGatewayId",
            note=f"deleted {item.resource_id}; {routes} route(s) to it recorded for rollback",
            NatGatewayId=item.resource_id,
        )

    def rollback(
        self, ctx: ActionContext, rollback_data: Mapping[str, Any], params: ActionParameters
    ) -> Outcome:
        action_id = str(ctx.action_id)
        old_id = str(rollback_data["nat_gateway_id"])
        # The allocation is free only once the old gateway is fully deleted.
        old = describe_nat(ctx, old_id)
        if old is not None and old.get("State") not in ("deleted", "failed"):
            wait(ctx, "nat_gateway_deleted", "DescribeNatGateways", params, NatGatewayIds=[old_id])
        tags = action_tags(rollback_data.get("tags"), action_id, {RESTORED_FROM_TAG: old_id})
        request: dict[str, Any] = {
            "SubnetId": rollback_data["subnet_id"],
            "ConnectivityType": rollback_data.get("connectivity_type") or "public",
            "ClientToken": action_id,  # AWS's idempotency key: a rerun gets the same gateway
            "TagSpecifications": tag_specification("natgateway", tags),
        }
        if rollback_data.get("allocation_id"):
            request["AllocationId"] = rollback_data["allocation_id"]
        # An earlier run of this rollback, found by its tag (checked by the helper too: the
        # emulator ignores the filter and would hand back another, live gateway, and the routes
        # would be pointed at it).
        existing = earlier_attempt(
            ctx,
            "DescribeNatGateways",
            "NatGateways",
            filters=[{"Name": "state", "Values": list(_LIVE_STATES)}],
            live=lambda n: n.get("State") in _LIVE_STATES,
        )
        if existing:
            nat_id = str(existing[0]["NatGatewayId"])
        else:
            nat_id = str(call(ctx, "CreateNatGateway", **request)["NatGateway"]["NatGatewayId"])
        ctx.checkpoint({"restored_nat_gateway_id": nat_id})
        wait(ctx, "nat_gateway_available", "DescribeNatGateways", params, NatGatewayIds=[nat_id])
        restored = [self._route(ctx, route, nat_id) for route in rollback_data.get("routes") or []]
        return Outcome(
            {"NatGatewayId": nat_id, "Routes": restored},
            already_done=bool(existing),
            note=f"NAT gateway {nat_id} recreated on {rollback_data.get('allocation_id')} "
            f"(was {old_id}); {len(restored)} route(s) point at it again",
        )

    def _route(self, ctx: ActionContext, route: Mapping[str, str], nat_id: str) -> dict[str, str]:
        destination = {k: v for k, v in route.items() if k in _DESTINATIONS}
        target = {"RouteTableId": route["route_table_id"], "NatGatewayId": nat_id, **destination}
        tables = call(ctx, "DescribeRouteTables", RouteTableIds=[route["route_table_id"]])
        present = any(
            all(r.get(k) == v for k, v in destination.items())
            for table in tables.get("RouteTables", [])
            for r in table.get("Routes", [])
        )
        # The blackhole route left by the delete is replaced; one removed since is created.
        call(ctx, "ReplaceRoute" if present else "CreateRoute", **target)
        return {**route, "nat_gateway_id": nat_id}


__all__ = ["DeleteNatGateway"]
