"""Cleanup action for buckets with abandoned multipart uploads: add a lifecycle rule that aborts
them, merged into the bucket's lifecycle configuration (undoable, exactly).

Registered in ``cleanup/__init__.py``; driven by ``cleanup.executor`` for approved
``s3-incomplete-multipart`` findings, whose ``resource_id`` is the bucket's name.

Example CleanupPolicy rule::

    rules:
      - resourceType: s3-incomplete-multipart
        action: add-abort-multipart-rule
        parameters: {days_after_initiation: 7}

``add-abort-multipart-rule``, step by step:

- recheck: ``GetBucketLifecycleConfiguration``, ``GetBucketTagging``, ``ListMultipartUploads``;
  "gone" when the bucket no longer exists or a rule already aborts every incomplete upload;
  refused when it carries a protection tag or has no incomplete uploads any more.
- dry run: S3 has no ``DryRun``: the same reads, and the merged configuration it would write.
- prepare: records the lifecycle configuration exactly as S3 returns it (``previous_rules``: the
  rules, or None for "no configuration"; ``previous_transition_default``).
- execute: reads the configuration again: with the CloudSweep rule in it, done (a lost answer);
  changed since prepare, refused (a later attempt records it again); else
  ``PutBucketLifecycleConfiguration`` with the recorded rules plus the abort rule.
- rollback: if the configuration is still the recorded one plus the abort rule, puts the
  recorded rules back, or deletes the configuration when there was none; if someone changed it
  since, refuses rather than overwrite their change (the recorded rules are in the ledger).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import Field

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

RULE_ID = "cloudsweep-abort-incomplete-multipart-uploads"
_MAX_RULES = 1000  # S3's limit of rules in one lifecycle configuration


class AbortRuleParameters(ActionParameters):
    days_after_initiation: int = Field(
        default=7,
        ge=1,
        le=3650,
        description="The rule aborts uploads this many days after they were started.",
    )


def lifecycle(ctx: ActionContext, bucket: str) -> dict[str, Any] | None:
    """``{"rules": [...], "transition_default": ...}``, or None for no configuration; a missing
    bucket raises ``AwsError`` (not found)."""
    try:
        response = call(ctx, "s3", "GetBucketLifecycleConfiguration", Bucket=bucket)
    except aws.AwsError as exc:
        if exc.code == "NoSuchLifecycleConfiguration":
            return None
        raise
    body = jsonable(response)
    return {
        "rules": list(body.get("Rules", [])),
        "transition_default": body.get("TransitionDefaultMinimumObjectSize"),
    }


def aborts_everything(rules: Sequence[Mapping[str, Any]]) -> bool:
    """Whether an enabled rule with an empty prefix aborts incomplete uploads."""
    for rule in rules:
        if rule.get("Status") != "Enabled" or not rule.get("AbortIncompleteMultipartUpload"):
            continue
        rule_filter = rule.get("Filter")
        prefix = (rule_filter or {}).get("Prefix", rule.get("Prefix", ""))
        if rule_filter is not None and set(rule_filter) - {"Prefix"}:
            continue
        if not prefix:
            return True
    return False


def abort_rule(days: int) -> dict[str, Any]:
    return {
        "ID": RULE_ID,
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days},
    }


def _without_ours(rules: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rules if r.get("ID") != RULE_ID]


@register
class AddAbortMultipartRule(CleanupAction):
    """Add one lifecycle rule aborting incomplete multipart uploads after
    ``days_after_initiation`` days; S3 then deletes their parts on its own.

    Example CleanupPolicy rule::

        - resourceType: s3-incomplete-multipart
          action: add-abort-multipart-rule
          parameters: {days_after_initiation: 7}

    The bucket's other rules are kept as they are. The rule's ID is
    ``cloudsweep-abort-incomplete-multipart-uploads``.
    """

    resource_type: ClassVar[str] = "s3-incomplete-multipart"
    action: ClassVar[str] = "add-abort-multipart-rule"
    action_type: ClassVar[ActionType] = ActionType.DELETE  # S3 deletes the abandoned parts
    rollback_possible: ClassVar[bool] = True
    rollback_note: ClassVar[str] = (
        "restores the bucket's lifecycle configuration exactly as recorded (or removes it when "
        "there was none); parts S3 aborted meanwhile are not restored"
    )
    permissions: ClassVar[tuple[str, ...]] = (
        "s3:GetBucketTagging",
        "s3:GetLifecycleConfiguration",
        "s3:ListBucketMultipartUploads",
        "s3:PutLifecycleConfiguration",
    )
    Parameters: ClassVar[type[ActionParameters]] = AbortRuleParameters

    def recheck(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        bucket = item.resource_id
        try:
            config = lifecycle(ctx, bucket)
        except aws.AwsError as exc:
            if exc.kind is ErrorKind.NOT_FOUND:
                return Recheck.gone("bucket no longer exists")
            raise
        rules = config["rules"] if config else []
        facts: dict[str, Any] = {"lifecycle_rules": len(rules) if config else None}
        if aborts_everything(rules):
            return Recheck.gone("a lifecycle rule aborts incomplete uploads already", **facts)
        try:
            tag_set = call(ctx, "s3", "GetBucketTagging", Bucket=bucket).get("TagSet", [])
        except aws.AwsError as exc:
            if exc.code != "NoSuchTagSet":
                raise
            tag_set = []
        tags = {t["Key"]: t.get("Value", "") for t in tag_set}
        facts["tags"] = tags
        protection = protected_by(tags, ctx.protection_tags)
        if protection is not None:
            return Recheck(False, f"bucket is now protected by tag {protection}", facts)
        uploads = call(ctx, "s3", "ListMultipartUploads", Bucket=bucket, MaxUploads=1)
        if not uploads.get("Uploads"):
            return Recheck(False, "the bucket has no incomplete multipart uploads any more", facts)
        if len(rules) >= _MAX_RULES:
            return Recheck(False, f"the bucket has {len(rules)} rules, S3's maximum", facts)
        return Recheck(True, "still holds incomplete uploads no rule aborts", facts)

    def dry_run(
        self, ctx: ActionContext, item: CleanupItem, params: ActionParameters
    ) -> DryRunResult:
        assert isinstance(params, AbortRuleParameters)
        calls = ("s3:PutLifecycleConfiguration",)
        try:
            config = lifecycle(ctx, item.resource_id)
        except aws.AwsError as exc:
            if exc.kind.retryable:
                raise
            return DryRunResult(False, f"cannot read the lifecycle configuration: {exc}", calls)
        kept = len(config["rules"]) if config else 0
        return DryRunResult(
            True,
            f"would add rule {RULE_ID} (abort after {params.days_after_initiation} days) to "
            f"{kept} existing rule(s) of {item.resource_id} (S3 has no DryRun: checked by reading)",
            calls,
        )

    def prepare(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        recorded: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        assert isinstance(params, AbortRuleParameters)
        if "previous_rules" in recorded:
            return dict(recorded)
        try:
            config = lifecycle(ctx, item.resource_id)
        except aws.AwsError as exc:
            if exc.kind is ErrorKind.NOT_FOUND:
                raise gone_before_recorded(
                    ctx, "s3", "GetBucketLifecycleConfiguration", exc.code, item.resource_id
                ) from exc
            raise
        return {
            "bucket": item.resource_id,
            "previous_rules": None if config is None else config["rules"],
            "previous_transition_default": None if config is None else config["transition_default"],
            "rule_id": RULE_ID,
            "days_after_initiation": params.days_after_initiation,
        }

    def execute(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        rollback_data: Mapping[str, Any],
    ) -> Outcome:
        bucket = item.resource_id
        config = lifecycle(ctx, bucket)
        current = config["rules"] if config else None
        if current is not None and any(r.get("ID") == RULE_ID for r in current):
            return Outcome(
                {"Bucket": bucket, "RuleId": RULE_ID},
                already_done=True,
                note=f"{bucket} has the abort rule already (an earlier attempt)",
            )
        previous = rollback_data.get("previous_rules")
        if current != previous:
            raise aws.AwsError(
                ErrorKind.TERMINAL,
                service="s3",
                operation="PutBucketLifecycleConfiguration",
                code="LifecycleChanged",
                message=f"the lifecycle configuration of {bucket} changed after it was recorded; "
                "nothing was written: the next run records it again",
                region=ctx.region,
            )
        rules = [*(previous or []), abort_rule(int(rollback_data["days_after_initiation"]))]
        request: dict[str, Any] = {"Bucket": bucket, "LifecycleConfiguration": {"Rules": rules}}
        if rollback_data.get("previous_transition_default"):
            request["TransitionDefaultMinimumObjectSize"] = rollback_data[
                "previous_transition_default"
            ]
        response = call(ctx, "s3", "PutBucketLifecycleConfiguration", **request)
        return Outcome(
            {**jsonable(response), "Bucket": bucket, "RuleId": RULE_ID, "Rules": len(rules)},
            note=f"added {RULE_ID} to {bucket} ({len(rules) - 1} other rule(s) kept)",
        )

    def rollback(
        self, ctx: ActionContext, rollback_data: Mapping[str, Any], params: ActionParameters
    ) -> Outcome:
        bucket = str(rollback_data["bucket"])
        previous = rollback_data.get("previous_rules")
        config = lifecycle(ctx, bucket)
        current = config["rules"] if config else None
        if current == previous:
            return Outcome(
                {"Bucket": bucket}, already_done=True, note=f"{bucket} has its recorded rules"
            )
        ours = [r for r in current or () if r.get("ID") == RULE_ID]
        if not ours or _without_ours(current or []) != (previous or []):
            raise aws.AwsError(
                ErrorKind.TERMINAL,
                service="s3",
                operation="PutBucketLifecycleConfiguration",
                code="LifecycleChanged",
                message=f"the lifecycle configuration of {bucket} was changed after CloudSweep "
                "added its rule; not overwriting that change. The configuration before "
                "CloudSweep is in this action's rollback data (previous_rules)",
                region=ctx.region,
            )
        if previous is None:
            response = call(ctx, "s3", "DeleteBucketLifecycle", Bucket=bucket)
            note = f"{bucket} has no lifecycle configuration again"
        else:
            request: dict[str, Any] = {
                "Bucket": bucket,
                "LifecycleConfiguration": {"Rules": list(previous)},
            }
            if rollback_data.get("previous_transition_default"):
                request["TransitionDefaultMinimumObjectSize"] = rollback_data[
                    "previous_transition_default"
                ]
            response = call(ctx, "s3", "PutBucketLifecycleConfiguration", **request)
            note = f"{bucket} has its {len(previous)} recorded rule(s) again"
        return Outcome({**jsonable(response), "Bucket": bucket}, note=note)


__all__ = ["RULE_ID", "AbortRuleParameters", "AddAbortMultipartRule"]
