"""The ebs-volume detector against moto over HTTP."""

from __future__ import annotations

from decimal import Decimal

from cloudsweep import aws
from cloudsweep.detectors import ebs_volume
from cloudsweep.domain import RiskLevel, utcnow

from .conftest import ACCOUNT, REGION, by_id, check

DETECTOR = ebs_volume.EbsVolumeDetector()


def _volume(ec2, size=10, volume_type="gp2", tags=None, **extra):
    spec = {}
    if tags:
        spec["TagSpecifications"] = [
            {"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ]
    return ec2.create_volume(
        AvailabilityZone=f"{REGION}a", Size=size, VolumeType=volume_type, **spec, **extra
    )["VolumeId"]


def test_unattached_volume_is_found_attached_is_not(seed, make_context):
    ec2 = seed("ec2")
    loose = _volume(ec2, size=50)
    attached = _volume(ec2)
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]
    ec2.attach_volume(VolumeId=attached, InstanceId=instance["InstanceId"], Device="/dev/sdf")

    findings = by_id(list(DETECTOR.detect(make_context(), DETECTOR.parameters())))

    assert attached not in findings
    # The instance's own root volume (attached) is not a finding either.
    assert set(findings) == {loose}
    finding = findings[loose]
    assert finding.resource_type == "ebs-volume"
    assert finding.resource_arn == f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/{loose}"
    assert finding.availability_zone == f"{REGION}a"
    assert finding.monthly_cost == Decimal("5.00")  # 50 GiB x 0.10 USD gp2 in us-east-1
    assert finding.annual_cost == Decimal("60.00")
    assert finding.safety_checks_passed is True  # no snapshot yet: risk, not a failed check
    assert "no snapshot of this volume exists: cleanup snapshots it first" in finding.evidence
    assert check(finding, "protection-tag") and check(finding, "recently-created")
    assert finding.risk is RiskLevel.MEDIUM
    assert finding.confidence == 95  # older than 90 days at the scan's "now"
    assert any("unattached" in e for e in finding.evidence)
    details = finding.resource_details()
    assert details["pricing"]["volume_type"] == "gp2"
    assert details["pricing"]["size_gib"] == 50
    assert details["pricing"]["catalog_version"]


def test_cost_of_provisioned_volumes_is_hand_computed(seed, make_context):
    ec2 = seed("ec2")
    gp3 = _volume(ec2, size=100, volume_type="gp3", Iops=4000, Throughput=250)
    io1 = _volume(ec2, size=20, volume_type="io1", Iops=1000)

    findings = by_id(list(DETECTOR.detect(make_context(), DETECTOR.parameters())))

    # gp3: 100 GiB x 0.08 + (4000 - 3000) IOPS x 0.005 + (250 - 125) MiB/s x 0.04 = 18.00
    assert findings[gp3].monthly_cost == Decimal("18.00")
    assert findings[gp3].resource_details()["pricing"]["iops"] == 4000
    # io1: 20 GiB x 0.125 + 1000 IOPS x 0.065 = 67.50
    assert findings[io1].monthly_cost == Decimal("67.50")


def test_protection_tag_fails_the_check_and_makes_risk_high(seed, make_context):
    ec2 = seed("ec2")
    guarded = _volume(ec2, tags={"cloudsweep.io/protect": "true"})
    keep = _volume(ec2, tags={"Do-Not-Delete": ""})
    not_guarded = _volume(ec2, tags={"do-not-delete": "false"})

    findings = by_id(list(DETECTOR.detect(make_context(), DETECTOR.parameters())))

    for volume in (guarded, keep):
        assert not check(findings[volume], "protection-tag")
        assert findings[volume].risk is RiskLevel.HIGH
    assert check(findings[not_guarded], "protection-tag")
    assert findings[not_guarded].risk is RiskLevel.MEDIUM


def test_recently_created_volume_fails_the_age_check(seed, make_context):
    volume = _volume(seed("ec2"))

    (finding,) = DETECTOR.detect(make_context(now=utcnow()), DETECTOR.parameters())

    assert finding.resource_id == volume
    assert not check(finding, "recently-created")
    assert finding.confidence == 30
    assert finding.risk is RiskLevel.MEDIUM


def test_a_snapshot_of_the_volume_lowers_the_risk(seed, make_context):
    ec2 = seed("ec2")
    volume = _volume(ec2)
    snapshot = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]

    (finding,) = DETECTOR.detect(make_context(), DETECTOR.parameters())

    assert finding.risk is RiskLevel.LOW
    assert finding.safety_checks_passed
    assert finding.details["latest_snapshot_id"] == snapshot


def test_page_size_is_passed_and_every_page_followed(seed, make_context, recorder):
    """moto ignores MaxResults of DescribeVolumes (one page), so this proves the parameter is sent;
    multi-page listings are proven on load balancers and RDS, which moto does page."""
    ec2 = seed("ec2")
    volumes = {_volume(ec2) for _ in range(12)}

    findings = list(DETECTOR.detect(make_context(page_size=2), DETECTOR.parameters()))

    assert {f.resource_id for f in findings} == volumes
    (call,) = recorder.calls(operation="DescribeVolumes")
    assert call.params["MaxResults"] == 5  # raised to the API's minimum


def test_rescan_is_idempotent_and_lists_once(seed, make_context, recorder):
    ec2 = seed("ec2")
    for _ in range(3):
        _volume(ec2)
    ctx = make_context()

    first = list(DETECTOR.detect(ctx, DETECTOR.parameters()))
    second = list(DETECTOR.detect(ctx, DETECTOR.parameters()))
    third = list(DETECTOR.detect(make_context(), DETECTOR.parameters()))

    assert first == second
    assert [f.resource_id for f in third] == [f.resource_id for f in first]
    # One inventory lists once; a new inventory (a new scan) lists again.
    assert recorder.count(operation="DescribeVolumes") == 2
    assert ctx.inventory.listings()["ec2:DescribeVolumes"] == 3
    assert not recorder.mutating()
    assert {r.caller_account for r in recorder.records if r.operation != "AssumeRole"} == {ACCOUNT}


def test_other_accounts_volumes_are_not_seen(moto_endpoint, make_context):
    import boto3

    other = boto3.client("ec2", region_name=REGION, endpoint_url=moto_endpoint)
    other.create_volume(AvailabilityZone=f"{REGION}a", Size=1)

    assert list(DETECTOR.detect(make_context(), DETECTOR.parameters())) == []


def test_listing_failure_is_a_classified_error(seed, make_context, account_session):
    from botocore.exceptions import ClientError

    def deny(**_):
        raise ClientError(
            {"Error": {"Code": "UnauthorizedOperation", "Message": "not allowed"}},
            "DescribeVolumes",
        )

    account_session.events.register("before-call.ec2.DescribeVolumes", deny)
    ctx = make_context()
    try:
        list(DETECTOR.detect(ctx, DETECTOR.parameters()))
    except aws.AwsError as exc:
        assert exc.kind is aws.ErrorKind.ACCESS_DENIED
        assert exc.operation == "DescribeVolumes"
    else:
        raise AssertionError("expected AwsError")
    assert ctx.inventory.listings() == {"ec2:DescribeVolumes": -1}
