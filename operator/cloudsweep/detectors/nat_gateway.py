"""Idle NAT gateways: billed by the hour whether or not a byte goes through them.

Registered in ``detectors/__init__.py``; run by the scan run for each account and region.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import Field

from cloudsweep.detectors import base, register
from cloudsweep.detectors.context import RegionContext
from cloudsweep.detectors.metrics import MetricNeeds, MetricQuery
from cloudsweep.domain import Finding, RiskLevel, SafetyCheck

if TYPE_CHECKING:
    from mypy_boto3_ec2.type_defs import NatGatewayTypeDef

METRICS_CHECK = "metrics-present"
_GB = Decimal(1_000_000_000)
_MONTH_DAYS = Decimal("30.4167")  # 730 hours, as the catalog's monthly prices


class NatGatewayParameters(base.DetectorParameters):
    lookback_days: int = Field(
        default=14,
        ge=1,
        le=63,
        description="Days of CloudWatch traffic to look at (14: AWS Compute Optimizer's default "
        "lookback for idle NAT gateways).",
    )
    max_bytes: int = Field(
        default=0,
        ge=0,
        le=10**15,
        description="At most this many bytes through the gateway over the lookback is idle "
        "(0: no traffic at all).",
    )


def traffic_queries(nat_id: str) -> tuple[MetricQuery, MetricQuery]:
    """What AWS bills as processed: bytes in from the sources and back from the destinations."""
    dims = (("NatGatewayId", nat_id),)
    return (
        MetricQuery("AWS/NATGateway", "BytesInFromSource", dims, "Sum"),
        MetricQuery("AWS/NATGateway", "BytesInFromDestination", dims, "Sum"),
    )


def _available(ctx: RegionContext) -> list[NatGatewayTypeDef]:
    return [g for g in ctx.inventory.nat_gateways() if g.get("State") == "available"]


@register
class NatGatewayDetector(base.Detector[NatGatewayParameters]):
    """Available NAT gateways with no traffic over a lookback, or that no route table uses.

    Example ScanSchedule entry::

        detectors:
          nat-gateway: {lookback_days: 14, max_bytes: 0}

    Traffic is CloudWatch ``AWS/NATGateway`` ``BytesInFromSource`` + ``BytesInFromDestination``
    (daily Sum) of every gateway of the region, in ``ceil(2 x gateways / 500)``
    ``GetMetricData`` calls; routes come from one paged ``DescribeRouteTables``.

    Scoring:

    - no route of any route table targets it: confidence 95 (nothing can send it traffic), risk
      LOW;
    - routed to, with datapoints whose sum is at most ``max_bytes``: confidence 85 (65 when fewer
      days than the lookback have datapoints), risk MEDIUM (deleting it cuts the private subnets'
      way out, should anything start using it);
    - routed to, and no datapoint at all: confidence 40 and a failed ``metrics-present`` check;
    - HIGH risk with a protection tag; a gateway younger than ``min_age_days`` gets confidence 30.

    Price: the hourly charge plus the processed GB a month at the lookback's rate
    (``nat_gateway_monthly``).
    """

    name = "nat-gateway"
    resource_type = "nat-gateway"
    permissions = (
        "ec2:DescribeNatGateways",
        "ec2:DescribeRouteTables",
        "cloudwatch:GetMetricData",
    )
    Parameters = NatGatewayParameters

    def metric_needs(self, ctx: RegionContext, params: NatGatewayParameters) -> MetricNeeds:
        gateways = _available(ctx)
        return MetricNeeds(
            params.lookback_days,
            series=tuple(q for g in gateways for q in traffic_queries(g["NatGatewayId"])),
        )

    def detect(self, ctx: RegionContext, params: NatGatewayParameters) -> Iterator[Finding]:
        gateways = _available(ctx)
        if not gateways:
            return
        routes: dict[str, list[str]] = {}
        for table in ctx.inventory.route_tables():
            for route in table.get("Routes", []):
                if route.get("NatGatewayId"):
                    routes.setdefault(route["NatGatewayId"], []).append(table["RouteTableId"])
        queries = [q for g in gateways for q in traffic_queries(g["NatGatewayId"])]
        series = ctx.inventory.metric_series(
            queries, now=ctx.now, lookback_days=params.lookback_days
        )
        window = f"{params.lookback_days} days"
        for gateway in gateways:
            nat_id = gateway["NatGatewayId"]
            traffic = [series[q] for q in traffic_queries(nat_id)]
            total = int(sum(s.total for s in traffic))
            missing = all(s.missing for s in traffic)
            tables = sorted(set(routes.get(nat_id, [])))
            checks: list[SafetyCheck] = []
            if not tables:
                evidence = ["no route table routes to it: nothing can send it traffic"]
                score = 95.0
            elif missing:
                evidence = [f"no traffic datapoints in {window}: idle, or metrics missing"]
                checks.append(SafetyCheck(METRICS_CHECK, False, f"no datapoints in {window}"))
                score = 40.0
            elif total <= params.max_bytes:
                coverage = max(traffic, key=lambda s: s.datapoints)
                evidence = [
                    f"{total:,} bytes processed in {window} ({coverage.coverage()}; idle at <= "
                    f"{params.max_bytes:,})"
                ]
                checks.append(SafetyCheck(METRICS_CHECK, True, coverage.coverage()))
                score = 85.0 if coverage.complete else 65.0
            else:
                continue
            if tables:
                evidence.append(f"route tables {', '.join(tables)} route to it")
            yield self._finding(ctx, params, gateway, tables, total, evidence, checks, score)

    def _finding(
        self,
        ctx: RegionContext,
        params: NatGatewayParameters,
        gateway: NatGatewayTypeDef,
        tables: list[str],
        total_bytes: int,
        evidence: list[str],
        metric_checks: list[SafetyCheck],
        score: float,
    ) -> Finding:
        nat_id = gateway["NatGatewayId"]
        tags = base.tag_map(gateway.get("Tags"))
        created = gateway.get("CreateTime")
        checks = (
            base.protection_check(tags, params.protection_tags),
            base.age_check(created, ctx.now, params.min_age_days),
            *metric_checks,
        )
        age = base.age_days(created, ctx.now)
        if age is None or age < params.min_age_days:
            score = min(score, 30)
        gb_month = (Decimal(total_bytes) / _GB) * _MONTH_DAYS / Decimal(params.lookback_days)
        cost, unknown = base.priced(ctx.prices.nat_gateway_monthly, ctx.region, gb_month)
        allocations = [
            str(a["AllocationId"])
            for a in gateway.get("NatGatewayAddresses", [])
            if a.get("AllocationId")
        ]
        return Finding(
            resource_type=self.resource_type,
            resource_id=nat_id,
            region=ctx.region,
            monthly_cost=cost,
            confidence=base.confidence(score),
            risk=base.risk_from(checks, RiskLevel.LOW if not tables else RiskLevel.MEDIUM),
            resource_arn=ctx.arn("ec2", f"natgateway/{nat_id}"),
            availability_zone=None,
            evidence=(
                *evidence,
                base.cost_evidence(cost, unknown, "NAT gateway hours and processed GB"),
            ),
            safety_checks=checks,
            tags=tags,
            created_at=created,
            details={
                "subnet_id": gateway.get("SubnetId"),
                "vpc_id": gateway.get("VpcId"),
                "connectivity_type": gateway.get("ConnectivityType", "public"),
                "allocation_ids": allocations,
                "route_tables": tables,
                "lookback_days": params.lookback_days,
                "max_bytes": params.max_bytes,  # the delete action re-checks the last day by it
                **base.pricing_details(
                    ctx, cost, unknown, gb_processed_per_month=str(round(gb_month, 3))
                ),
            },
        )
