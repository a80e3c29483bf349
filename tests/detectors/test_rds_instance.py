"""The rds-instance detector against moto over HTTP.

Idle detection reads CloudWatch: the tests put DatabaseConnections datapoints into moto with
``put_metric_data`` (timestamps relative to the scan's injected ``now``), and also cover the case
of no datapoints at all, which the detector reports with low confidence and a failed check.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from cloudsweep.detectors import rds_instance
from cloudsweep.domain import RiskLevel, utcnow

from .conftest import LATER, by_id, check

DETECTOR = rds_instance.RdsInstanceDetector()


def _db(rds, identifier, **extra):
    params = {
        "DBInstanceIdentifier": identifier,
        "DBInstanceClass": "db.t3.micro",
        "Engine": "postgres",
        "AllocatedStorage": 20,
        "MasterUsername": "admin",
        "MasterUserPassword": "password123",
        **extra,
    }
    return rds.create_db_instance(**params)["DBInstance"]["DBInstanceArn"]


def _connections(cloudwatch, identifier, now, values):
    cloudwatch.put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": "DatabaseConnections",
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": identifier}],
                "Value": value,
                "Timestamp": now - timedelta(days=day + 1),
            }
            for day, value in enumerate(values)
        ],
    )


def test_stopped_instance_is_billed_for_storage(seed, make_context):
    rds = seed("rds")
    arn = _db(rds, "stopped-db")
    rds.stop_db_instance(DBInstanceIdentifier="stopped-db")

    (finding,) = DETECTOR.detect(make_context(), DETECTOR.parameters())

    assert finding.resource_id == "stopped-db"
    assert finding.resource_arn == arn
    assert finding.monthly_cost == Decimal("2.30")  # 20 GiB gp2 x 0.115 USD; no instance hours
    assert finding.confidence == 75
    assert finding.risk is RiskLevel.MEDIUM
    assert any("stopped" in e for e in finding.evidence)
    pricing = finding.resource_details()["pricing"]
    assert pricing["instance_monthly"] == "0.00" and pricing["storage_type"] == "gp2"


def test_idle_instance_by_cloudwatch(seed, make_context):
    rds, cloudwatch = seed("rds"), seed("cloudwatch")
    _db(rds, "idle-db")
    _db(rds, "busy-db")
    now = utcnow() + LATER
    _connections(cloudwatch, "idle-db", now, [0] * 14)
    _connections(cloudwatch, "busy-db", now, [0] * 10 + [3] + [0] * 3)

    findings = by_id(list(DETECTOR.detect(make_context(now=now), DETECTOR.parameters())))

    assert set(findings) == {"idle-db"}
    idle = findings["idle-db"]
    # db.t3.micro PostgreSQL 0.018 USD/hour x 730 = 13.14, + 20 GiB gp2 x 0.115 = 2.30
    assert idle.monthly_cost == Decimal("15.44")
    assert idle.confidence == 85
    assert idle.risk is RiskLevel.MEDIUM
    assert check(idle, "metrics-present")
    assert any("0 connections in 14 days" in e for e in idle.evidence)


def test_no_datapoints_is_low_confidence_and_a_failed_check(seed, make_context):
    _db(seed("rds"), "silent-db")

    (finding,) = DETECTOR.detect(make_context(), DETECTOR.parameters())

    assert finding.confidence == 40
    assert not check(finding, "metrics-present")
    assert any("metrics missing" in e for e in finding.evidence)


def test_instance_younger_than_the_lookback_is_not_judged_idle(seed, make_context):
    _db(seed("rds"), "new-db")

    assert list(DETECTOR.detect(make_context(now=utcnow()), DETECTOR.parameters())) == []


def test_deletion_protection_and_protection_tag(seed, make_context):
    rds = seed("rds")
    _db(rds, "locked-db", DeletionProtection=True)
    _db(rds, "tagged-db", Tags=[{"Key": "cloudsweep.io/protect", "Value": "true"}])
    for identifier in ("locked-db", "tagged-db"):
        rds.stop_db_instance(DBInstanceIdentifier=identifier)

    findings = by_id(list(DETECTOR.detect(make_context(), DETECTOR.parameters())))

    assert not check(findings["locked-db"], "deletion-protection")
    assert findings["locked-db"].risk is RiskLevel.HIGH
    assert not check(findings["tagged-db"], "protection-tag")
    assert findings["tagged-db"].risk is RiskLevel.HIGH


def test_listing_follows_every_page(seed, make_context, recorder):
    rds = seed("rds")
    for i in range(23):
        _db(rds, f"db-{i}")
        rds.stop_db_instance(DBInstanceIdentifier=f"db-{i}")

    findings = list(DETECTOR.detect(make_context(page_size=1), DETECTOR.parameters()))

    assert len(findings) == 23
    calls = recorder.calls(operation="DescribeDBInstances")
    assert len(calls) == 2  # pages of 20 (the API's minimum) + 3
    assert calls[0].params["MaxRecords"] == 20


def test_lookback_is_a_parameter(seed, make_context, recorder):
    _db(seed("rds"), "idle-db")
    params = DETECTOR.parameters({"lookback_days": 30})

    list(DETECTOR.detect(make_context(), params))

    (call,) = recorder.calls(operation="GetMetricData")
    window = call.params["EndTime"] - call.params["StartTime"]
    assert window == timedelta(days=30)
    (query,) = call.params["MetricDataQueries"]
    assert query["MetricStat"]["Metric"]["MetricName"] == "DatabaseConnections"


def test_idleness_of_many_instances_is_read_in_one_call(seed, make_context, recorder):
    """No call per database: one GetMetricData for every available instance of the region."""
    rds, cloudwatch = seed("rds"), seed("cloudwatch")
    now = utcnow() + LATER
    for n in range(6):
        _db(rds, f"db-{n}")
    _connections(cloudwatch, "db-0", now, [5] * 14)

    findings = by_id(list(DETECTOR.detect(make_context(now=now), DETECTOR.parameters())))

    assert "db-0" not in findings and len(findings) == 5
    assert recorder.count(service="cloudwatch", operation="GetMetricData") == 1
    assert not recorder.calls(operation="GetMetricStatistics")


def test_max_connections_is_a_threshold(seed, make_context):
    rds, cloudwatch = seed("rds"), seed("cloudwatch")
    now = utcnow() + LATER
    _db(rds, "quiet-db")
    _connections(cloudwatch, "quiet-db", now, [2] * 14)
    params = DETECTOR.parameters({"max_connections": 2})

    (finding,) = DETECTOR.detect(make_context(now=now), params)

    assert finding.resource_id == "quiet-db" and finding.confidence == 85
    assert any("at most 2 connections" in e for e in finding.evidence)
