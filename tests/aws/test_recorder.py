"""CallRecorder: every AWS call of a session, recorded at botocore's event layer."""

from __future__ import annotations

import threading

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from cloudsweep import aws


@pytest.fixture
def recorded(moto_endpoint):
    recorder = aws.CallRecorder()
    session = boto3.Session(region_name="us-east-1")
    recorder.attach(session, caller_account="123456789012")
    return recorder, session.client("ec2", endpoint_url=moto_endpoint)


def test_records_service_operation_region_params_and_outcome(recorded):
    recorder, ec2 = recorded
    ec2.describe_volumes(Filters=[{"Name": "status", "Values": ["available"]}])
    with pytest.raises(ClientError):
        ec2.delete_volume(VolumeId="vol-0123456789abcdef0")

    ok, failed = recorder.records
    assert (ok.service, ok.operation, ok.region, ok.caller_account) == (
        "ec2",
        "DescribeVolumes",
        "us-east-1",
        "123456789012",
    )
    assert ok.params == {"Filters": [{"Name": "status", "Values": ["available"]}]}
    assert (ok.outcome, ok.http_status, ok.error_code) == ("ok", 200, None)
    assert not ok.mutating
    assert failed.operation == "DeleteVolume" and failed.mutating
    assert (failed.outcome, failed.error_code) == ("error", "InvalidVolume.NotFound")
    assert recorder.mutating() == [failed]
    assert recorder.by_operation() == {("ec2", "DescribeVolumes"): 1, ("ec2", "DeleteVolume"): 1}
    assert recorder.count(service="ec2", operation="DeleteVolume") == 1


def test_params_are_a_copy(recorded):
    recorder, ec2 = recorded
    filters = [{"Name": "status", "Values": ["available"]}]
    ec2.describe_volumes(Filters=filters)
    filters[0]["Values"].append("in-use")
    assert recorder.records[0].params["Filters"][0]["Values"] == ["available"]


def test_connection_failure_is_recorded_as_error():
    recorder = aws.CallRecorder()
    session = boto3.Session(region_name="us-east-1")
    recorder.attach(session, caller_account=None)
    ec2 = session.client(
        "ec2",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(EndpointConnectionError):
        ec2.describe_volumes()
    (record,) = recorder.records
    assert (record.outcome, record.error_code) == ("error", "EndpointConnectionError")


def test_thread_safe_and_attach_is_idempotent(moto_endpoint):
    recorder = aws.CallRecorder()
    session = boto3.Session(region_name="us-east-1")
    recorder.attach(session, caller_account=None)
    recorder.attach(session, caller_account=None)  # registering twice records once
    ec2 = session.client("ec2", endpoint_url=moto_endpoint)

    threads = [threading.Thread(target=ec2.describe_addresses) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert recorder.count(operation="DescribeAddresses") == 10
    assert all(r.outcome == "ok" for r in recorder.records)
    recorder.clear()
    assert recorder.records == []
