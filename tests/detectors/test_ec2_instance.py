"""The ec2-instance (idle running instance) detector against moto over HTTP.

CPU and network datapoints are put into moto with ``put_metric_data`` (timestamps relative to the
scan's injected ``now``); moto publishes no EC2 metrics itself, which gives the "metrics missing"
case for free.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from cloudsweep.detectors import ec2_instance
from cloudsweep.domain import RiskLevel, utcnow

from .conftest import LATER, by_id, check

DETECTOR = ec2_instance.Ec2InstanceDetector()


def _run(ec2, instance_type="t3.micro", tags=None, **extra):
    spec = (
        {
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ]
        }
        if tags
        else {}
    )
    return ec2.run_instances(
        ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType=instance_type, **spec, **extra
    )["Instances"][0]["InstanceId"]


def put_usage(cloudwatch, instance_id, now, cpu, network_bytes=1000, days=14):
    """``days`` daily datapoints of CPU (percent) and network in/out (bytes) for one instance."""
    data = []
    for day in range(days):
        stamp = now - timedelta(days=day, hours=2)
        dims = [{"Name": "InstanceId", "Value": instance_id}]
        data += [
            {"MetricName": "CPUUtilization", "Dimensions": dims, "Value": cpu, "Timestamp": stamp},
            {
                "MetricName": "NetworkIn",
                "Dimensions": dims,
                "Value": network_bytes,
                "Timestamp": stamp,
            },
            {
                "MetricName": "NetworkOut",
                "Dimensions": dims,
                "Value": network_bytes,
                "Timestamp": stamp,
            },
        ]
    for start in range(0, len(data), 500):
        cloudwatch.put_metric_data(Namespace="AWS/EC2", MetricData=data[start : start + 500])


def test_idle_busy_chatty_and_stopped(seed, make_context):
    ec2, cloudwatch = seed("ec2"), seed("cloudwatch")
    now = utcnow() + LATER
    idle = _run(ec2, tags={"team": "data"})
    put_usage(cloudwatch, idle, now, cpu=1.5)
    busy = _run(ec2)
    put_usage(cloudwatch, busy, now, cpu=40)
    chatty = _run(ec2)
    put_usage(cloudwatch, chatty, now, cpu=1, network_bytes=50_000_000)
    stopped = _run(ec2)
    ec2.stop_instances(InstanceIds=[stopped])

    findings = by_id(list(DETECTOR.detect(make_context(now=now), DETECTOR.parameters())))

    assert set(findings) == {idle}
    finding = findings[idle]
    assert finding.confidence == 85 and finding.risk is RiskLevel.MEDIUM
    assert finding.monthly_cost == Decimal("7.59")  # t3.micro 0.0104 USD/hour x 730
    assert finding.safety_checks_passed
    assert any("CPU at most 1.5% a day over 14 days (14 of 14 days" in e for e in finding.evidence)
    assert any("EBS volume(s) and any Elastic IP stay billed" in e for e in finding.evidence)
    assert finding.details["instance_type"] == "t3.micro"
    assert finding.tags == {"team": "data"}


def test_missing_metrics_are_evidence_not_proof(seed, make_context):
    ec2 = seed("ec2")
    silent = _run(ec2)

    (finding,) = DETECTOR.detect(make_context(), DETECTOR.parameters())

    assert finding.resource_id == silent
    assert finding.confidence == 40
    assert not check(finding, "metrics-present")
    assert finding.risk is RiskLevel.MEDIUM
    assert any("no CPUUtilization datapoints in 14 days" in e for e in finding.evidence)


def test_partial_history_lowers_confidence(seed, make_context):
    ec2, cloudwatch = seed("ec2"), seed("cloudwatch")
    now = utcnow() + LATER
    young_metrics = _run(ec2)
    put_usage(cloudwatch, young_metrics, now, cpu=0.5, days=5)

    (finding,) = DETECTOR.detect(make_context(now=now), DETECTOR.parameters())

    assert finding.confidence == 60 and check(finding, "metrics-present")


def test_auto_scaling_group_and_instance_store_fail_their_checks(seed, make_context):
    ec2, cloudwatch = seed("ec2"), seed("cloudwatch")
    now = utcnow() + LATER
    in_group = _run(ec2, tags={"aws:autoscaling:groupName": "web-asg"})
    ephemeral = _run(ec2, instance_type="m5d.large")
    for instance in (in_group, ephemeral):
        put_usage(cloudwatch, instance, now, cpu=0.2)

    findings = by_id(list(DETECTOR.detect(make_context(now=now), DETECTOR.parameters())))

    assert not check(findings[in_group], "auto-scaling-group")
    assert check(findings[in_group], "stoppable")
    assert not check(findings[ephemeral], "stoppable")
    assert check(findings[ephemeral], "auto-scaling-group")
    reason = next(c.detail for c in findings[ephemeral].safety_checks if c.name == "stoppable")
    assert "instance-store" in reason
    # m5d.large is not in the catalog: kept at 0 with the reason.
    assert findings[ephemeral].monthly_cost == 0
    assert findings[ephemeral].details["pricing"]["unknown_price"]


def test_thresholds_and_lookback_are_parameters(seed, make_context, recorder):
    ec2, cloudwatch = seed("ec2"), seed("cloudwatch")
    now = utcnow() + LATER
    warm = _run(ec2)
    put_usage(cloudwatch, warm, now, cpu=8)
    params = DETECTOR.parameters({"max_cpu_percent": 10, "lookback_days": 7})

    (finding,) = DETECTOR.detect(make_context(now=now), params)

    assert finding.resource_id == warm
    # The CPU peak over the 7 days, then (8% is under 10%) the daily series of its 7 days.
    window, daily = recorder.calls(operation="GetMetricData")
    for call in (window, daily):
        assert call.params["EndTime"] - call.params["StartTime"] == timedelta(days=7)
    assert [q["MetricStat"]["Period"] for q in window.params["MetricDataQueries"]] == [7 * 86400]
    assert {q["MetricStat"]["Period"] for q in daily.params["MetricDataQueries"]} == {86400}
    assert list(DETECTOR.detect(make_context(now=now), DETECTOR.parameters())) == []


def test_metrics_of_many_instances_in_ceil_queries_over_500_calls(seed, make_context, recorder):
    """The CPU peaks of 510 instances over the lookback are 510 queries, two GetMetricData calls;
    none has a datapoint, which settles them all (no daily series is read); the instance types
    are read once, for the idle-looking ones only."""
    ec2 = seed("ec2")
    ec2.run_instances(ImageId="ami-12345678", MinCount=510, MaxCount=510, InstanceType="t3.nano")

    findings = list(DETECTOR.detect(make_context(), DETECTOR.parameters()))

    assert len(findings) == 510
    calls = recorder.calls(operation="GetMetricData")
    assert [len(c.params["MetricDataQueries"]) for c in calls] == [500, 10]
    assert recorder.count(operation="DescribeInstanceTypes") == 1
