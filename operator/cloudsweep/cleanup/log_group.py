"""Cleanup action for log groups that never expire: set a retention (the setting is undoable,
the events it expires are not).

Registered in ``cleanup/__init__.py``; driven by ``cleanup.executor`` for approved
``cloudwatch-log-group`` findings, whose ``resource_id`` is the log group's name.

Example CleanupPolicy rule::

    rules:
      - resourceType: cloudwatch-log-group
        action: set-retention
        parameters: {retention_days: 90}

``set-retention``, step by step:

- recheck: ``DescribeLogGroups`` (by name prefix, matched exactly) and ``ListTagsForResource``;
  "gone" when the group no longer exists or has a retention already; refused when it carries a
  protection tag.
- dry run: CloudWatch Logs has no ``DryRun``: the same read-only checks, and the calls it would
  make.
- prepare: records ``log_group_name, log_group_arn, previous_retention_in_days, stored_bytes``.
- execute: reads the group first and treats the retention already set (a lost answer) as done;
  else ``PutRetentionPolicy``.
- rollback: ``DeleteRetentionPolicy`` (back to "never expire") or ``PutRetentionPolicy`` with the
  recorded previous value. Events CloudWatch Logs expired in between are gone for good.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, field_validator

from cloudsweep import aws
from cloudsweep.aws import ErrorKind
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
from cloudsweep.cleanup.common import gone_before_recorded, jsonable, protected_by
from cloudsweep.cleanup.service_calls import call
from cloudsweep.domain import ActionType

# The values PutRetentionPolicy accepts (CloudWatch Logs API reference).
RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip


class SetRetentionParameters(ActionParameters):
    retention_days: int = Field(
        default=30, description="Days CloudWatch Logs keeps events; one of the values AWS accepts."
    )

    @field_validator("retention_days")
    @classmethod
    def _accepted_by_aws(cls, value: int) -> int:
        if value not in RETENTION_DAYS:
            raise ValueError(
                f"retention_days {value} is not a value CloudWatch Logs accepts; use one of "
                f"{', '.join(map(str, RETENTION_DAYS))}"
            )
        return value


def describe_log_group(ctx: ActionContext, name: str) -> dict[str, Any] | None:
    """The log group called exactly ``name`` (a prefix search may find longer names too)."""
    response = call(ctx, "logs", "DescribeLogGroups", logGroupNamePrefix=name)
    for group in response.get("logGroups", []):
        if group.get("logGroupName") == name:
            return dict(group)
    return None


def _group_arn(group: Mapping[str, Any]) -> str:
    return str(group.get("logGroupArn") or str(group.get("arn", "")).removesuffix(":*"))


@register
class SetRetention(CleanupAction):
    """Give the log group a retention of ``retention_days``; CloudWatch Logs then deletes older
    events on its own.

    Example CleanupPolicy rule::

        - resourceType: cloudwatch-log-group
          action: set-retention
          parameters: {retention_days: 90}
    """

    resource_type: ClassVar[str] = "cloudwatch-log-group"
    action: ClassVar[str] = "set-retention"
    action_type: ClassVar[ActionType] = ActionType.DELETE  # it expires (deletes) old events
    rollback_possible: ClassVar[bool] = True
    rollback_note: ClassVar[str] = (
        "restores the previous retention setting (never expire); events expired meanwhile are "
        "not restored"
    )
    permissions: ClassVar[tuple[str, ...]] = (
        "logs:DeleteRetentionPolicy",
        "logs:DescribeLogGroups",
        "logs:ListTagsForResource",
        "logs:PutRetentionPolicy",
    )
    Parameters: ClassVar[type[ActionParameters]] = SetRetentionParameters

    def recheck(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        group = describe_log_group(ctx, item.resource_id)
        if group is None:
            return Recheck.gone("log group no longer exists")
        retention = group.get("retentionInDays")
        facts: dict[str, Any] = {"retention_in_days": retention}
        if retention:
            return Recheck.gone(f"log group has a retention of {retention} days already", **facts)
        tags = call(ctx, "logs", "ListTagsForResource", resourceArn=_group_arn(group)).get(
            "tags", {}
        )
        facts["tags"] = tags
        protection = protected_by(tags, ctx.protection_tags)
        if protection is not None:
            return Recheck(False, f"log group is now protected by tag {protection}", facts)
        return Recheck(True, "still never expires and is unprotected", facts)

    def dry_run(
        self, ctx: ActionContext, item: CleanupItem, params: ActionParameters
    ) -> DryRunResult:
        assert isinstance(params, SetRetentionParameters)
        # No DryRun in CloudWatch Logs: the re-check's reads are the check.
        group = describe_log_group(ctx, item.resource_id)
        calls = ("logs:PutRetentionPolicy",)
        if group is None:
            return DryRunResult(False, f"log group {item.resource_id} no longer exists", calls)
        return DryRunResult(
            True,
            f"would set a retention of {params.retention_days} days on {item.resource_id} "
            "(CloudWatch Logs has no DryRun: checked by reading the group)",
            calls,
        )

    def prepare(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        recorded: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        if "previous_retention_in_days" in recorded:
            return dict(recorded)
        group = describe_log_group(ctx, item.resource_id)
        if group is None:
            raise gone_before_recorded(
                ctx, "logs", "DescribeLogGroups", "ResourceNotFoundException", item.resource_id
            )
        return {
            "log_group_name": item.resource_id,
            "log_group_arn": _group_arn(group),
            "previous_retention_in_days": group.get("retentionInDays"),
            "stored_bytes": group.get("storedBytes"),
        }

    def execute(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        rollback_data: Mapping[str, Any],
    ) -> Outcome:
        assert isinstance(params, SetRetentionParameters)
        group = describe_log_group(ctx, item.resource_id)
        if group is None:
            return Outcome(
                {"logGroupName": item.resource_id, "Error": "ResourceNotFoundException"},
                already_done=True,
                note=f"log group {item.resource_id} no longer exists: nothing is stored",
            )
        if group.get("retentionInDays") == params.retention_days:
            return Outcome(
                {"logGroupName": item.resource_id, "retentionInDays": params.retention_days},
                already_done=True,
                note=f"{item.resource_id} already keeps {params.retention_days} days "
                "(an earlier attempt)",
            )
        response = call(
            ctx,
            "logs",
            "PutRetentionPolicy",
            logGroupName=item.resource_id,
            retentionInDays=params.retention_days,
        )
        return Outcome(
            {**jsonable(response), "retentionInDays": params.retention_days},
            note=f"{item.resource_id} now keeps {params.retention_days} days of events",
        )

    def rollback(
        self, ctx: ActionContext, rollback_data: Mapping[str, Any], params: ActionParameters
    ) -> Outcome:
        name = str(rollback_data["log_group_name"])
        previous = rollback_data.get("previous_retention_in_days")
        group = describe_log_group(ctx, name)
        if group is None:
            raise aws.AwsError(
                ErrorKind.TERMINAL,
                service="logs",
                operation="DeleteRetentionPolicy",
                code="ResourceNotFoundException",
                message=f"log group {name} no longer exists: there is no setting to restore",
                region=ctx.region,
            )
        if group.get("retentionInDays") == previous:
            return Outcome(
                {"logGroupName": name, "retentionInDays": previous},
                already_done=True,
                note=f"{name} has its previous retention already",
            )
        if previous is None:
            response = call(ctx, "logs", "DeleteRetentionPolicy", logGroupName=name)
            note = f"{name} never expires again"
        else:
            response = call(
                ctx, "logs", "PutRetentionPolicy", logGroupName=name, retentionInDays=int(previous)
            )
            note = f"{name} keeps {previous} days again"
        return Outcome({**jsonable(response), "retentionInDays": previous}, note=note)


__all__ = ["RETENTION_DAYS", "SetRetention", "SetRetentionParameters"]
