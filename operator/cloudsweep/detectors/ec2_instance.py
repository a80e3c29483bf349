"""Idle EC2 instances: running, billed by the hour, and doing nothing measurable for weeks.

Registered in ``detectors/__init__.py``; run by the scan run for each account and region.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from cloudsweep.detectors import base, register
from cloudsweep.detectors.context import RegionContext
from cloudsweep.detectors.metrics import MetricNeeds, MetricQuery, MetricSeries
from cloudsweep.domain import Finding, RiskLevel, SafetyCheck, money

if TYPE_CHECKING:
    from mypy_boto3_ec2.type_defs import InstanceTypeDef

ASG_TAG = "aws:autoscaling:groupName"
METRICS_CHECK = "metrics-present"
ASG_CHECK = "auto-scaling-group"
STOPPABLE_CHECK = "stoppable"
_MB = 1_000_000


class Ec2InstanceParameters(base.DetectorParameters):
    lookback_days: int = Field(
        default=14,
        ge=1,
        le=63,
        description="Days of CloudWatch CPU and network to look at (14: AWS Compute Optimizer's "
        "and Trusted Advisor's lookback).",
    )
    max_cpu_percent: int = Field(
        default=5,
        ge=0,
        le=100,
        description="A daily CPU maximum at or under this, every day, is idle (5%: stricter than "
        "Trusted Advisor's 10% daily average, since this is the daily peak).",
    )
    max_network_bytes_per_day: int = Field(
        default=5_000_000,
        ge=0,
        le=10**15,
        description="Network in plus out at or under this many bytes every day is negligible "
        "(5 MB: Trusted Advisor's low-utilization EC2 check).",
    )


def cpu_query(instance_id: str) -> MetricQuery:
    return MetricQuery("AWS/EC2", "CPUUtilization", (("InstanceId", instance_id),), "Maximum")


def network_queries(instance_id: str) -> tuple[MetricQuery, MetricQuery]:
    dims = (("InstanceId", instance_id),)
    return (
        MetricQuery("AWS/EC2", "NetworkIn", dims, "Sum"),
        MetricQuery("AWS/EC2", "NetworkOut", dims, "Sum"),
    )


def _stoppable(instance: InstanceTypeDef, type_info: Mapping[str, Any] | None) -> SafetyCheck:
    """Stopping loses instance-store data; AWS cannot stop instance-store-backed or spot
    instances (spot ones are interrupted, not stopped, unless persistent)."""
    problems = []
    if instance.get("RootDeviceType") == "instance-store":
        problems.append("its root device is an instance store: it cannot be stopped")
    elif type_info and type_info.get("InstanceStorageSupported"):
        problems.append(
            f"{instance.get('InstanceType')} has instance-store volumes, whose data a stop erases"
        )
    if instance.get("InstanceLifecycle") == "spot":
        problems.append("it is a spot instance")
    if problems:
        return SafetyCheck(STOPPABLE_CHECK, False, "; ".join(problems))
    return SafetyCheck(STOPPABLE_CHECK, True, "EBS-backed, no instance store: a stop loses no data")


def asg_check(tags: Mapping[str, str]) -> SafetyCheck:
    group = tags.get(ASG_TAG)
    if group:
        return SafetyCheck(
            ASG_CHECK,
            False,
            f"in Auto Scaling group {group}: the group would replace a stopped instance; "
            "change the group's capacity instead",
        )
    return SafetyCheck(ASG_CHECK, True, "in no Auto Scaling group")


def _running(ctx: RegionContext) -> list[InstanceTypeDef]:
    return [i for i in ctx.inventory.instances() if i.get("State", {}).get("Name") == "running"]


def _daily_queries(
    params: Ec2InstanceParameters,
    running: Sequence[InstanceTypeDef],
    peaks: Mapping[MetricQuery, float | None],
) -> list[MetricQuery]:
    """The daily CPU and network series of the instances the CPU first look did not settle."""
    queries = []
    for instance in running:
        peak = peaks[cpu_query(instance["InstanceId"])]
        if peak is not None and peak <= params.max_cpu_percent:
            queries.append(cpu_query(instance["InstanceId"]))
            queries.extend(network_queries(instance["InstanceId"]))
    return queries


@register
class Ec2InstanceDetector(base.Detector[Ec2InstanceParameters]):
    """Running EC2 instances whose CPU and network stayed negligible over a lookback.

    Example ScanSchedule entry::

        detectors:
          ec2-instance: {lookback_days: 14, max_cpu_percent: 5, max_network_bytes_per_day: 5000000}

    CloudWatch ``AWS/EC2`` ``CPUUtilization`` (daily Maximum) and ``NetworkIn`` / ``NetworkOut``
    (daily Sum): first the CPU peak over the whole lookback of every running instance of the
    region (``ceil(instances / 500)`` ``GetMetricData`` calls), which settles the busy ones and
    those without metrics; then the daily series of the others (``ceil(3 x others / 500)``). Idle: every day's CPU peak at most ``max_cpu_percent`` and the
    busiest day's network in plus out at most ``max_network_bytes_per_day``.

    Scoring:

    - idle with a datapoint for (nearly) every day: confidence 85; fewer days: 60;
    - no CPU datapoint at all: confidence 40 and a failed ``metrics-present`` check (a running
      instance always reports CPU, so this is missing metrics, not proof of idleness);
    - risk MEDIUM (a stop interrupts whatever runs there; it is undone by a start); HIGH with a
      protection tag; failed checks ``auto-scaling-group`` (the group replaces a stopped
      instance) and ``stoppable`` (instance store, spot) make the stop action refuse;
    - savings are the instance hours only: the EBS volumes and Elastic IPs stay billed while it
      is stopped, and the finding says so.
    """

    name = "ec2-instance"
    resource_type = "ec2-instance"
    permissions = (
        "ec2:DescribeInstances",
        "ec2:DescribeInstanceTypes",
        "cloudwatch:GetMetricData",
    )
    Parameters = Ec2InstanceParameters

    def metric_needs(self, ctx: RegionContext, params: Ec2InstanceParameters) -> MetricNeeds:
        running = _running(ctx)
        return MetricNeeds(
            params.lookback_days,
            first_look=tuple(cpu_query(i["InstanceId"]) for i in running),
            after_first_look=lambda peaks: _daily_queries(params, running, peaks),
        )

    def detect(self, ctx: RegionContext, params: Ec2InstanceParameters) -> Iterator[Finding]:
        running = _running(ctx)
        if not running:
            return
        # First each instance's CPU peak over the whole lookback: no datapoint, or a peak over
        # the threshold, settles it (as the daily series would); the daily CPU and network
        # series only for the rest, whose evidence counts days.
        peaks = ctx.inventory.metric_windows(
            [cpu_query(i["InstanceId"]) for i in running],
            now=ctx.now,
            lookback_days=params.lookback_days,
        )
        queries = _daily_queries(params, running, peaks)
        series = (
            ctx.inventory.metric_series(queries, now=ctx.now, lookback_days=params.lookback_days)
            if queries
            else {}
        )
        idle: list[tuple[InstanceTypeDef, list[str], list[SafetyCheck], float]] = []
        for instance in running:
            peak = peaks[cpu_query(instance["InstanceId"])]
            if peak is not None and peak > params.max_cpu_percent:
                continue  # busy: the daily series would say the same
            if peak is None:
                empty = MetricSeries(cpu_query(instance["InstanceId"]), params.lookback_days)
                series[empty.query] = empty
            verdict = self._judge(params, instance["InstanceId"], series)
            if verdict is not None:
                idle.append((instance, *verdict))
        if not idle:
            return
        # One call per 100 distinct types, and only for instances that look idle.
        types = ctx.inventory.instance_types(str(i.get("InstanceType") or "") for i, *_ in idle)
        for instance, evidence, checks, score in idle:
            yield self._finding(ctx, params, instance, types, evidence, checks, score)

    def _judge(
        self,
        params: Ec2InstanceParameters,
        instance_id: str,
        series: Mapping[MetricQuery, MetricSeries],
    ) -> tuple[list[str], list[SafetyCheck], float] | None:
        window = f"{params.lookback_days} days"
        cpu = series[cpu_query(instance_id)]
        if cpu.missing:
            return (
                [
                    f"no CPUUtilization datapoints in {window}: metrics missing, not proof of idleness"
                ],
                [SafetyCheck(METRICS_CHECK, False, f"no CloudWatch datapoints in {window}")],
                40.0,
            )
        net_in, net_out = (series[q] for q in network_queries(instance_id))
        network = net_in.peak + net_out.peak
        if cpu.peak > params.max_cpu_percent or network > params.max_network_bytes_per_day:
            return None
        return (
            [
                f"CPU at most {cpu.peak:.1f}% a day over {window} ({cpu.coverage()}; idle at <= "
                f"{params.max_cpu_percent:g}%)",
                f"network at most {network / _MB:.2f} MB a day in + out (idle at <= "
                f"{params.max_network_bytes_per_day / _MB:g} MB)",
            ],
            [SafetyCheck(METRICS_CHECK, True, f"CPU datapoints on {cpu.coverage()}")],
            85.0 if cpu.complete else 60.0,
        )

    def _finding(
        self,
        ctx: RegionContext,
        params: Ec2InstanceParameters,
        instance: InstanceTypeDef,
        types: Mapping[str, Any],
        evidence: list[str],
        metric_checks: list[SafetyCheck],
        score: float,
    ) -> Finding:
        instance_id = instance["InstanceId"]
        instance_type = str(instance.get("InstanceType", ""))
        tags = base.tag_map(instance.get("Tags"))
        launched = instance.get("LaunchTime")
        checks = (
            base.protection_check(tags, params.protection_tags),
            base.age_check(launched, ctx.now, params.min_age_days),
            asg_check(tags),
            _stoppable(instance, types.get(instance_type)),
            *metric_checks,
        )
        age = base.age_days(launched, ctx.now)
        if age is None or age < params.min_age_days:
            score = min(score, 30)
        cost, unknown = base.priced(ctx.prices.ec2_instance_monthly, ctx.region, instance_type)
        volumes = [
            m["Ebs"]["VolumeId"] for m in instance.get("BlockDeviceMappings", []) if "Ebs" in m
        ]
        placement = instance.get("Placement", {})
        return Finding(
            resource_type=self.resource_type,
            resource_id=instance_id,
            region=ctx.region,
            monthly_cost=money(cost),
            confidence=base.confidence(score),
            risk=base.risk_from(checks, RiskLevel.MEDIUM),
            resource_arn=ctx.arn("ec2", f"instance/{instance_id}"),
            availability_zone=placement.get("AvailabilityZone"),
            evidence=(
                *evidence,
                base.cost_evidence(cost, unknown, f"{instance_type} instance hours (Linux)"),
                f"stopping it saves the instance hours only: its {len(volumes)} EBS volume(s) and "
                "any Elastic IP stay billed",
            ),
            safety_checks=checks,
            tags=tags,
            created_at=launched,
            details={
                "state": "running",
                "instance_type": instance_type,
                "volume_ids": volumes,
                "lookback_days": params.lookback_days,
                # The stop action's re-check holds the last day to the same thresholds.
                "max_cpu_percent": params.max_cpu_percent,
                "max_network_bytes_per_day": params.max_network_bytes_per_day,
                **base.pricing_details(ctx, cost, unknown, instance_type=instance_type),
            },
        )
