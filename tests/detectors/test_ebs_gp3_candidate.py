"""The ebs-gp3-candidate detector against moto over HTTP."""

from __future__ import annotations

import pytest

from cloudsweep.detectors import ebs_gp3_candidate
from cloudsweep.domain import RiskLevel

from .conftest import REGION, by_id, check

DETECTOR = ebs_gp3_candidate.EbsGp3CandidateDetector()
AZ = f"{REGION}a"


def attached(ec2, volume_type: str, size: int, **extra) -> str:
    instance = ec2.run_instances(
        ImageId="ami-12345678", MinCount=1, MaxCount=1, Placement={"AvailabilityZone": AZ}
    )["Instances"][0]["InstanceId"]
    volume = ec2.create_volume(AvailabilityZone=AZ, Size=size, VolumeType=volume_type, **extra)[
        "VolumeId"
    ]
    ec2.attach_volume(VolumeId=volume, InstanceId=instance, Device="/dev/sdf")
    return volume


def findings(make_context, **params):
    return by_id(list(DETECTOR.detect(make_context(), DETECTOR.parameters(params))))


@pytest.mark.parametrize(
    "volume_type, size, extra, target",
    [
        ("gp2", 100, {}, (3000, 128)),  # baseline 300 IOPS, bursts to 3000; 128 MiB/s <= 170 GiB
        ("gp2", 500, {}, (3000, 250)),
        ("gp2", 2000, {}, (6000, 250)),  # baseline 3 IOPS/GiB above the burst
        ("io1", 200, {"Iops": 5000}, (5000, 500)),
        ("io2", 100, {"Iops": 10000}, (10000, 500)),
    ],
)
def test_attached_volumes_get_a_gp3_target_that_matches_and_the_difference_as_cost(
    seed, make_context, catalog, volume_type, size, extra, target
):
    volume = attached(seed("ec2"), volume_type, size, **extra)

    finding = findings(make_context)[volume]

    iops, throughput = target
    assert finding.details["target"] == {
        "volume_type": "gp3",
        "iops": iops,
        "throughput_mibps": throughput,
    }
    now = catalog.ebs_volume_monthly(REGION, volume_type, size, extra.get("Iops"), None)
    gp3 = catalog.ebs_volume_monthly(REGION, "gp3", size, iops, throughput)
    assert finding.monthly_cost == (now - gp3).quantize(finding.monthly_cost) > 0
    assert finding.details["current_monthly_cost"] == str(now.quantize(finding.monthly_cost))
    assert finding.details["kind"] == "rightsizing"
    assert finding.risk is (RiskLevel.MEDIUM if volume_type == "io2" else RiskLevel.LOW)
    assert finding.confidence == (90 if volume_type == "gp2" else 75)
    assert finding.safety_checks_passed


def test_unattached_gp2_is_left_to_the_ebs_volume_detector_so_it_is_not_counted_twice(
    seed, make_context
):
    ec2 = seed("ec2")
    unattached = ec2.create_volume(AvailabilityZone=AZ, Size=100, VolumeType="gp2")["VolumeId"]

    assert unattached not in findings(make_context)


def test_gp3_st1_sc1_and_out_of_reach_io_volumes_are_not_reported(seed, make_context):
    ec2 = seed("ec2")
    skipped = {
        attached(ec2, "gp3", 100),
        attached(ec2, "st1", 500),
        attached(ec2, "sc1", 500),
        attached(ec2, "io1", 400, Iops=20000),  # above gp3's 16,000 IOPS
        attached(ec2, "io2", 10, Iops=6000),  # above gp3's 500 IOPS per GiB
    }
    reported = attached(ec2, "io1", 100, Iops=4000)

    found = findings(make_context)

    assert reported in found
    assert not skipped & set(found)


def test_a_small_saving_below_the_threshold_is_not_reported(seed, make_context):
    volume = attached(seed("ec2"), "gp2", 100)  # about 19% cheaper as gp3

    assert volume in findings(make_context, min_savings_percent=10)
    assert volume not in findings(make_context, min_savings_percent=25)


def test_protected_volume_is_high_risk(seed, make_context):
    ec2 = seed("ec2")
    volume = attached(ec2, "gp2", 100)
    ec2.create_tags(Resources=[volume], Tags=[{"Key": "do-not-delete", "Value": "yes"}])

    finding = findings(make_context)[volume]

    assert not check(finding, "protection-tag")
    assert finding.risk is RiskLevel.HIGH


def test_scan_is_read_only(seed, make_context, recorder):
    attached(seed("ec2"), "gp2", 100)
    findings(make_context)
    assert not recorder.mutating()


@pytest.mark.parametrize(
    "volume_type, size, iops, expected",
    [
        ("gp2", 20000, None, "above gp3's largest size"),
        ("io1", 100, 32000, "above gp3's 16000"),
        ("io2", 4, 4000, "500 IOPS/GiB"),
        ("io1", 4, 2000, (3000, 500)),  # gp3's 3000 baseline is allowed at any size
        ("gp2", 1, None, (3000, 128)),
        ("gp2", 6000, None, (16000, 250)),
    ],
)
def test_gp3_target_rules(volume_type, size, iops, expected):
    result = ebs_gp3_candidate.gp3_target(volume_type, size, iops)
    if isinstance(expected, str):
        assert isinstance(result, str) and expected in result
    else:
        assert result == expected
