"""The ebs-snapshot detector against moto over HTTP.

moto 5.2 lists AWS Backup vaults but not their recovery points (ListRecoveryPointsByBackupVault
answers 404): with no vault the backup check passes (there is nothing to reference a snapshot),
with a vault it fails as "could not verify backup references".
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from cloudsweep.detectors import ebs_snapshot
from cloudsweep.domain import RiskLevel, utcnow

from .conftest import REGION, by_id, check

DETECTOR = ebs_snapshot.EbsSnapshotDetector()


def _volume(ec2, size=15):
    return ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=size)["VolumeId"]


def _snapshot(ec2, volume_id, tags=None, description=""):
    extra = {}
    if tags:
        extra["TagSpecifications"] = [
            {"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ]
    return ec2.create_snapshot(VolumeId=volume_id, Description=description, **extra)["SnapshotId"]


def test_orphaned_snapshot_is_found_with_cost_and_evidence(seed, make_context):
    ec2 = seed("ec2")
    volume = _volume(ec2, size=15)
    orphan = _snapshot(ec2, volume)
    ec2.delete_volume(VolumeId=volume)

    (finding,) = DETECTOR.detect(make_context(), DETECTOR.parameters())

    assert finding.resource_id == orphan
    assert finding.resource_arn == f"arn:aws:ec2:{REGION}::snapshot/{orphan}"
    assert finding.monthly_cost == Decimal("0.75")  # 15 GiB x 0.05 USD standard tier
    assert finding.confidence == 85  # orphaned and older than 90 days
    assert finding.risk is RiskLevel.MEDIUM
    assert finding.safety_checks_passed
    assert any(f"source volume {volume} no longer exists" in e for e in finding.evidence)
    pricing = finding.resource_details()["pricing"]
    assert pricing["size_gib"] == 15 and pricing["tier"] == "standard"
    assert "upper bound" in finding.details["cost_basis"]
    assert "billed incrementally" in finding.details["cost_basis"]
    assert finding.details["cost_is_upper_bound"] is True
    assert any(e.startswith("cost is an upper bound") for e in finding.evidence)


def test_snapshot_used_by_an_ami_is_not_waste(seed, make_context):
    """moto's RegisterImage ignores the block device mappings given and makes its own volume and
    snapshot for the AMI; the test uses that snapshot, whose volume moto does not list (so the snapshot looks orphaned)."""
    ec2 = seed("ec2")
    image_id = ec2.register_image(Name="golden-image", RootDeviceName="/dev/sda1")["ImageId"]
    (image,) = ec2.describe_images(ImageIds=[image_id])["Images"]
    used = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    (snapshot,) = ec2.describe_snapshots(SnapshotIds=[used])["Snapshots"]
    # moto's AMI volume is not listed: the AMI's snapshot is orphaned, like a copied AMI's.
    listed = {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
    assert snapshot["VolumeId"] not in listed
    volume = _volume(ec2)
    unused = _snapshot(ec2, volume)
    ec2.delete_volume(VolumeId=volume)

    findings = by_id(list(DETECTOR.detect(make_context(), DETECTOR.parameters())))

    assert set(findings) == {unused}
    assert used not in findings


def test_snapshot_of_a_live_volume_is_reported_only_when_old(seed, make_context):
    ec2 = seed("ec2")
    volume = _volume(ec2)
    older = _snapshot(ec2, volume)
    newer = _snapshot(ec2, volume)
    params = DETECTOR.parameters()

    young = list(DETECTOR.detect(make_context(now=utcnow() + timedelta(days=30)), params))
    old = by_id(list(DETECTOR.detect(make_context(), params)))

    assert young == []
    assert set(old) == {older, newer}
    assert old[older].risk is RiskLevel.LOW
    assert old[older].confidence == 55  # a newer snapshot of the same volume exists
    assert old[newer].confidence == 45
    assert any("1 newer snapshot(s)" in e for e in old[older].evidence)
    stricter = DETECTOR.parameters({"old_after_days": 365})
    assert list(DETECTOR.detect(make_context(), stricter)) == []


def test_protection_tag_and_young_age_fail_checks(seed, make_context):
    ec2 = seed("ec2")
    volume = _volume(ec2)
    protected = _snapshot(ec2, volume, tags={"do-not-delete": "yes"})
    ec2.delete_volume(VolumeId=volume)

    (late,) = DETECTOR.detect(make_context(), DETECTOR.parameters())
    (early,) = DETECTOR.detect(make_context(now=utcnow()), DETECTOR.parameters())

    assert late.resource_id == protected
    assert not check(late, "protection-tag")
    assert late.risk is RiskLevel.HIGH
    assert not check(early, "recently-created")
    assert early.confidence == 25


def test_snapshots_made_by_aws_backup_are_left_alone(seed, make_context):
    ec2 = seed("ec2")
    volume = _volume(ec2)
    _snapshot(ec2, volume, description="This snapshot is created by the AWS Backup service.")
    _snapshot(ec2, volume, tags={"aws:backup:source-resource": volume})
    ec2.delete_volume(VolumeId=volume)

    assert list(DETECTOR.detect(make_context(), DETECTOR.parameters())) == []


def test_unverifiable_backup_references_fail_a_check_not_the_scan(seed, make_context):
    ec2 = seed("ec2")
    seed("backup").create_backup_vault(BackupVaultName="nightly")
    volume = _volume(ec2)
    orphan = _snapshot(ec2, volume)
    ec2.delete_volume(VolumeId=volume)
    ctx = make_context()

    (finding,) = DETECTOR.detect(ctx, DETECTOR.parameters())

    assert finding.resource_id == orphan
    assert not check(finding, "backup-reference")
    (backup_check,) = [c for c in finding.safety_checks if c.name == "backup-reference"]
    assert backup_check.detail.startswith("could not verify backup references")
    assert finding.confidence == 70  # 85 - 15
    assert finding.risk is RiskLevel.MEDIUM
    assert "backup:ListRecoveryPoints" in ctx.inventory.failures()


def test_no_snapshots_means_no_other_listing(make_context, recorder):
    ctx = make_context()
    assert list(DETECTOR.detect(ctx, DETECTOR.parameters())) == []
    assert set(ctx.inventory.listings()) == {"ec2:DescribeSnapshots"}
    (call,) = recorder.calls(operation="DescribeSnapshots")
    assert call.params["OwnerIds"] == ["self"]
