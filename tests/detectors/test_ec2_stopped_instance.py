"""The ec2-stopped-instance detector against moto over HTTP.

moto writes the stop time into ``StateTransitionReason`` as AWS does; the scan's injected ``now``
(120 days later) makes the instance long stopped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cloudsweep.detectors import ec2_stopped_instance
from cloudsweep.domain import RiskLevel, utcnow

from .conftest import by_id, check

DETECTOR = ec2_stopped_instance.Ec2StoppedInstanceDetector()


def _stopped(ec2, tags=None, **extra):
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
    instance = ec2.run_instances(
        ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="t3.micro", **spec, **extra
    )["Instances"][0]["InstanceId"]
    ec2.stop_instances(InstanceIds=[instance])
    return instance


def test_long_stopped_instance_is_priced_by_its_volumes_and_addresses(seed, make_context):
    ec2 = seed("ec2")
    old = _stopped(ec2, tags={"team": "batch"})
    zone = ec2.describe_instances(InstanceIds=[old])["Reservations"][0]["Instances"][0][
        "Placement"
    ]["AvailabilityZone"]
    data = ec2.create_volume(AvailabilityZone=zone, Size=100, VolumeType="gp3")["VolumeId"]
    ec2.attach_volume(VolumeId=data, InstanceId=old, Device="/dev/sdf")
    address = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(AllocationId=address, InstanceId=old)
    running = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]

    findings = by_id(list(DETECTOR.detect(make_context(), DETECTOR.parameters())))

    assert set(findings) == {old}
    assert running["InstanceId"] not in findings
    finding = findings[old]
    assert finding.confidence == 80 and finding.risk is RiskLevel.MEDIUM
    assert finding.safety_checks_passed
    pricing = finding.details["pricing"]
    # root volume (moto: 8 GiB gp2, 0.80) + 100 GiB gp3 (8.00) + one public IPv4 address (3.65)
    assert pricing["volumes_monthly"] == "8.80"
    assert pricing["elastic_ips_monthly"] == "3.65"
    assert finding.monthly_cost == Decimal("12.45")
    assert pricing["volumes_gib"] == 108
    assert finding.details["elastic_ips"] == [address]
    assert data in finding.details["volume_ids"]
    assert any("stopped 120 days ago" in e for e in finding.evidence)


def test_recently_stopped_is_not_reported_and_the_age_is_a_parameter(seed, make_context):
    ec2 = seed("ec2")
    instance = _stopped(ec2)
    ten_days = make_context(now=utcnow() + timedelta(days=10))

    assert list(DETECTOR.detect(ten_days, DETECTOR.parameters())) == []
    params = DETECTOR.parameters({"min_stopped_days": 7})
    (finding,) = DETECTOR.detect(ten_days, params)
    assert finding.resource_id == instance
    assert check(finding, "recently-created")  # launched 10 days ago: min_age_days is 7


def test_auto_scaling_group_and_protection_tags(seed, make_context):
    ec2 = seed("ec2")
    grouped = _stopped(ec2, tags={"aws:autoscaling:groupName": "workers"})
    kept = _stopped(ec2, tags={"cloudsweep.io/protect": "yes"})

    findings = by_id(list(DETECTOR.detect(make_context(), DETECTOR.parameters())))

    assert not check(findings[grouped], "auto-scaling-group")
    assert not check(findings[kept], "protection-tag")
    assert findings[kept].risk is RiskLevel.HIGH


def test_stop_time_parsing():
    parse = ec2_stopped_instance.stopped_at
    assert parse("User initiated (2024-05-01 10:11:12 GMT)") == datetime(
        2024, 5, 1, 10, 11, 12, tzinfo=UTC
    )
    assert parse("User initiated (2024-05-01 10:11:12 UTC)") is not None
    assert parse("Server.ScheduledStop: Stopped due to scheduled retirement") is None
    assert parse(None) is None
