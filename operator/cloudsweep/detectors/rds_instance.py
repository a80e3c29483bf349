"""Stopped RDS instances (still billed for storage) and instances nobody connects to.

Registered in ``detectors/__init__.py``; run by the scan run for each account and region.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from cloudsweep.detectors import base, register
from cloudsweep.detectors.context import RegionContext
from cloudsweep.detectors.metrics import MetricNeeds, MetricQuery, MetricSeries
from cloudsweep.domain import Finding, RiskLevel, SafetyCheck, money

if TYPE_CHECKING:
    from mypy_boto3_rds.type_defs import DBInstanceTypeDef


class RdsInstanceParameters(base.DetectorParameters):
    lookback_days: int = Field(
        default=14,
        ge=1,
        le=63,
        description="Days of CloudWatch DatabaseConnections to look at for idle instances "
        "(14: AWS Compute Optimizer's default lookback).",
    )
    max_connections: int = Field(
        default=0,
        ge=0,
        le=100_000,
        description="A peak of at most this many connections a day over the lookback is idle "
        "(0: Trusted Advisor's idle RDS check asks for no connection at all).",
    )


def _connections(identifier: str) -> MetricQuery:
    dims = (("DBInstanceIdentifier", identifier),)
    return MetricQuery("AWS/RDS", "DatabaseConnections", dims, "Maximum")


def _candidates(ctx: RegionContext) -> list[DBInstanceTypeDef]:
    return [
        db
        for db in ctx.inventory.db_instances()
        if not (db.get("DBClusterIdentifier") or db.get("Engine", "").startswith("aurora"))
    ]


def _queries(
    ctx: RegionContext, params: RdsInstanceParameters, candidates: Sequence[DBInstanceTypeDef]
) -> dict[str, MetricQuery]:
    """One batch of queries for every available instance old enough to have a full history."""
    return {
        db["DBInstanceIdentifier"]: _connections(db["DBInstanceIdentifier"])
        for db in candidates
        if db.get("DBInstanceStatus") == "available"
        and (base.age_days(db.get("InstanceCreateTime"), ctx.now) or 0) >= params.lookback_days
    }


@register
class RdsInstanceDetector(base.Detector[RdsInstanceParameters]):
    """RDS instances that are stopped, or available with no connections over a look-back window.

    Example ScanSchedule entry::

        detectors:
          rds-instance: {lookback_days: 30}

    Idle detection reads CloudWatch ``AWS/RDS DatabaseConnections`` (daily Maximum) over
    ``lookback_days``, only for instances at least that old (a younger one has no full history),
    for all instances of the region in ``ceil(instances / 500)`` ``GetMetricData`` calls.
    Aurora cluster members are skipped: storage and stop/start belong to the cluster.

    Scoring:

    - stopped: confidence 75 (people stop databases on purpose, and AWS starts them again after
      7 days); cost is storage only (instance hours are not billed while stopped).
    - available with datapoints whose maximum is at most ``max_connections``: confidence 85 (65
      when fewer days than the lookback have datapoints), cost instance + storage.
    - available with no datapoint at all: confidence 40 and a failed ``metrics-present`` check,
      because missing metrics look the same as an idle database.
    - risk MEDIUM (a database holds data; cleanup takes a final snapshot); HIGH with a protection
      tag or deletion protection; a failed ``referenced-by`` check when read replicas replicate
      from the instance.
    """

    name = "rds-instance"
    resource_type = "rds-instance"
    permissions = ("rds:DescribeDBInstances", "cloudwatch:GetMetricData")
    Parameters = RdsInstanceParameters

    def metric_needs(self, ctx: RegionContext, params: RdsInstanceParameters) -> MetricNeeds:
        queries = _queries(ctx, params, _candidates(ctx))
        return MetricNeeds(params.lookback_days, series=tuple(queries.values()))

    def detect(self, ctx: RegionContext, params: RdsInstanceParameters) -> Iterator[Finding]:
        candidates = _candidates(ctx)
        queries = _queries(ctx, params, candidates)
        series = (
            ctx.inventory.metric_series(
                list(queries.values()), now=ctx.now, lookback_days=params.lookback_days
            )
            if queries
            else {}
        )
        for db in candidates:
            status = db.get("DBInstanceStatus")
            if status == "stopped":
                yield self._finding(
                    ctx,
                    params,
                    db,
                    stopped=True,
                    evidence=[
                        "status stopped: storage is still billed, and AWS starts a stopped instance "
                        "again after 7 days",
                    ],
                    checks=[],
                    score=75,
                )
            elif db["DBInstanceIdentifier"] in queries:
                query = queries[db["DBInstanceIdentifier"]]
                found = self._idle(params, series[query])
                if found is not None:
                    evidence, checks, score = found
                    yield self._finding(
                        ctx,
                        params,
                        db,
                        stopped=False,
                        evidence=evidence,
                        checks=checks,
                        score=score,
                    )

    def _idle(
        self, params: RdsInstanceParameters, series: MetricSeries
    ) -> tuple[list[str], list[SafetyCheck], float] | None:
        window = f"{params.lookback_days} days"
        if series.missing:
            return (
                [f"no DatabaseConnections datapoints in {window}: idle, or metrics missing"],
                [SafetyCheck("metrics-present", False, f"no CloudWatch datapoints in {window}")],
                40.0,
            )
        if series.peak > params.max_connections:
            return None
        return (
            [
                f"at most {series.peak:.0f} connections in {window} ({series.datapoints} daily "
                f"datapoints, idle at <= {params.max_connections})"
            ],
            [SafetyCheck("metrics-present", True, f"{series.coverage()} with datapoints")],
            85.0 if series.complete else 65.0,
        )

    def _finding(
        self,
        ctx: RegionContext,
        params: RdsInstanceParameters,
        db: DBInstanceTypeDef,
        *,
        stopped: bool,
        evidence: list[str],
        checks: list[SafetyCheck],
        score: float,
    ) -> Finding:
        identifier = db["DBInstanceIdentifier"]
        tags = base.tag_map(db.get("TagList"))
        created = db.get("InstanceCreateTime")
        replicas = db.get("ReadReplicaDBInstanceIdentifiers", [])
        deletion_protection = bool(db.get("DeletionProtection"))
        all_checks = (
            base.protection_check(tags, params.protection_tags),
            base.age_check(created, ctx.now, params.min_age_days),
            SafetyCheck(
                "deletion-protection",
                not deletion_protection,
                "deletion protection is on" if deletion_protection else "deletion protection off",
            ),
            SafetyCheck(
                base.REFERENCE_CHECK,
                not replicas,
                f"read replicas replicate from it: {', '.join(replicas)}"
                if replicas
                else "no read replica replicates from it",
            ),
            *checks,
        )
        age = base.age_days(created, ctx.now)
        if age is None or age < params.min_age_days:
            score = min(score, 30)
        risk = base.risk_from(all_checks, RiskLevel.MEDIUM)
        if deletion_protection:
            risk = RiskLevel.HIGH

        instance_class = db.get("DBInstanceClass", "")
        engine = db.get("Engine", "")
        multi_az = bool(db.get("MultiAZ"))
        storage_type = db.get("StorageType", "gp2")
        size = db.get("AllocatedStorage", 0)
        iops = db.get("Iops") if storage_type in ("io1", "io2", "gp3") else None
        throughput = db.get("StorageThroughput") if storage_type == "gp3" else None
        storage, unknown_storage = base.priced(
            ctx.prices.rds_storage_monthly,
            ctx.region,
            storage_type,
            size,
            iops,
            throughput,
            multi_az,
            engine,
        )
        compute, unknown_compute = (
            (money(0), None)
            if stopped
            else base.priced(
                ctx.prices.rds_instance_monthly, ctx.region, instance_class, engine, multi_az
            )
        )
        cost = money(storage + compute)
        unknown = "; ".join(u for u in (unknown_storage, unknown_compute) if u) or None
        inputs: dict[str, Any] = {
            "instance_class": instance_class,
            "engine": engine,
            "multi_az": multi_az,
            "storage_type": storage_type,
            "allocated_storage_gib": size,
            "iops": iops,
            "throughput_mibps": throughput,
            "storage_monthly": str(money(storage)),
            "instance_monthly": str(money(compute)),
        }
        what = "storage only (stopped)" if stopped else "instance and storage"
        return Finding(
            resource_type=self.resource_type,
            resource_id=identifier,
            region=ctx.region,
            monthly_cost=cost,
            confidence=base.confidence(score),
            risk=risk,
            resource_arn=db.get("DBInstanceArn") or ctx.arn("rds", f"db:{identifier}"),
            availability_zone=None if multi_az else db.get("AvailabilityZone"),
            evidence=(*evidence, base.cost_evidence(cost, unknown, f"{what},")),
            safety_checks=all_checks,
            tags=tags,
            created_at=created,
            details={
                "status": db.get("DBInstanceStatus"),
                "stopped": stopped,
                # The cleanup re-check refuses an instance with more connections since the scan.
                "max_connections": params.max_connections,
                **base.pricing_details(ctx, cost, unknown, **inputs),
            },
        )
