"""The cloudwatch-log-group cleanup action (set-retention) against moto over HTTP."""

from __future__ import annotations

import pydantic
import pytest

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import log_group
from cloudsweep.domain import utcnow
from tests import faults

from .storage_helpers import ACCOUNT, REGION, StorageHarness

SET_RETENTION = log_group.SetRetention()
LOGS_EVENTS = "cloudwatch-logs"  # botocore's event name of the logs service


@pytest.fixture
def h(moto_endpoint: str) -> StorageHarness:
    return StorageHarness(moto_endpoint)


def group(h: StorageHarness, name: str, **tags: str) -> str:
    logs = h.client("logs")
    logs.create_log_group(logGroupName=name, **({"tags": tags} if tags else {}))
    logs.create_log_stream(logGroupName=name, logStreamName="s")
    logs.put_log_events(
        logGroupName=name,
        logStreamName="s",
        logEvents=[{"timestamp": int(utcnow().timestamp() * 1000), "message": "x" * 4000}],
    )
    return name


def retention(h: StorageHarness, name: str) -> int | None:
    groups = h.client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    return next(g.get("retentionInDays") for g in groups if g["logGroupName"] == name)


def log_calls(h: StorageHarness, operation: str) -> int:
    return h.recorder.count(service="logs", operation=operation)


def test_registered_and_the_retention_must_be_one_aws_accepts():
    assert cleanup.actions_for("cloudwatch-log-group") == ["set-retention"]
    assert SET_RETENTION.parameters({"retention_days": 90}).retention_days == 90
    with pytest.raises(pydantic.ValidationError, match="not a value CloudWatch Logs accepts"):
        SET_RETENTION.parameters({"retention_days": 31})


def test_recheck_passes_refuses_protected_and_is_gone_once_a_retention_exists(h):
    name = group(h, "/app/api")
    item = h.item("cloudwatch-log-group", name)
    assert SET_RETENTION.recheck(h.ctx(), item).still_waste

    h.client("logs").tag_log_group(logGroupName=name, tags={"do-not-delete": "true"})
    refused = SET_RETENTION.recheck(h.ctx(), item)
    assert not refused.still_waste and "protected by tag do-not-delete" in refused.reason
    # The facts of a refusal are what the history records with it.
    assert refused.facts == {"retention_in_days": None, "tags": {"do-not-delete": "true"}}

    h.client("logs").put_retention_policy(logGroupName=name, retentionInDays=14)
    gone = SET_RETENTION.recheck(h.ctx(), item)
    assert gone.facts["gone"] is True and "14 days" in gone.reason


def test_dry_run_changes_nothing(h):
    name = group(h, "/app/dry")
    item = h.item("cloudwatch-log-group", name)

    result = SET_RETENTION.dry_run(h.ctx(), item, SET_RETENTION.parameters({}))

    assert result.would_succeed and "logs:PutRetentionPolicy" in result.calls
    assert retention(h, name) is None
    assert h.mutating() == []


def test_set_retention_then_rollback_restores_never_expire(h):
    name = group(h, "/app/orders")
    bystander = group(h, "/app/other")
    item = h.item("cloudwatch-log-group", name)
    ctx, params = h.ctx(), SET_RETENTION.parameters({"retention_days": 90})

    data = SET_RETENTION.prepare(ctx, item, params, {})
    assert data["previous_retention_in_days"] is None
    outcome = SET_RETENTION.execute(ctx, item, params, data)

    assert not outcome.already_done
    assert retention(h, name) == 90 and retention(h, bystander) is None

    undone = SET_RETENTION.rollback(h.ctx(checkpoints={}), data, SET_RETENTION.parameters({}))
    assert not undone.already_done and retention(h, name) is None
    assert SET_RETENTION.rollback(h.ctx(checkpoints={}), data, params).already_done
    assert log_calls(h, "DeleteRetentionPolicy") == 1


def test_rollback_restores_a_previous_value_when_there_was_one(h):
    name = group(h, "/app/previous")
    data = {"log_group_name": name, "previous_retention_in_days": 400}
    h.client("logs").put_retention_policy(logGroupName=name, retentionInDays=30)

    SET_RETENTION.rollback(h.ctx(), data, SET_RETENTION.parameters({}))

    assert retention(h, name) == 400


def test_a_lost_response_is_done_on_the_next_attempt_not_repeated(h):
    name = group(h, "/app/lost")
    item = h.item("cloudwatch-log-group", name)
    ctx, params = h.ctx(), SET_RETENTION.parameters({})
    data = SET_RETENTION.prepare(ctx, item, params, {})
    lost = faults.lose_response(h.events_of("logs"), LOGS_EVENTS, "PutRetentionPolicy")

    with pytest.raises(aws.AwsError) as failed:
        SET_RETENTION.execute(ctx, item, params, data)
    assert aws.errors.outcome_unknown(failed.value) and lost.hits == 1
    assert retention(h, name) == 30

    again = SET_RETENTION.execute(ctx, item, params, SET_RETENTION.prepare(ctx, item, params, data))

    assert again.already_done
    assert log_calls(h, "PutRetentionPolicy") == 1


def test_a_refused_put_fails_with_the_aws_message_and_changes_nothing(h):
    name = group(h, "/app/denied")
    item = h.item("cloudwatch-log-group", name)
    ctx, params = h.ctx(), SET_RETENTION.parameters({})
    data = SET_RETENTION.prepare(ctx, item, params, {})
    faults.fail_with(
        h.events_of("logs"),
        f"before-send.{LOGS_EVENTS}.PutRetentionPolicy",
        status=400,
        body=b'{"__type": "AccessDeniedException", "message": "not allowed here"}',
    )

    with pytest.raises(aws.AwsError) as failed:
        SET_RETENTION.execute(ctx, item, params, data)

    assert failed.value.kind is aws.ErrorKind.ACCESS_DENIED
    assert retention(h, name) is None


# --- the group is the one named exactly, and what each step records and says -------------------


def test_a_longer_name_sharing_the_prefix_is_another_group(h):
    name = group(h, "/app/api")
    longer = group(h, "/app/api2")
    h.client("logs").put_retention_policy(logGroupName=longer, retentionInDays=14)
    h.client("logs").tag_log_group(logGroupName=longer, tags={"do-not-delete": "true"})
    item = h.item("cloudwatch-log-group", name)
    ctx, params = h.ctx(), SET_RETENTION.parameters({"retention_days": 90})

    recheck = SET_RETENTION.recheck(ctx, item)
    data = SET_RETENTION.prepare(ctx, item, params, {})
    SET_RETENTION.execute(ctx, item, params, data)

    assert recheck.still_waste, recheck.reason
    assert recheck.facts == {"retention_in_days": None, "tags": {}}
    assert data["log_group_name"] == name and data["previous_retention_in_days"] is None
    assert data["log_group_arn"].endswith(f":log-group:{name}")
    assert (retention(h, name), retention(h, longer)) == (90, 14)

    h.client("logs").delete_log_group(logGroupName=name)
    gone = SET_RETENTION.recheck(ctx, item)
    assert (gone.still_waste, gone.facts) == (False, {"gone": True}), gone.reason


def test_recheck_reports_the_live_tags_for_the_policys_rules(h):
    name = group(h, "/app/tagged", team="payments")
    item = h.item("cloudwatch-log-group", name)
    h.client("logs").tag_log_group(logGroupName=name, tags={"owner": "ops"})

    result = SET_RETENTION.recheck(h.ctx(), item)

    assert result.still_waste, result.reason
    assert result.facts["tags"] == {"team": "payments", "owner": "ops"}


def test_a_retention_set_since_the_scan_is_reported_with_its_value(h):
    name = group(h, "/app/kept")
    item = h.item("cloudwatch-log-group", name)
    h.client("logs").put_retention_policy(logGroupName=name, retentionInDays=7)

    result = SET_RETENTION.recheck(h.ctx(), item)

    assert result.facts == {"retention_in_days": 7, "gone": True}
    assert result.reason == "log group has a retention of 7 days already"
    assert h.recorder.count(service="logs", operation="ListTagsForResource") == 0


def test_dry_run_of_a_group_deleted_since_the_scan_would_fail(h):
    name = group(h, "/app/dropped")
    item = h.item("cloudwatch-log-group", name)
    present = SET_RETENTION.dry_run(h.ctx(), item, SET_RETENTION.parameters({"retention_days": 60}))
    h.client("logs").delete_log_group(logGroupName=name)

    gone = SET_RETENTION.dry_run(h.ctx(), item, SET_RETENTION.parameters({}))

    assert present.would_succeed
    assert present.message == (
        f"would set a retention of 60 days on {name} "
        "(CloudWatch Logs has no DryRun: checked by reading the group)"
    )
    assert present.calls == ("logs:PutRetentionPolicy",)
    assert not gone.would_succeed
    assert gone.message == f"log group {name} no longer exists"
    assert gone.calls == ("logs:PutRetentionPolicy",)  # the history's "checked" either way
    assert h.mutating() == []


def test_prepare_records_the_group_and_keeps_an_earlier_record(h):
    name = group(h, "/app/recorded")
    item = h.item("cloudwatch-log-group", name)
    ctx, params = h.ctx(), SET_RETENTION.parameters({})

    data = SET_RETENTION.prepare(ctx, item, params, {})
    SET_RETENTION.execute(ctx, item, params, data)
    again = SET_RETENTION.prepare(ctx, item, params, data)

    assert set(data) == {
        "log_group_name",
        "log_group_arn",
        "previous_retention_in_days",
        "stored_bytes",
    }
    assert data["stored_bytes"] is not None
    # The rerun must not record the retention this action set as the one to restore.
    assert again == data and again["previous_retention_in_days"] is None


def test_prepare_of_a_group_deleted_before_it_was_recorded_fails_not_found(h):
    name = group(h, "/app/vanished")
    item = h.item("cloudwatch-log-group", name)
    h.client("logs").delete_log_group(logGroupName=name)

    with pytest.raises(aws.AwsError) as failed:
        SET_RETENTION.prepare(h.ctx(), item, SET_RETENTION.parameters({}), {})

    assert (failed.value.kind, failed.value.code) == (
        aws.ErrorKind.NOT_FOUND,
        "ResourceNotFoundException",
    )
    assert "gone before its configuration was recorded" in str(failed.value)


def test_execute_on_a_deleted_group_is_done_and_calls_nothing(h):
    name = group(h, "/app/deleted")
    item = h.item("cloudwatch-log-group", name)
    ctx, params = h.ctx(), SET_RETENTION.parameters({})
    data = SET_RETENTION.prepare(ctx, item, params, {})
    h.client("logs").delete_log_group(logGroupName=name)

    outcome = SET_RETENTION.execute(ctx, item, params, data)

    assert outcome.already_done
    assert outcome.response == {"logGroupName": name, "Error": "ResourceNotFoundException"}
    assert log_calls(h, "PutRetentionPolicy") == 0


def test_execute_says_what_it_set_and_a_rerun_what_was_there(h):
    name = group(h, "/app/noted")
    item = h.item("cloudwatch-log-group", name)
    ctx, params = h.ctx(), SET_RETENTION.parameters({"retention_days": 180})
    data = SET_RETENTION.prepare(ctx, item, params, {})

    first = SET_RETENTION.execute(ctx, item, params, data)
    again = SET_RETENTION.execute(ctx, item, params, data)

    assert first.response["retentionInDays"] == 180
    assert first.note == f"{name} now keeps 180 days of events"
    assert (again.already_done, again.response) == (
        True,
        {"logGroupName": name, "retentionInDays": 180},
    )
    assert log_calls(h, "PutRetentionPolicy") == 1


def test_a_retention_other_than_the_policys_is_replaced(h):
    """Set by someone between the re-check and execute: the policy's value is what is asked."""
    name = group(h, "/app/other-value")
    item = h.item("cloudwatch-log-group", name)
    ctx, params = h.ctx(), SET_RETENTION.parameters({"retention_days": 90})
    data = SET_RETENTION.prepare(ctx, item, params, {})
    h.client("logs").put_retention_policy(logGroupName=name, retentionInDays=30)

    outcome = SET_RETENTION.execute(ctx, item, params, data)

    assert not outcome.already_done
    assert retention(h, name) == 90


def test_rollback_of_a_deleted_group_fails_with_the_reason(h):
    name = group(h, "/app/rolled")
    data = {"log_group_name": name, "previous_retention_in_days": None}
    h.client("logs").delete_log_group(logGroupName=name)

    with pytest.raises(aws.AwsError) as failed:
        SET_RETENTION.rollback(h.ctx(), data, SET_RETENTION.parameters({}))

    assert (failed.value.kind, failed.value.code) == (
        aws.ErrorKind.TERMINAL,
        "ResourceNotFoundException",
    )
    assert "no setting to restore" in str(failed.value)


def test_rollback_to_a_previous_value_says_so_and_is_done_once(h):
    name = group(h, "/app/restored")
    data = {"log_group_name": name, "previous_retention_in_days": 400}
    h.client("logs").put_retention_policy(logGroupName=name, retentionInDays=30)

    undone = SET_RETENTION.rollback(h.ctx(), data, SET_RETENTION.parameters({}))
    again = SET_RETENTION.rollback(h.ctx(), data, SET_RETENTION.parameters({}))

    assert not undone.already_done
    assert undone.note == f"{name} keeps 400 days again"
    assert undone.response["retentionInDays"] == 400
    assert again.already_done and again.response == {"logGroupName": name, "retentionInDays": 400}
    assert log_calls(h, "PutRetentionPolicy") == 1
    assert log_calls(h, "DeleteRetentionPolicy") == 0


# --- an answer without logGroupArn, and the words the history and the conditions show ----------


def arn_of(name: str) -> str:
    return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"


def test_a_group_reported_only_by_its_arn_field_is_read_by_that_arn(h):
    """CloudWatch Logs answered without ``logGroupArn`` before it added that field; its ``arn``
    ends in ``:*``, which ListTagsForResource does not take and the record must not keep."""
    name = group(h, "/app/older-api", team="payments")
    item = h.item("cloudwatch-log-group", name)

    def older_answer(parsed: dict, **_: object) -> None:
        for found in parsed.get("logGroups", []):
            found.pop("logGroupArn", None)
            found["arn"] = f"{arn_of(found['logGroupName'])}:*"

    h.events_of("logs").register(f"after-call.{LOGS_EVENTS}.DescribeLogGroups", older_answer)
    ctx, params = h.ctx(), SET_RETENTION.parameters({})

    recheck = SET_RETENTION.recheck(ctx, item)
    data = SET_RETENTION.prepare(ctx, item, params, {})

    arn = arn_of(name)
    assert recheck.facts["tags"] == {"team": "payments"}
    (listed,) = h.recorder.calls(operation="ListTagsForResource")
    assert listed.params == {"resourceArn": arn}
    assert data["log_group_arn"] == arn


def test_the_recheck_and_execute_say_what_they_found_exactly(h):
    name = group(h, "/app/worded")
    item = h.item("cloudwatch-log-group", name)
    ctx, params = h.ctx(), SET_RETENTION.parameters({"retention_days": 60})
    data = SET_RETENTION.prepare(ctx, item, params, {})

    waste = SET_RETENTION.recheck(ctx, item)
    SET_RETENTION.execute(ctx, item, params, data)
    again = SET_RETENTION.execute(ctx, item, params, data)
    h.client("logs").delete_log_group(logGroupName=name)
    gone = SET_RETENTION.recheck(ctx, item)
    deleted = SET_RETENTION.execute(ctx, item, params, data)

    assert waste.reason == "still never expires and is unprotected"
    assert again.note == f"{name} already keeps 60 days (an earlier attempt)"
    assert gone.reason == "log group no longer exists"
    assert deleted.note == f"log group {name} no longer exists: nothing is stored"
    dry = SET_RETENTION.dry_run(ctx, item, params)
    assert dry.would_succeed is False


def test_the_errors_a_user_reads_say_where_and_why(h):
    name = group(h, "/app/erred")
    item = h.item("cloudwatch-log-group", name)
    h.client("logs").delete_log_group(logGroupName=name)
    ctx, params = h.ctx(), SET_RETENTION.parameters({})

    with pytest.raises(aws.AwsError) as not_recorded:
        SET_RETENTION.prepare(ctx, item, params, {})
    with pytest.raises(aws.AwsError) as not_restored:
        SET_RETENTION.rollback(ctx, {"log_group_name": name}, params)

    assert str(not_recorded.value) == (
        "logs:DescribeLogGroups in us-east-1 failed (not-found, ResourceNotFoundException): "
        f"{name} is gone before its configuration was recorded"
    )
    assert str(not_restored.value) == (
        "logs:DeleteRetentionPolicy in us-east-1 failed (terminal, ResourceNotFoundException): "
        f"log group {name} no longer exists: there is no setting to restore"
    )


def test_rollback_to_never_expire_says_so(h):
    name = group(h, "/app/forever")
    h.client("logs").put_retention_policy(logGroupName=name, retentionInDays=30)

    undone = SET_RETENTION.rollback(
        h.ctx(),
        {"log_group_name": name, "previous_retention_in_days": None},
        SET_RETENTION.parameters({}),
    )
    again = SET_RETENTION.rollback(
        h.ctx(),
        {"log_group_name": name, "previous_retention_in_days": None},
        SET_RETENTION.parameters({}),
    )

    assert undone.note == f"{name} never expires again"
    assert undone.response["retentionInDays"] is None
    assert again.note == f"{name} has its previous retention already"
    assert retention(h, name) is None


# --- the group among a page's worth of others, and the retention a rollback puts back ----------


def test_the_group_is_found_behind_a_full_page_of_groups_that_sort_before_it(h):
    """DescribeLogGroups answers at most 50 groups a page, in name order: the name searched as a
    prefix puts the group first even when its own name begins 50 longer ones."""
    logs = h.client("logs")
    for i in range(50):
        logs.create_log_group(logGroupName=f"/app/ap{i:02}")  # before /app/api, not its prefix
        logs.create_log_group(logGroupName=f"/app/api/{i:02}")  # after it, with it as prefix
    name = group(h, "/app/api")
    item = h.item("cloudwatch-log-group", name)
    ctx, params = h.ctx(), SET_RETENTION.parameters({"retention_days": 90})

    recheck = SET_RETENTION.recheck(ctx, item)
    data = SET_RETENTION.prepare(ctx, item, params, {})
    outcome = SET_RETENTION.execute(ctx, item, params, data)

    assert (recheck.still_waste, recheck.facts) == (True, {"retention_in_days": None, "tags": {}})
    assert data["log_group_arn"] == arn_of(name)
    assert not outcome.already_done
    assert (retention(h, name), retention(h, "/app/api/00"), retention(h, "/app/ap49")) == (
        90,
        None,
        None,
    )


def test_a_rollback_puts_back_the_retention_the_group_had_when_it_was_recorded(h):
    """A retention set by someone after the re-check is recorded, and the rollback restores it
    rather than leaving the group to keep its events for ever."""
    name = group(h, "/app/kept-400-days")
    item = h.item("cloudwatch-log-group", name)
    h.client("logs").put_retention_policy(logGroupName=name, retentionInDays=400)
    ctx, params = h.ctx(), SET_RETENTION.parameters({"retention_days": 90})

    data = SET_RETENTION.prepare(ctx, item, params, {})
    SET_RETENTION.execute(ctx, item, params, data)
    assert retention(h, name) == 90
    undone = SET_RETENTION.rollback(h.ctx(checkpoints={}), data, params)

    assert retention(h, name) == 400
    assert log_calls(h, "DeleteRetentionPolicy") == 0
    assert undone.note == f"{name} keeps 400 days again"
    assert data["previous_retention_in_days"] == 400  # the checkpoint the history keeps
