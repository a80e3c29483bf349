"""Idle load balancers: billed by the hour whether or not anything sits behind them.

Registered in ``detectors/__init__.py``; run by the scan run for each account and region.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from cloudsweep.detectors import base, register
from cloudsweep.detectors.context import RegionContext
from cloudsweep.domain import Finding, RiskLevel, SafetyCheck
from cloudsweep.pricing import load_balancers as pricing_lb

# A failed load balancer is AWS's to clean up; a provisioning one is young (recently-created).
_SKIPPED_STATES = ("failed",)


class LoadBalancerParameters(base.DetectorParameters):
    pass


@register
class LoadBalancerDetector(base.Detector[LoadBalancerParameters]):
    """Application, network and gateway load balancers with no registered or no healthy targets,
    and classic load balancers with no instances or no healthy instance.

    Example ScanSchedule entry::

        detectors:
          load-balancer: {min_age_days: 3}

    Scoring:

    - no target group, or no registered target (classic: no instance): confidence 90, risk LOW;
    - targets registered but none healthy (classic: no instance InService): confidence 60, risk
      MEDIUM, since an outage looks the same as abandonment;
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
    )
    Parameters = LoadBalancerParameters

    def detect(self, ctx: RegionContext, params: LoadBalancerParameters) -> Iterator[Finding]:
        yield from self._elbv2(ctx, params)
        yield from self._classic(ctx, params)

    def _elbv2(self, ctx: RegionContext, params: LoadBalancerParameters) -> Iterator[Finding]:
        balancers = [
            lb
            for lb in ctx.inventory.load_balancers()
            if lb.get("State", {}).get("Code") not in _SKIPPED_STATES
        ]
        if not balancers:
            return
        groups = ctx.inventory.target_groups()
        idle: list[tuple[Any, list[str], bool]] = []
        registered_by_arn: dict[str, int] = {}
        for lb in balancers:
            arn = lb["LoadBalancerArn"]
            mine = [g for g in groups if arn in g.get("LoadBalancerArns", [])]
            registered = healthy = 0
            for group in mine:
                for target in ctx.inventory.target_health(group["TargetGroupArn"]):
                    registered += 1
                    healthy += target.get("TargetHealth", {}).get("State") == "healthy"
            if healthy:
                continue
            if not mine:
                evidence = ["no target group is attached: listeners forward to nothing"]
            elif not registered:
                names = ", ".join(g["TargetGroupName"] for g in mine)
                evidence = [f"no target registered in its target groups ({names})"]
            else:
                evidence = [f"none of {registered} registered targets is healthy"]
            registered_by_arn[arn] = registered
            idle.append((lb, evidence, registered > 0))
        if not idle:
            return
        tags_by_arn = ctx.inventory.load_balancer_tags([lb["LoadBalancerArn"] for lb, _, _ in idle])
        for lb, evidence, has_targets in idle:
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
                unhealthy_only=has_targets,
                extra_checks=[
                    SafetyCheck(
                        "deletion-protection",
                        not protected,
                        "deletion protection is on" if protected else "deletion protection off",
                    )
                ],
                details={
                    "dns_name": lb.get("DNSName"),
                    "scheme": lb.get("Scheme"),
                    "ip_address_type": lb.get("IpAddressType"),
                    "state": lb.get("State", {}).get("Code"),
                    # Cleanup's re-check refuses when more targets are registered than this.
                    "registered_targets": registered_by_arn.get(arn, 0),
                    "target_groups": [
                        g["TargetGroupName"] for g in groups if arn in g.get("LoadBalancerArns", [])
                    ],
                },
            )

    def _classic(self, ctx: RegionContext, params: LoadBalancerParameters) -> Iterator[Finding]:
        balancers = ctx.inventory.classic_load_balancers()
        idle: list[tuple[Any, list[str], bool]] = []
        for lb in balancers:
            instances = lb.get("Instances", [])
            if not instances:
                idle.append((lb, ["no instance is registered"], False))
                continue
            states = ctx.inventory.classic_instance_health(lb["LoadBalancerName"])
            if any(s.get("State") == "InService" for s in states):
                continue
            idle.append((lb, [f"none of {len(instances)} registered instances is InService"], True))
        if not idle:
            return
        tags_by_name = ctx.inventory.classic_load_balancer_tags(
            [lb["LoadBalancerName"] for lb, _, _ in idle]
        )
        for lb, evidence, has_targets in idle:
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
                unhealthy_only=has_targets,
                extra_checks=[],
                details={
                    "dns_name": lb.get("DNSName"),
                    "scheme": lb.get("Scheme"),
                    "registered_targets": len(lb.get("Instances", [])),
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
        unhealthy_only: bool,
        extra_checks: list[SafetyCheck],
        details: dict[str, Any],
    ) -> Finding:
        checks = (
            base.protection_check(tags, params.protection_tags),
            base.age_check(created, ctx.now, params.min_age_days),
            *extra_checks,
        )
        age = base.age_days(created, ctx.now)
        score = 60.0 if unhealthy_only else 90.0
        if age is None or age < params.min_age_days:
            score = 30
        risk = base.risk_from(checks, RiskLevel.MEDIUM if unhealthy_only else RiskLevel.LOW)
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
