"""The ebs-snapshot cleanup actions (archive, delete) against moto over HTTP.

moto 5.2.5 implements ModifySnapshotTier, RestoreSnapshotTier and DescribeSnapshotTierStatus, but
completes archives and restores at once (AWS takes hours), so the "in progress" states are not
reached here. It does not implement DescribeImages' ``block-device-mapping.snapshot-id`` filter,
which is why the action lists the account's AMIs instead.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import ACTION_TAG, ebs_snapshot, ebs_volume
from cloudsweep.domain import ActionType
from tests import faults

from .ebs_helpers import Harness, tags_spec

ARCHIVE = ebs_snapshot.ArchiveSnapshot()
DELETE = ebs_snapshot.DeleteSnapshot()


@pytest.fixture
def h(moto_endpoint: str) -> Harness:
    return Harness(moto_endpoint)


def _snapshot(h: Harness, tags: dict[str, str] | None = None, orphan: bool = True) -> str:
    volume = h.volume(size=40)
    spec = {"TagSpecifications": tags_spec("snapshot", tags)} if tags else {}
    snapshot = h.ec2.create_snapshot(VolumeId=volume, Description="nightly", **spec)["SnapshotId"]
    if orphan:
        h.ec2.delete_volume(VolumeId=volume)
    return snapshot


def _tier(h: Harness, snapshot_id: str) -> str:
    return h.ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["StorageTier"]


def _exists(h: Harness, snapshot_id: str) -> bool:
    return any(
        s["SnapshotId"] == snapshot_id
        for s in h.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    )


def test_registered_with_their_contract():
    assert cleanup.get("ebs-snapshot", "archive") is ebs_snapshot.ArchiveSnapshot
    assert cleanup.get("ebs-snapshot", "delete") is ebs_snapshot.DeleteSnapshot
    assert (ARCHIVE.action_type, ARCHIVE.rollback_possible) == (ActionType.ARCHIVE, True)
    assert (DELETE.action_type, DELETE.rollback_possible) == (ActionType.DELETE, False)
    assert "ec2:RestoreSnapshotTier" in ARCHIVE.permissions
    assert "ec2:DeleteSnapshot" in DELETE.permissions
    with pytest.raises(NotImplementedError, match="cannot bring a deleted snapshot back"):
        DELETE.rollback(None, {}, DELETE.parameters())  # type: ignore[arg-type]


# --- recheck -----------------------------------------------------------------------------------


@pytest.mark.parametrize("action", [ARCHIVE, DELETE], ids=lambda a: a.action)
def test_recheck_passes_for_an_unchanged_orphaned_snapshot(h: Harness, action):
    item = h.item("ebs-snapshot", _snapshot(h))

    result = action.recheck(h.ctx(), item)

    assert result.still_waste, result.reason
    assert h.mutating() == []


def test_recheck_refuses_a_snapshot_protected_since_the_scan(h: Harness):
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    h.ec2.create_tags(Resources=[snapshot], Tags=[{"Key": "CloudSweep.io/Protect", "Value": "yes"}])

    result = DELETE.recheck(h.ctx(), item)

    assert not result.still_waste
    assert "protected by tag CloudSweep.io/Protect=yes" in result.reason


def test_recheck_refuses_a_snapshot_now_used_by_an_ami(h: Harness):
    """moto's RegisterImage ignores block devices, so the AMI comes from CreateImage (which
    snapshots the instance's root volume) and the item is the scan's finding re-pointed to that
    snapshot: a snapshot the scan saw before an AMI started using it."""
    item = h.item("ebs-snapshot", _snapshot(h))
    image = h.ec2.create_image(InstanceId=h.instance(), Name="golden")["ImageId"]
    (ami,) = h.ec2.describe_images(ImageIds=[image])["Images"]
    (used,) = [m["Ebs"]["SnapshotId"] for m in ami["BlockDeviceMappings"] if "Ebs" in m]
    item = dataclasses.replace(item, resource_id=used)

    result = DELETE.recheck(h.ctx(), item)

    assert not result.still_waste
    assert f"used by AMI {image}" in result.reason
    assert result.facts["images"] == [image]


def test_recheck_refuses_the_rollback_copy_of_a_deleted_volume(h: Harness):
    snapshot = _snapshot(h, tags={ACTION_TAG: "a-1", ebs_volume.SOURCE_VOLUME_TAG: "vol-1"})
    item = h.item("ebs-snapshot", snapshot)

    result = ARCHIVE.recheck(h.ctx(), item)

    assert not result.still_waste
    assert "rollback copy of volume vol-1" in result.reason


def test_recheck_reports_a_deleted_snapshot_as_gone(h: Harness):
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    h.ec2.delete_snapshot(SnapshotId=snapshot)

    result = DELETE.recheck(h.ctx(), item)

    assert (result.still_waste, result.facts) == (False, {"gone": True})


# --- dry run -----------------------------------------------------------------------------------


@pytest.mark.parametrize("action", [ARCHIVE, DELETE], ids=lambda a: a.action)
def test_dry_run_changes_nothing_and_only_makes_dry_run_calls(h: Harness, action):
    item = h.item("ebs-snapshot", _snapshot(h))
    before = h.world()

    result = action.dry_run(h.ctx(), item, h.params(action))

    assert result.would_succeed, result.message
    assert h.world() == before
    assert h.mutating() and all(r.params.get("DryRun") is True for r in h.mutating())


# --- delete ------------------------------------------------------------------------------------


def test_delete_records_the_snapshot_and_deletes_it_once(h: Harness):
    snapshot = _snapshot(h, tags={"team": "data"})
    other = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    ctx, params = h.ctx(), h.params(DELETE)

    data = DELETE.prepare(ctx, item, params, {})
    outcome = DELETE.execute(ctx, item, params, data)
    repeated = DELETE.execute(ctx, item, params, data)

    assert data["snapshot_id"] == snapshot
    assert data["description"] == "nightly"
    assert data["volume_size"] == 40
    assert data["tags"] == {"team": "data"}
    assert data["volume_id"].startswith("vol-")
    assert not outcome.already_done and repeated.already_done
    assert not _exists(h, snapshot) and _exists(h, other)


def test_a_lost_delete_response_is_done_on_the_next_attempt(h: Harness):
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    ctx, params = h.ctx(), h.params(DELETE)
    data = DELETE.prepare(ctx, item, params, {})
    faults.lose_response(h.events, "ec2", "DeleteSnapshot")

    with pytest.raises(aws.AwsError):
        DELETE.execute(ctx, item, params, data)
    outcome = DELETE.execute(ctx, item, params, data)

    assert outcome.already_done
    assert not _exists(h, snapshot)


# --- archive -----------------------------------------------------------------------------------


def test_archive_then_restore_each_once(h: Harness):
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    ctx, params = h.ctx(), h.params(ARCHIVE)

    data = ARCHIVE.prepare(ctx, item, params, {})
    archived = ARCHIVE.execute(ctx, item, params, data)

    assert data["storage_tier"] == "standard"
    assert not archived.already_done
    assert _tier(h, snapshot) == "archive"
    assert ARCHIVE.recheck(ctx, item).still_waste  # a rerun records it as done, not refused
    assert ARCHIVE.execute(ctx, item, params, data).already_done
    assert h.count("ModifySnapshotTier") == 1

    restored = ARCHIVE.rollback(h.ctx(), data, params)

    assert not restored.already_done
    assert _tier(h, snapshot) == "standard"
    assert ARCHIVE.rollback(h.ctx(), data, params).already_done
    (call,) = h.recorder.calls(operation="RestoreSnapshotTier")
    assert call.params == {"SnapshotId": snapshot, "PermanentRestore": True}


def test_archiving_a_vanished_snapshot_fails_rather_than_counting_as_done(h: Harness):
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    ctx, params = h.ctx(), h.params(ARCHIVE)
    data = ARCHIVE.prepare(ctx, item, params, {})
    h.ec2.delete_snapshot(SnapshotId=snapshot)

    with pytest.raises(aws.AwsError) as failed:
        ARCHIVE.execute(ctx, item, params, data)

    assert failed.value.kind is aws.ErrorKind.NOT_FOUND


def test_archive_savings_are_the_tier_difference(h: Harness):
    item = h.item("ebs-snapshot", _snapshot(h))  # 40 GiB: 2.00 USD standard, 0.50 archive

    assert item.monthly_cost == Decimal("2.00")
    assert ARCHIVE.estimated_monthly_savings(item) == Decimal("1.50")
    assert DELETE.estimated_monthly_savings(item) == Decimal("2.00")
