"""The scan benchmark's issue 15 checks, derived from recorded calls: they pass for batched
CloudWatch reads and fail for a call per resource, or for more calls in a region than
ceil(first-look queries / 500) + ceil(daily series the first look did not settle / 500)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3

from bench import scan
from cloudsweep import aws
from cloudsweep.aws import emulator

END = datetime(2026, 6, 1, tzinfo=UTC)


def _cloudwatch(endpoint: str, recorder: aws.CallRecorder) -> object:
    session = boto3.Session(
        aws_access_key_id=emulator.ACCESS_KEY_ID,
        aws_secret_access_key=emulator.SECRET_ACCESS_KEY,
        region_name="us-east-1",
    )
    recorder.attach(session, caller_account="123456789012")
    return session.client("cloudwatch", endpoint_url=endpoint)


def _read(cloudwatch: object, instances: list[str], period: int = 86400) -> None:
    cloudwatch.get_metric_data(  # type: ignore[attr-defined]
        MetricDataQueries=[
            {
                "Id": f"q{i}",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/EC2",
                        "MetricName": "CPUUtilization",
                        "Dimensions": [{"Name": "InstanceId", "Value": instance}],
                    },
                    "Period": period,
                    "Stat": "Maximum",
                },
            }
            for i, instance in enumerate(instances)
        ],
        StartTime=END - timedelta(days=14),
        EndTime=END,
    )


def test_one_batched_read_passes(moto_endpoint: str, capsys) -> None:
    recorder = aws.CallRecorder()
    _read(_cloudwatch(moto_endpoint, recorder), ["i-1", "i-2", "i-3"])
    assert scan._check_idleness_calls(recorder)
    out = capsys.readouterr().out
    assert "us-east-1: 1 calls, 3 queries, target 1 (met)" in out
    assert "checks: passed" in out


def test_a_read_per_resource_fails(moto_endpoint: str, capsys) -> None:
    recorder = aws.CallRecorder()
    cloudwatch = _cloudwatch(moto_endpoint, recorder)
    # What a per-resource idleness check does: one GetMetricStatistics per instance.
    for instance in ("i-1", "i-2", "i-3"):
        cloudwatch.get_metric_statistics(  # type: ignore[attr-defined]
            Namespace="AWS/EC2",
            MetricName="CPUUtilization",
            Dimensions=[{"Name": "InstanceId", "Value": instance}],
            StartTime=END - timedelta(days=14),
            EndTime=END,
            Period=86400,
            Statistics=["Maximum"],
        )
    assert not scan._check_idleness_calls(recorder)
    out = capsys.readouterr().out
    assert "us-east-1 cloudwatch:GetMetricStatistics (AWS/EC2) 3" in out
    assert "checks: FAILED" in out


def test_more_metric_calls_than_batches_fail(moto_endpoint: str, capsys) -> None:
    recorder = aws.CallRecorder()
    cloudwatch = _cloudwatch(moto_endpoint, recorder)
    _read(cloudwatch, ["i-1", "i-2"])
    _read(cloudwatch, ["i-3", "i-4"])  # the same detector's second batch of two
    assert not scan._check_idleness_calls(recorder)
    out = capsys.readouterr().out
    assert "us-east-1: 2 calls, 4 queries, target 1 (not met); per-region bound: 1" in out
    assert "checks: FAILED" in out


def _read_nat(cloudwatch: object) -> None:
    cloudwatch.get_metric_data(  # type: ignore[attr-defined]
        MetricDataQueries=[
            {
                "Id": "nat",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/NATGateway",
                        "MetricName": "BytesInFromSource",
                        "Dimensions": [{"Name": "NatGatewayId", "Value": "nat-1"}],
                    },
                    "Period": 86400,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=END - timedelta(days=14),
        EndTime=END,
    )


def test_detectors_reading_their_own_batches_fail(moto_endpoint: str, capsys) -> None:
    """Two detectors of a region, one batch each (one resource each, so no per-resource call):
    one call could have asked for both, so the per-region bound fails it."""
    recorder = aws.CallRecorder()
    cloudwatch = _cloudwatch(moto_endpoint, recorder)
    _read(cloudwatch, ["i-1"])
    _read_nat(cloudwatch)
    assert not scan._check_idleness_calls(recorder)
    out = capsys.readouterr().out
    assert (
        "per-resource idleness calls (one resource each, where one call could ask for many):\n  none"
        in out
    )
    assert "us-east-1: 2 calls, 2 queries, target 1 (not met); per-region bound: 1" in out
    assert "checks: FAILED" in out


def test_a_first_look_then_daily_series_of_one_resource_passes(moto_endpoint: str, capsys) -> None:
    """The detectors' whole-lookback first look, then the daily series of the one resource it did
    not settle: two batches, each within its own ceil(queries / 500), about one resource."""
    recorder = aws.CallRecorder()
    cloudwatch = _cloudwatch(moto_endpoint, recorder)
    _read(cloudwatch, ["i-1"], period=14 * 86400)
    _read(cloudwatch, ["i-1"])
    assert scan._check_idleness_calls(recorder)
    out = capsys.readouterr().out
    assert "per-region bound: 2 (first look 1 queries, then daily series 1)" in out
    assert "checks: passed" in out


def test_a_first_look_beside_another_detectors_series_then_a_second_batch_fails(
    moto_endpoint: str, capsys
) -> None:
    """The first look and a NAT gateway's daily series belong to one batch; a third call for
    the daily series of the resource the first look did not settle is over the bound of 2."""
    recorder = aws.CallRecorder()
    cloudwatch = _cloudwatch(moto_endpoint, recorder)
    _read(cloudwatch, ["i-1"], period=14 * 86400)
    _read_nat(cloudwatch)
    _read(cloudwatch, ["i-1"])
    assert not scan._check_idleness_calls(recorder)
    assert "3 calls, 3 queries, target 1 (not met); per-region bound: 2" in capsys.readouterr().out


def test_two_daily_reads_of_one_resource_each_still_fail(moto_endpoint: str, capsys) -> None:
    recorder = aws.CallRecorder()
    cloudwatch = _cloudwatch(moto_endpoint, recorder)
    _read(cloudwatch, ["i-1"])
    _read(cloudwatch, ["i-2"])
    assert not scan._check_idleness_calls(recorder)
