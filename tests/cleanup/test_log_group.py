"""The cloudwatch-log-group cleanup action (set-retention) against moto over HTTP."""

from __future__ import annotations

import pydantic
import pytest

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import log_group
from cloudsweep.domain import utcnow
from tests import faults

from .storage_helpers import StorageHarness

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
