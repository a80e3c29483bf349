"""The cloudwatch-log-group detector against moto over HTTP."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from cloudsweep.detectors import log_group
from cloudsweep.domain import RiskLevel, utcnow

from .conftest import REGION, by_id, check

DETECTOR = log_group.LogGroupDetector()


def group(logs, name: str, size: int, **tags: str) -> None:
    logs.create_log_group(logGroupName=name, **({"tags": tags} if tags else {}))
    if size:
        logs.create_log_stream(logGroupName=name, logStreamName="app")
        now_ms = int(utcnow().timestamp() * 1000)
        logs.put_log_events(
            logGroupName=name,
            logStreamName="app",
            logEvents=[{"timestamp": now_ms, "message": "x" * size}],
        )


def findings(make_context, **kwargs):
    params = kwargs.pop("params", {})
    return by_id(list(DETECTOR.detect(make_context(**kwargs), DETECTOR.parameters(params))))


def test_a_never_expiring_group_is_priced_by_its_stored_bytes_older_than_the_retention(
    seed, make_context, catalog
):
    group(seed("logs"), "/app/orders", 10_000, team="orders")

    finding = findings(make_context)["/app/orders"]  # scanned 120 days after creation

    total = catalog.cloudwatch_logs_storage_monthly(REGION, 10_000)
    share = Decimal(str(round(1 - 30 / 120, 4)))
    assert abs(finding.monthly_cost - (total * share).quantize(Decimal("0.01"))) <= Decimal("0.01")
    assert finding.details["stored_bytes"] == 10_000
    assert finding.details["storage_monthly_cost"] == str(total.quantize(Decimal("0.01")))
    assert 0.74 < finding.details["share_older_than_retention"] < 0.76
    assert finding.tags == {"team": "orders"}
    assert finding.risk is RiskLevel.MEDIUM
    assert finding.confidence == 85
    assert finding.resource_arn.startswith(f"arn:aws:logs:{REGION}:")


def test_groups_with_retention_or_no_data_are_not_reported(seed, make_context):
    logs = seed("logs")
    group(logs, "/app/kept", 5_000)
    logs.put_retention_policy(logGroupName="/app/kept", retentionInDays=14)
    group(logs, "/app/empty", 0)
    group(logs, "/app/forever", 5_000)

    assert set(findings(make_context)) == {"/app/forever"}


def test_a_group_younger_than_the_retention_costs_nothing_yet(seed, make_context):
    group(seed("logs"), "/app/new", 5_000)

    finding = findings(make_context, now=utcnow() + timedelta(days=10))["/app/new"]

    assert finding.monthly_cost == 0
    assert finding.confidence == 50


def test_protected_group_is_high_risk_and_scan_is_read_only(seed, make_context, recorder):
    group(seed("logs"), "/audit/trail", 5_000, **{"do-not-delete": "true"})

    finding = findings(make_context)["/audit/trail"]

    assert not check(finding, "protection-tag")
    assert finding.risk is RiskLevel.HIGH
    assert not recorder.mutating()
