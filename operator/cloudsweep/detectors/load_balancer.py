"""Idle load balancers: billed by the hour whether or not anything sits behind them.

Registered in ``detectors/__init__.py``; run by the scan run for each account and region.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field

from cloudsweep.detectors import base, register
from cloudsweep.detectors.context import RegionContext
from cloudsweep.detectors.metrics import MetricNeeds, MetricQuery, MetricSeries
from cloudsweep.domain import Finding, RiskLevel, SafetyCheck
from cloudsweep.pricing import load_balancers as pricing_lb

if TYPE_CHECKING:
    from mypy_boto3_elb.type_defs import LoadBalancerDescriptionTypeDef
    from mypy_boto3_elbv2.type_defs import LoadBalancerTypeDef, TargetGroupTypeDef

# A failed load balancer is AWS's to clean up; a provisioning one is young (recently-created).
_SKIPPED_STATES = ("failed",)
METRICS_CHECK = "metrics-present"


def _score(registered: int, healthy: int, traffic: _Traffic) -> tuple[float, list[SafetyCheck]]:
    """Confidence and the metrics check of an idle-looking load balancer (see the class doc)."""
    if not registered:
        return 90.0, []  # nothing to send traffic to: definitive, whatever the metrics say
    if not healthy:
        return (60.0 if traffic.missing else 75.0), []
    if traffic.missing:
        return 50.0, [SafetyCheck(METRICS_CHECK, False, traffic.evidence)]
    return 80.0, [SafetyCheck(METRICS_CHECK, True, traffic.evidence)]


class LoadBalancerParameters(base.DetectorParameters):
    lookback_days: int = Field(
        default=14,
        ge=1,
        le=63,
        description="Days of CloudWatch traffic to look at (14: AWS Compute Optimizer's default "
        "lookback).",
    )
    max_requests: int = Field(
        default=100,
        ge=0,
        le=1_000_000_000,
        description="At most this many requests over the lookback is idle (application and "
        "classic load balancers; 100 as Trusted Advisor's idle load balancer check).",
    )
    max_processed_bytes: int = Field(
        default=0,
        ge=0,
        le=10**15,
        description="At most this many processed bytes over the lookback is idle (network, "
        "gateway and classic load balancers).",
    )


@dataclass(frozen=True, slots=True)
class _Traffic:
    """What CloudWatch says of one load balancer's traffic over the lookback."""

    busy: bool
    missing: bool
    evidence: str


def _queries(lb_type: str, dimension: tuple[str, str]) -> list[MetricQuery]:
    dims = (dimension,)
    if lb_type == "application":
        return [MetricQuery("AWS/ApplicationELB", "RequestCount", dims, "Sum")]
    if lb_type == "network":
        return [MetricQuery("AWS/NetworkELB", "ProcessedBytes", dims, "Sum")]
    if lb_type == "gateway":
        return [MetricQuery("AWS/GatewayELB", "ProcessedBytes", dims, "Sum")]
    # Classic: RequestCount only exists for HTTP(S) listeners; TCP ones report bytes.
    return [
        MetricQuery("AWS/ELB", "RequestCount", dims, "Sum"),
        MetricQuery("AWS/ELB", "EstimatedProcessedBytes", dims, "Sum"),
    ]


def _limit(params: LoadBalancerParameters, query: MetricQuery) -> int:
    """The most of this metric over the lookback that is still idle."""
    return params.max_requests if query.metric == "RequestCount" else params.max_processed_bytes


def _traffic(
    params: LoadBalancerParameters, series: Sequence[MetricSeries], window: str
) -> _Traffic:
    parts: list[str] = []
    busy = False
    for one in series:
        name = one.query.metric
        limit = _limit(params, one.query)
        if one.missing:
            continue
        busy = busy or one.total > limit
        parts.append(
            f"{name} {one.total:,.0f} in {window} ({one.coverage()}, idle at <= {limit:,})"
        )
    if not parts:
        # ELB publishes its traffic metrics only when there is traffic, so no datapoint usually
        # means no traffic, but it is also what a metrics outage or a missing permission looks like.
        names = " / ".join(s.query.metric for s in series)
        return _Traffic(
            False, True, f"no {names} datapoints in {window}: no traffic, or no metrics"
        )
    return _Traffic(busy, False, "; ".join(parts))


def _balancers(ctx: RegionContext) -> list[LoadBalancerTypeDef]:
    return [
        lb
        for lb in ctx.inventory.load_balancers()
        if lb.get("State", {}).get("Code") not in _SKIPPED_STATES
    ]


def _wanted(
    balancers: Sequence[LoadBalancerTypeDef], classic: Sequence[LoadBalancerDescriptionTypeDef]
) -> dict[str, list[MetricQuery]]:
    """The traffic queries of both kinds, by ARN (ELBv2) or name (classic): one batch for both."""
    wanted = {
        lb["LoadBalancerArn"]: _queries(
            lb.get("Type", "application"),
            ("LoadBalancer", lb["LoadBalancerArn"].split(":loadbalancer/", 1)[-1]),
        )
        for lb in balancers
    }
    wanted.update(
        {
            lb["LoadBalancerName"]: _queries(
                "classic", ("LoadBalancerName", lb["LoadBalancerName"])
            )
            for lb in classic
        }
    )
    return wanted


def _split(
    params: LoadBalancerParameters,
    wanted: Mapping[str, list[MetricQuery]],
    totals: Mapping[MetricQuery, float | None],
) -> tuple[dict[str, _Traffic], dict[str, list[MetricQuery]]]:
    """The traffic the first look settles, and the queries of the rest (which need daily series)."""
    window = f"{params.lookback_days} days"
    settled: dict[str, _Traffic] = {}
    unsettled: dict[str, list[MetricQuery]] = {}
    for key, qs in wanted.items():
        found = [(q, totals[q]) for q in qs]
        if any(total is not None and total > _limit(params, q) for q, total in found):
            settled[key] = _Traffic(True, False, f"over the idle thresholds in {window}")
        elif all(total is None for _, total in found):
            empty = [MetricSeries(q, params.lookback_days) for q in qs]
            settled[key] = _traffic(params, empty, window)
        else:
            unsettled[key] = qs
    return settled, unsettled


@register
class LoadBalancerDetector(base.Detector[LoadBalancerParameters]):
    """Load balancers with no traffic over a lookback, or with no registered or no healthy
    targets (application, network, gateway and classic load balancers).

    Example ScanSchedule entry::

        detectors:
          load-balancer: {min_age_days: 3, lookback_days: 14, max_requests: 100}

    Traffic comes from CloudWatch, for every load balancer of the region in
    ``ceil(queries / 500)`` ``GetMetricData`` calls: ``RequestCount`` (application),
    ``ProcessedBytes`` (network, gateway), ``RequestCount`` and ``EstimatedProcessedBytes``
    (classic), summed over ``lookback_days``; daily sums (``ceil(queries / 500)`` calls more)
    only for load balancers with some traffic, all of it under the thresholds. A load balancer
    whose traffic exceeds the thresholds is in use and costs no further call; only the others
    have their target health, instance health and attributes read one by one.

    Scoring:

    - no target group, or no registered target (classic: no instance): confidence 90, risk LOW;
    - targets registered but none healthy: confidence 60, risk MEDIUM (an outage looks the same
      as abandonment), 75 when CloudWatch shows no traffic either;
    - healthy targets but traffic at or under the thresholds: confidence 80, risk MEDIUM;
    - healthy targets and no traffic datapoint at all: confidence 50 and a failed
      ``metrics-present`` check (no datapoint is evidence of no traffic, not proof);
    - HIGH risk with a protection tag or AWS deletion protection (``deletion_protection.enabled``,
      a failed ``deletion-protection`` check); a load balancer younger than ``min_age_days`` gets
      confidence 30 and a failed ``recently-created`` check.

    ``resource_id`` is ``app/<name>/<id>`` (``net/...``, ``gwy/...``) for ELBv2 and the name for
    classic load balancers, so the two kinds never collide.
    """

    name = "load-balancer"
    resource_type = "load-balancer"
    permissions = (
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetHealth",
        "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:DescribeLoadBalancerAttributes",
        "elasticloadbalancing:DescribeInstanceHealth",
        "cloudwatch:GetMetricData",
    )
    Parameters = LoadBalancerParameters

    def metric_needs(self, ctx: RegionContext, params: LoadBalancerParameters) -> MetricNeeds:
        wanted = _wanted(_balancers(ctx), ctx.inventory.classic_load_balancers())

        def daily(totals: Mapping[MetricQuery, float | None]) -> list[MetricQuery]:
            _, unsettled = _split(params, wanted, totals)
            return [q for qs in unsettled.values() for q in qs]

        return MetricNeeds(
            params.lookback_days,
            first_look=tuple(q for qs in wanted.values() for q in qs),
            after_first_look=daily,
        )

    def detect(self, ctx: RegionContext, params: LoadBalancerParameters) -> Iterator[Finding]:
        balancers = _balancers(ctx)
        classic = ctx.inventory.classic_load_balancers()
        wanted = _wanted(balancers, classic)
        traffic = self._read_traffic(ctx, params, wanted) if wanted else {}
        yield from self._elbv2(ctx, params, balancers, traffic)
        yield from self._classic(ctx, params, classic, traffic)

    def _read_traffic(
        self,
        ctx: RegionContext,
        params: LoadBalancerParameters,
        wanted: dict[str, list[MetricQuery]],
    ) -> dict[str, _Traffic]:
        """Each load balancer's traffic: first over the whole lookback, one value a query; daily
        series only for those that neither have no datapoint nor exceed a threshold.

        A load balancer over a threshold is busy whatever its days were (the window's sum is
        the sum of its days); one with no datapoint in the window has none on any day. Only the
        rest need the daily series their evidence counts days with. Same verdicts and evidence
        as reading every series daily, with fewer metrics requested.
        """
        window = f"{params.lookback_days} days"
        totals = ctx.inventory.metric_windows(
            [q for qs in wanted.values() for q in qs],
            now=ctx.now,
            lookback_days=params.lookback_days,
        )
        settled, unsettled = _split(params, wanted, totals)
        if unsettled:
            series = ctx.inventory.metric_series(
                [q for qs in unsettled.values() for q in qs],
                now=ctx.now,
                lookback_days=params.lookback_days,
            )
            for key, qs in unsettled.items():
                settled[key] = _traffic(params, [series[q] for q in qs], window)
        return settled

    def _elbv2(
        self,
        ctx: RegionContext,
        params: LoadBalancerParameters,
        balancers: list[LoadBalancerTypeDef],
        traffic: dict[str, _Traffic],
    ) -> Iterator[Finding]:
        if not balancers:
            return
        # Listed only once a load balancer looks idle: a region whose load balancers all carry
        # traffic needs no target group.
        groups: list[TargetGroupTypeDef] | None = None
        idle: list[tuple[Any, list[str], float, list[SafetyCheck]]] = []
        registered_by_arn: dict[str, int] = {}
        healthy_by_arn: dict[str, int] = {}
        for lb in balancers:
            arn = lb["LoadBalancerArn"]
            seen = traffic[arn]
            if seen.busy:
                continue
            # Looks idle: only now is it worth the target groups and a call per target group.
            if groups is None:
                groups = ctx.inventory.target_groups()
            mine = [g for g in groups if arn in g.get("LoadBalancerArns", [])]
            registered = healthy = 0
            for group in mine:
                for target in ctx.inventory.target_health(group["TargetGroupArn"]):
                    registered += 1
                    healthy += target.get("TargetHealth", {}).get("State") == "healthy"
            if not mine:
                targets = "no target group is attached: listeners forward to nothing"
            elif not registered:
                names = ", ".join(g["TargetGroupName"] for g in mine)
                targets = f"no target registered in its target groups ({names})"
            elif not healthy:
                targets = f"none of {registered} registered targets is healthy"
            else:
                targets = f"{healthy} of {registered} registered targets healthy"
            score, checks = _score(registered, healthy, seen)
            registered_by_arn[arn] = registered
            healthy_by_arn[arn] = healthy
            idle.append((lb, [targets, seen.evidence], score, checks))
        if not idle or groups is None:
            return
        tags_by_arn = ctx.inventory.load_balancer_tags([lb["LoadBalancerArn"] for lb, *_ in idle])
        for lb, evidence, score, checks in idle:
            arn = lb["LoadBalancerArn"]
            attributes = ctx.inventory.load_balancer_attributes(arn)
            protected = attributes.get("deletion_protection.enabled") == "true"
            lb_type = lb.get("Type", "application")
            yield self._finding(
                ctx,
                params,
                resource_id=arn.split(":loadbalancer/", 1)[-1],
                arn=arn,
                lb_type=lb_type,
                zones=[z["ZoneName"] for z in lb.get("AvailabilityZones", [])],
                created=lb.get("CreatedTime"),
                tags=tags_by_arn.get(arn, {}),
                evidence=evidence,
                score=score,
                extra_checks=[
                    SafetyCheck(
                        "deletion-protection",
                        not protected,
                        "deletion protection is on" if protected else "deletion protection off",
                    ),
                    *checks,
                ],
                details={
                    "dns_name": lb.get("DNSName"),
                    "scheme": lb.get("Scheme"),
                    "ip_address_type": lb.get("IpAddressType"),
                    "state": lb.get("State", {}).get("Code"),
                    # Cleanup's re-check refuses when more targets are registered than this.
                    "registered_targets": registered_by_arn.get(arn, 0),
                    # Non-zero: judged idle by traffic; cleanup then re-reads the traffic.
                    "healthy_targets": healthy_by_arn.get(arn, 0),
                    "target_groups": [
                        g["TargetGroupName"] for g in groups if arn in g.get("LoadBalancerArns", [])
                    ],
                    "lookback_days": params.lookback_days,
                },
            )

    def _classic(
        self,
        ctx: RegionContext,
        params: LoadBalancerParameters,
        balancers: list[LoadBalancerDescriptionTypeDef],
        traffic: dict[str, _Traffic],
    ) -> Iterator[Finding]:
        if not balancers:
            return
        idle: list[tuple[Any, list[str], float, list[SafetyCheck]]] = []
        healthy_by_name: dict[str, int] = {}
        for lb in balancers:
            seen = traffic[lb["LoadBalancerName"]]
            if seen.busy:
                continue
            instances = lb.get("Instances", [])
            healthy = 0
            if not instances:
                targets = "no instance is registered"
            else:
                states = ctx.inventory.classic_instance_health(lb["LoadBalancerName"])
                healthy = sum(s.get("State") == "InService" for s in states)
                targets = (
                    f"{healthy} of {len(instances)} registered instances InService"
                    if healthy
                    else f"none of {len(instances)} registered instances is InService"
                )
            score, checks = _score(len(instances), healthy, seen)
            healthy_by_name[lb["LoadBalancerName"]] = healthy
            idle.append((lb, [targets, seen.evidence], score, checks))
        if not idle:
            return
        tags_by_name = ctx.inventory.classic_load_balancer_tags(
            [lb["LoadBalancerName"] for lb, *_ in idle]
        )
        for lb, evidence, score, checks in idle:
            name = lb["LoadBalancerName"]
            yield self._finding(
                ctx,
                params,
                resource_id=name,
                arn=ctx.arn("elasticloadbalancing", f"loadbalancer/{name}"),
                lb_type="classic",
                zones=list(lb.get("AvailabilityZones", [])),
                created=lb.get("CreatedTime"),
                tags=tags_by_name.get(name, {}),
                evidence=evidence,
                score=score,
                extra_checks=checks,
                details={
                    "dns_name": lb.get("DNSName"),
                    "scheme": lb.get("Scheme"),
                    "registered_targets": len(lb.get("Instances", [])),
                    "healthy_targets": healthy_by_name.get(name, 0),
                    "lookback_days": params.lookback_days,
                },
            )

    def _finding(
        self,
        ctx: RegionContext,
        params: LoadBalancerParameters,
        *,
        resource_id: str,
        arn: str,
        lb_type: str,
        zones: Sequence[str],
        created: datetime | None,
        tags: dict[str, str],
        evidence: list[str],
        score: float,
        extra_checks: list[SafetyCheck],
        details: dict[str, Any],
    ) -> Finding:
        checks = (
            base.protection_check(tags, params.protection_tags),
            base.age_check(created, ctx.now, params.min_age_days),
            *extra_checks,
        )
        age = base.age_days(created, ctx.now)
        if age is None or age < params.min_age_days:
            score = 30
        risk = base.risk_from(checks, RiskLevel.LOW if score >= 90 else RiskLevel.MEDIUM)
        if any(c.name == "deletion-protection" and not c.passed for c in checks):
            risk = RiskLevel.HIGH
        # The bill's hourly charge plus the public IPv4 address of each zone's node.
        addresses = pricing_lb.public_ipv4_addresses(
            lb_type, details.get("scheme"), len(zones), details.get("ip_address_type")
        )
        cost, unknown = base.priced(
            pricing_lb.load_balancer_bill_monthly,
            ctx.prices,
            ctx.region,
            lb_type,
            scheme=details.get("scheme"),
            zone_count=len(zones),
            ip_address_type=details.get("ip_address_type"),
        )
        return Finding(
            resource_type=self.resource_type,
            resource_id=resource_id,
            region=ctx.region,
            monthly_cost=cost,
            confidence=base.confidence(score),
            risk=risk,
            resource_arn=arn,
            availability_zone=zones[0] if len(zones) == 1 else None,
            evidence=(
                *evidence,
                base.cost_evidence(
                    cost,
                    unknown,
                    f"{lb_type} load balancer (hourly charge"
                    + (f" and {addresses} public IPv4 address(es))" if addresses else ")"),
                ),
            ),
            safety_checks=checks,
            tags=tags,
            created_at=created,
            details={
                "lb_type": lb_type,
                "availability_zones": list(zones),
                **details,
                **base.pricing_details(
                    ctx, cost, unknown, lb_type=lb_type, public_ipv4_addresses=addresses
                ),
            },
        )
