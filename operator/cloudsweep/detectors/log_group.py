"""CloudWatch Logs log groups that never expire: every event ever sent is stored, and billed,
until someone deletes it.

Registered in ``detectors/__init__.py``; run by the scan run for each account and region.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import Field

from cloudsweep.detectors import base, register
from cloudsweep.detectors.context import RegionContext
from cloudsweep.domain import Finding, RiskLevel, money


class LogGroupParameters(base.DetectorParameters):
    retention_days: int = Field(
        default=30,
        ge=1,
        le=3653,
        description="The retention the waste is measured against: bytes older than this are waste.",
    )


@register
class LogGroupDetector(base.Detector[LogGroupParameters]):
    """Log groups with no retention setting ("Never expire") that store data.

    Example ScanSchedule entry::

        detectors:
          cloudwatch-log-group: {retention_days: 90, min_age_days: 14}

    Scoring:

    - confidence 85 when the group is older than ``retention_days`` (some of its data is older
      than the retention anyone keeps), 50 when it is younger; 30 below ``min_age_days``.
    - risk MEDIUM: a retention setting deletes events older than it, for good (the rollback
      restores the setting, not the events). HIGH with a protection tag.
    - cost: the share of ``storedBytes`` older than ``retention_days``, at the CloudWatch Logs
      storage price, assuming the group received data evenly since its creation (AWS reports
      only the total); the whole storage cost is in the details.
    """

    name = "cloudwatch-log-group"
    resource_type = "cloudwatch-log-group"
    permissions = ("logs:DescribeLogGroups", "logs:ListTagsForResource")
    Parameters = LogGroupParameters

    def detect(self, ctx: RegionContext, params: LogGroupParameters) -> Iterator[Finding]:
        for group in ctx.inventory.log_groups():
            stored = int(group.get("storedBytes") or 0)
            if group.get("retentionInDays") or stored <= 0:
                continue
            name = str(group["logGroupName"])
            arn = str(group.get("logGroupArn") or ctx.arn("logs", f"log-group:{name}"))
            tags = ctx.inventory.log_group_tags(arn)
            created_ms = group.get("creationTime")
            created = datetime.fromtimestamp(created_ms / 1000, UTC) if created_ms else None
            age = base.age_days(created, ctx.now)
            checks = (
                base.protection_check(tags, params.protection_tags),
                base.age_check(created, ctx.now, params.min_age_days),
            )
            total, unknown = base.priced(
                ctx.prices.cloudwatch_logs_storage_monthly, ctx.region, stored
            )
            older = 0.0 if not age else max(0.0, 1 - params.retention_days / age)
            cost = money(total * Decimal(str(round(older, 4))))
            score = 85.0 if older > 0 else 50.0
            if age is None or age < params.min_age_days:
                score = 30
            evidence = (
                f"retention: never expire; stores {stored} bytes",
                base.cost_evidence(total, unknown, "all stored events"),
                f"about {older:.0%} of it is older than {params.retention_days} days "
                f"(created {age or 0:.0f} days ago, data assumed to arrive evenly): {cost} USD/month",
            )
            yield Finding(
                resource_type=self.resource_type,
                resource_id=name,
                region=ctx.region,
                monthly_cost=cost,
                confidence=base.confidence(score),
                risk=base.risk_from(checks, RiskLevel.MEDIUM),
                resource_arn=arn,
                evidence=evidence,
                safety_checks=checks,
                tags=tags,
                created_at=created,
                details={
                    "retention_in_days": None,
                    "stored_bytes": stored,
                    "storage_monthly_cost": str(total),
                    "share_older_than_retention": round(older, 4),
                    **base.pricing_details(
                        ctx,
                        cost,
                        unknown,
                        stored_bytes=stored,
                        retention_days=params.retention_days,
                    ),
                },
            )
