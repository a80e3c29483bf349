"""The local emulated AWS: a moto server on loopback that starts, answers, resets and stops."""

from __future__ import annotations

import socket
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from cloudsweep.aws import emulator


def _ec2(endpoint_url: str, region: str = "us-east-1"):  # type: ignore[no-untyped-def]
    return boto3.client(
        "ec2",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=emulator.ACCESS_KEY_ID,
        aws_secret_access_key=emulator.SECRET_ACCESS_KEY,
    )


def _non_loopback_address() -> str | None:
    # The address this host would use to reach the outside; no packet is sent for UDP connect.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_starts_on_a_free_loopback_port_and_stops() -> None:
    aws = emulator.LocalAws()
    assert not aws.running
    with pytest.raises(RuntimeError, match="not running"):
        _ = aws.endpoint_url
    aws.start()
    try:
        url = urllib.parse.urlsplit(aws.endpoint_url)
        assert url.scheme == "http"
        assert url.hostname == "127.0.0.1"
        assert url.port and url.port > 0
        assert aws.start() is aws  # idempotent
        identity = boto3.client(
            "sts",
            endpoint_url=aws.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=emulator.ACCESS_KEY_ID,
            aws_secret_access_key=emulator.SECRET_ACCESS_KEY,
        ).get_caller_identity()
        assert identity["Account"] == "123456789012"
    finally:
        aws.stop()
    assert not aws.running
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", url.port), timeout=2):
        pass
    aws.stop()  # stopping twice is harmless


def test_listens_on_loopback_only() -> None:
    other = _non_loopback_address()
    if other is None:
        pytest.skip("this machine has no non-loopback IPv4 address to probe from")
    with emulator.LocalAws() as aws:
        port = urllib.parse.urlsplit(aws.endpoint_url).port
        assert port is not None
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        with pytest.raises(OSError), socket.create_connection((other, port), timeout=2):
            pass


def test_two_servers_get_different_ports_and_separate_lifetimes() -> None:
    with emulator.LocalAws() as first, emulator.LocalAws() as second:
        assert first.endpoint_url != second.endpoint_url
        second.stop()
        assert _ec2(first.endpoint_url).describe_volumes()["Volumes"] == []


def test_worlds_start_clean_and_reset_forgets_them() -> None:
    with emulator.LocalAws() as aws:
        ec2 = _ec2(aws.endpoint_url)
        # No public AMIs (and their snapshots) loaded by default: the demo's lists stay readable.
        assert ec2.describe_images()["Images"] == []
        assert ec2.describe_snapshots()["Snapshots"] == []
        ec2.create_volume(AvailabilityZone="us-east-1a", Size=10)
        assert len(ec2.describe_volumes()["Volumes"]) == 1
        aws.reset()
        assert ec2.describe_volumes()["Volumes"] == []


def test_backdate_rewrites_creation_times_of_an_in_process_server(moto_endpoint: str) -> None:
    ec2 = _ec2(moto_endpoint, "eu-west-1")
    volume = ec2.create_volume(AvailabilityZone="eu-west-1a", Size=10)["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    then = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)

    assert emulator.backdate("123456789012", "eu-west-1", "ebs-volume", {volume: then}) == 1
    assert (
        emulator.backdate(
            "123456789012", "eu-west-1", "ebs-snapshot", {snapshot: then + timedelta(days=1)}
        )
        == 1
    )

    described = ec2.describe_volumes(VolumeIds=[volume])["Volumes"][0]
    assert described["CreateTime"] == then
    started = ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]["StartTime"]
    assert started == then + timedelta(days=1)


def test_backdate_reports_resources_it_cannot_find() -> None:
    assert (
        emulator.backdate(
            "123456789012", "us-east-1", "ebs-volume", {"vol-0nope": datetime.now(UTC)}
        )
        == 0
    )
    assert emulator.backdate("123456789012", "us-east-1", "rds-instance", {}) == 0


def test_reset_refused_when_not_running() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        emulator.LocalAws().reset()
