"""The ebs-snapshot cleanup actions (archive, delete) against moto over HTTP.

moto 5.2.5 implements ModifySnapshotTier, RestoreSnapshotTier and DescribeSnapshotTierStatus, but
completes archives and restores at once (AWS takes hours), so the "in progress" states are not
reached here. It does not implement DescribeImages' ``block-device-mapping.snapshot-id`` filter,
which is why the action lists the account's AMIs instead.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import ACTION_TAG, ebs_snapshot, ebs_volume
from cloudsweep.domain import ActionType
from tests import faults

from .ebs_helpers import Harness, tags_spec
from .storage_helpers import at

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
    assert result.facts["tags"]["CloudSweep.io/Protect"] == "yes"  # recorded with the refusal


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

    def and_a_copy_of_the_image(parsed, **_):  # a second AMI registered from the same snapshot
        images = parsed.get("Images", [])
        images.extend({**i, "ImageId": "ami-0copy"} for i in list(images) if i["ImageId"] == image)

    h.events.register("after-call.ec2.DescribeImages", and_a_copy_of_the_image)
    both = DELETE.recheck(h.ctx(), item)
    assert both.reason == f"snapshot is now used by AMI {', '.join(sorted([image, 'ami-0copy']))}"


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
    assert result.reason == "snapshot no longer exists"


# --- dry run -----------------------------------------------------------------------------------


@pytest.mark.parametrize("action", [ARCHIVE, DELETE], ids=lambda a: a.action)
def test_dry_run_changes_nothing_and_only_makes_dry_run_calls(h: Harness, action):
    item = h.item("ebs-snapshot", _snapshot(h))
    before = h.world()

    result = action.dry_run(h.ctx(), item, h.params(action))

    assert result.would_succeed, result.message
    assert h.world() == before
    assert h.mutating() and all(r.params.get("DryRun") is True for r in h.mutating())
    # The dry run asks for exactly what the action would do (AWS checks the tier named).
    asked = {"archive": {"StorageTier": "archive"}, "delete": {}}[action.action]
    assert [r.params for r in h.mutating()] == [
        {"SnapshotId": item.resource_id, "DryRun": True, **asked}
    ]


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
    rerun = ARCHIVE.recheck(ctx, item)  # a rerun records it as done, not refused
    assert rerun.still_waste and rerun.facts["storage_tier"] == "archive"
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
    # A snapshot the scan could not size: archiving it is counted as no saving, not its cost.
    unsized = dataclasses.replace(item, resource_details={**item.resource_details, "pricing": {}})
    assert ARCHIVE.estimated_monthly_savings(unsized) == Decimal("0.00")


# --- what the re-check decides, rule by rule ----------------------------------------------------


def _tag(h: Harness, snapshot_id: str, tags: dict[str, str]) -> None:
    h.ec2.create_tags(
        Resources=[snapshot_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
    )


@pytest.mark.parametrize("action", [ARCHIVE, DELETE], ids=lambda a: a.action)
def test_recheck_reports_the_live_state_tier_and_tags(h: Harness, action):
    snapshot = _snapshot(h, tags={"team": "data"})
    item = h.item("ebs-snapshot", snapshot)

    result = action.recheck(h.ctx(), item)

    assert result.still_waste, result.reason
    assert result.facts == {
        "state": "completed",
        "storage_tier": "standard",
        "tags": {"team": "data"},
    }


@pytest.mark.parametrize("state", ["pending", "error"])
def test_recheck_refuses_a_snapshot_that_is_not_completed(h: Harness, state: str):
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)

    def report_state(parsed, **_):
        for entry in parsed.get("Snapshots", []):
            entry["State"] = state

    h.events.register("after-call.ec2.DescribeSnapshots", report_state)

    result = DELETE.recheck(h.ctx(), item)

    assert not result.still_waste
    assert result.reason == f"snapshot is {state}, not completed"
    assert "gone" not in result.facts and result.facts["state"] == state


def test_recheck_under_the_scans_own_protection_tag_refuses(h: Harness):
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    _tag(h, snapshot, {"FinOps/Keep": "1"})
    ctx = dataclasses.replace(h.ctx(), protection_tags=("finops/keep",))

    result = DELETE.recheck(ctx, item)

    assert not result.still_waste
    assert result.reason == "snapshot is now protected by tag FinOps/Keep=1"


def test_a_snapshot_tagged_by_an_action_but_not_as_a_volumes_copy_is_judged_as_any(h: Harness):
    """Only both tags (the action's and the source volume's) mark a volume's rollback copy."""
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    _tag(h, snapshot, {ACTION_TAG: "c0ffee00-0000-4000-8000-000000000000"})

    assert DELETE.recheck(h.ctx(), item).still_waste


def test_the_rollback_copy_is_refused_with_its_volume_and_action(h: Harness):
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    _tag(h, snapshot, {ACTION_TAG: "action-1", ebs_volume.SOURCE_VOLUME_TAG: "vol-0abc"})

    result = DELETE.recheck(h.ctx(), item)

    assert not result.still_waste
    assert result.reason.startswith(
        "snapshot is the rollback copy of volume vol-0abc kept by cleanup action action-1"
    )
    assert result.facts["tags"][ACTION_TAG] == "action-1"


@pytest.mark.parametrize(
    ("retain_until", "kept"),
    [
        ("2999-01-01T00:00:00+00:00", True),  # the grace period runs
        ("2000-01-01T00:00:00+00:00", False),  # it ended: the snapshot is waste like any other
        ("2000-01-01T00:00:00", True),  # no time zone: unreadable, never ends
        ("next spring", True),  # not a date: never ends
    ],
)
def test_a_snapshot_kept_for_a_deregistered_images_rollback_waits_for_its_date(
    h: Harness, retain_until: str, kept: bool
):
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    _tag(
        h,
        snapshot,
        {ebs_snapshot.RETAIN_UNTIL_TAG: retain_until, ebs_snapshot.DEREGISTERED_IMAGE_TAG: "ami-1"},
    )

    result = DELETE.recheck(h.ctx(), item)

    assert result.still_waste is not kept, result.reason
    if kept:
        assert result.reason == (
            f"snapshot is kept until {retain_until} for the rollback of deregistered ami-1"
        )
        assert result.facts["tags"][ebs_snapshot.RETAIN_UNTIL_TAG] == retain_until


def test_an_image_using_another_snapshot_does_not_keep_this_one(h: Harness):
    """moto's RegisterImage ignores block devices: the image comes from CreateImage, which
    snapshots the instance's root volume (a snapshot other than the item's). The image also
    maps an instance-store volume, which has no ``Ebs`` entry (AWS lists it; moto does not)."""
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    image = h.ec2.create_image(InstanceId=h.instance(), Name="golden")["ImageId"]

    def with_an_instance_store_volume(parsed, **_):
        for entry in parsed.get("Images", []):
            entry.setdefault("BlockDeviceMappings", []).append(
                {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"}
            )

    h.events.register("after-call.ec2.DescribeImages", with_an_instance_store_volume)
    (ami,) = h.ec2.describe_images(ImageIds=[image])["Images"]
    assert [m["Ebs"]["SnapshotId"] for m in ami["BlockDeviceMappings"] if "Ebs" in m] != [snapshot]

    result = DELETE.recheck(h.ctx(), item)

    assert result.still_waste, result.reason
    assert "images" not in result.facts


def test_archive_recheck_refuses_what_the_common_checks_refuse_even_when_archived(h: Harness):
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    h.ec2.modify_snapshot_tier(SnapshotId=snapshot, StorageTier="archive")
    archived = ARCHIVE.recheck(h.ctx(), item)
    _tag(h, snapshot, {"do-not-delete": "yes"})

    protected = ARCHIVE.recheck(h.ctx(), item)

    assert archived.still_waste and archived.reason == "already in the archive tier"
    assert not protected.still_waste and "protected by tag do-not-delete" in protected.reason


# --- prepare: what the ledger keeps ------------------------------------------------------------


def test_prepare_records_the_snapshot_and_keeps_an_earlier_record(h: Harness):
    snapshot = _snapshot(h, tags={"team": "data"})
    item = h.item("ebs-snapshot", snapshot)
    ctx, params = h.ctx(), h.params(DELETE)

    data = DELETE.prepare(ctx, item, params, {})
    DELETE.execute(ctx, item, params, data)
    again = DELETE.prepare(ctx, item, params, data)

    assert set(data) == {
        "snapshot_id",
        "volume_id",
        "volume_size",
        "description",
        "storage_tier",
        "encrypted",
        "kms_key_id",
        "start_time",
        "tags",
    }
    assert (data["storage_tier"], data["encrypted"], data["kms_key_id"]) == (
        "standard",
        False,
        None,
    )
    assert isinstance(data["start_time"], str) and data["start_time"][:2] == "20"
    assert again == data


def test_prepare_records_an_encrypted_archived_snapshot_and_what_aws_leaves_out(h: Harness):
    """The record of an encrypted snapshot in the archive tier says so, with its key; a
    response without the optional fields (no description, tier or encryption reported) is
    recorded as AWS's defaults: an empty description, the standard tier, not encrypted."""
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    volume = h.volume(size=8, Encrypted=True, KmsKeyId=key)
    snapshot = h.ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    h.ec2.modify_snapshot_tier(SnapshotId=snapshot, StorageTier="archive")
    item = h.item("ebs-snapshot", snapshot)
    ctx, params = h.ctx(), h.params(DELETE)

    def report_the_key(parsed, **_):
        # AWS names an encrypted snapshot's key; moto 5.2.5 does not.
        for entry in parsed.get("Snapshots", []):
            if entry.get("Encrypted"):
                entry["KmsKeyId"] = key

    h.events.register("after-call.ec2.DescribeSnapshots", report_the_key)
    data = DELETE.prepare(ctx, item, params, {})
    assert (data["storage_tier"], data["encrypted"], data["kms_key_id"]) == ("archive", True, key)

    def leave_out_optional_fields(parsed, **_):
        for entry in parsed.get("Snapshots", []):
            for field in ("Description", "StorageTier", "Encrypted", "KmsKeyId"):
                entry.pop(field, None)

    h.events.register("after-call.ec2.DescribeSnapshots", leave_out_optional_fields)
    bare = DELETE.prepare(ctx, item, params, {})
    assert (bare["description"], bare["storage_tier"], bare["encrypted"]) == ("", "standard", False)
    assert bare["kms_key_id"] is None
    assert DELETE.recheck(ctx, item).facts["storage_tier"] == "standard"


def test_prepare_of_a_snapshot_gone_since_the_recheck_records_the_scans_view(h: Harness):
    snapshot = _snapshot(h, tags={"team": "data"})
    item = h.item("ebs-snapshot", snapshot)
    h.ec2.delete_snapshot(SnapshotId=snapshot)

    data = DELETE.prepare(h.ctx(), item, h.params(DELETE), {})

    assert data == {
        "snapshot_id": snapshot,
        "volume_id": item.resource_details["source_volume_id"],
        "description": "nightly",
        "tags": {"team": "data"},
        "gone_before_prepare": True,
    }
    assert data["volume_id"].startswith("vol-")


# --- archive and restore: work already under way counts as done ---------------------------------


def _tier_status_seen_as(h: Harness, **status: str) -> None:
    def report(parsed, **_):
        for entry in parsed.get("SnapshotTierStatuses", []):
            entry.update(status)

    h.events.register("after-call.ec2.DescribeSnapshotTierStatus", report)


def test_an_archive_in_progress_is_done_without_a_second_request(h: Harness):
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    ctx, params = h.ctx(), h.params(ARCHIVE)
    data = ARCHIVE.prepare(ctx, item, params, {})
    _tier_status_seen_as(h, LastTieringOperationStatus="archival-in-progress")

    outcome = ARCHIVE.execute(ctx, item, params, data)

    assert outcome.already_done
    assert outcome.note == f"{snapshot} is already archived or being archived"
    assert h.count("ModifySnapshotTier") == 0


def test_archive_asks_for_the_archive_tier_of_this_snapshot_only(h: Harness):
    snapshot = _snapshot(h)
    other = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    ctx, params = h.ctx(), h.params(ARCHIVE)

    outcome = ARCHIVE.execute(ctx, item, params, ARCHIVE.prepare(ctx, item, params, {}))

    assert outcome.note == f"archiving {snapshot}"
    (call,) = h.recorder.calls(operation="ModifySnapshotTier")
    assert call.params == {"SnapshotId": snapshot, "StorageTier": "archive"}
    assert (_tier(h, snapshot), _tier(h, other)) == ("archive", "standard")


def test_an_archived_snapshot_whose_restore_failed_is_done_without_a_second_request(
    h: Harness,
):
    """A snapshot in the archive tier whose last tiering operation was a failed restore is
    archived: the archive is done, not asked again. Another snapshot of the account, in the
    standard tier, listed before it, does not stand for it (the status is read for this
    snapshot only)."""
    _snapshot(h)
    snapshot = _snapshot(h)
    h.ec2.modify_snapshot_tier(SnapshotId=snapshot, StorageTier="archive")
    item = h.item("ebs-snapshot", snapshot)
    ctx, params = h.ctx(), h.params(ARCHIVE)
    data = ARCHIVE.prepare(ctx, item, params, {})
    _tier_status_seen_as(h, LastTieringOperationStatus="permanent-restore-failed")

    outcome = ARCHIVE.execute(ctx, item, params, data)

    assert outcome.already_done
    assert h.count("ModifySnapshotTier") == 0
    status_read = h.recorder.calls(operation="DescribeSnapshotTierStatus")[-1]
    assert status_read.params["Filters"] == [{"Name": "snapshot-id", "Values": [snapshot]}]


def test_the_rollback_of_a_snapshot_never_archived_is_done_without_a_restore(h: Harness):
    """The archive never reached AWS (its attempt failed before the call): the snapshot is in
    the standard tier with no tiering operation, so the rollback has nothing to restore."""
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    ctx, params = h.ctx(), h.params(ARCHIVE)
    data = ARCHIVE.prepare(ctx, item, params, {})

    outcome = ARCHIVE.rollback(h.ctx(), data, params)

    assert outcome.already_done
    assert outcome.note == f"{snapshot} is already restored or being restored"
    assert h.count("RestoreSnapshotTier") == 0


@pytest.mark.parametrize(
    "status",
    [
        {"LastTieringOperationStatus": "permanent-restore-in-progress"},
        {"LastTieringOperationStatus": "temporary-restore-in-progress"},
        {"LastTieringOperationStatus": "permanent-restore-completed"},
    ],
)
def test_a_restore_under_way_is_done_without_a_second_request(h: Harness, status):
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    ctx, params = h.ctx(), h.params(ARCHIVE)
    data = ARCHIVE.prepare(ctx, item, params, {})
    ARCHIVE.execute(ctx, item, params, data)
    _tier_status_seen_as(h, StorageTier="archive", **status)

    outcome = ARCHIVE.rollback(h.ctx(), data, params)

    assert outcome.already_done
    assert h.count("RestoreSnapshotTier") == 0


def test_a_standard_tier_snapshot_still_being_archived_is_restored(h: Harness):
    """The archive was asked and not finished: the snapshot shows ``standard`` still, but the
    rollback must stop the archive, not count as done."""
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    ctx, params = h.ctx(), h.params(ARCHIVE)
    data = ARCHIVE.prepare(ctx, item, params, {})
    ARCHIVE.execute(ctx, item, params, data)
    _tier_status_seen_as(
        h, StorageTier="standard", LastTieringOperationStatus="archival-in-progress"
    )

    outcome = ARCHIVE.rollback(h.ctx(), data, params)

    assert not outcome.already_done
    assert outcome.note == f"restoring {snapshot} permanently (24 to 72 hours)"
    assert h.count("RestoreSnapshotTier") == 1


# --- what a person reads, and what a refused read means -----------------------------------------


def test_delete_says_what_it_deleted_and_a_rerun_that_it_was_done_before(h: Harness):
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    ctx, params = h.ctx(), h.params(DELETE)
    data = DELETE.prepare(ctx, item, params, {})

    outcome = DELETE.execute(ctx, item, params, data)
    again = DELETE.execute(ctx, item, params, data)

    assert outcome.note == f"deleted {snapshot}"
    assert again.note == f"{snapshot} was already deleted (an earlier attempt)"
    assert again.response == {"SnapshotId": snapshot, "Error": "InvalidSnapshot.NotFound"}
    assert [r.params for r in h.recorder.calls(operation="DeleteSnapshot")] == [
        {"SnapshotId": snapshot}
    ] * 2


def test_a_refused_image_listing_stops_the_recheck_instead_of_passing(h: Harness):
    """Not being allowed to list the AMIs is not "used by no AMI": the step fails, and says
    which read was refused."""
    item = h.item("ebs-snapshot", _snapshot(h))
    faults.fail_with(
        h.events,
        "before-send.ec2.DescribeImages",
        status=403,
        body=faults.ec2_error_body("UnauthorizedOperation", "no images for you"),
    )

    with pytest.raises(aws.AwsError) as failed:
        DELETE.recheck(h.ctx(), item)

    assert str(failed.value) == (
        "ec2:DescribeImages in us-east-1 failed (access-denied, UnauthorizedOperation): "
        "no images for you"
    )


def test_only_the_accounts_own_images_are_listed(h: Harness):
    """Public AMIs of other accounts cannot use this account's snapshot; listing them would
    read every public image of the region."""
    item = h.item("ebs-snapshot", _snapshot(h))

    result = DELETE.recheck(h.ctx(), item)

    assert result.reason == "still completed, unprotected and used by no AMI"
    (listing,) = h.recorder.calls(operation="DescribeImages")
    assert listing.params == {"Owners": ["self"]}


def test_the_reasons_of_a_refusal_read_in_full(h: Harness):
    item = h.item("ebs-snapshot", _snapshot(h))
    image = h.ec2.create_image(InstanceId=h.instance(), Name="golden")["ImageId"]
    (ami,) = h.ec2.describe_images(ImageIds=[image])["Images"]
    (used,) = [m["Ebs"]["SnapshotId"] for m in ami["BlockDeviceMappings"] if "Ebs" in m]
    copy = _snapshot(h, tags={ACTION_TAG: "action-1", ebs_volume.SOURCE_VOLUME_TAG: "vol-0abc"})

    in_use = DELETE.recheck(h.ctx(), dataclasses.replace(item, resource_id=used))
    kept = DELETE.recheck(h.ctx(), dataclasses.replace(item, resource_id=copy))

    assert in_use.reason == f"snapshot is now used by AMI {image}"
    assert kept.reason == (
        "snapshot is the rollback copy of volume vol-0abc kept by cleanup action action-1; "
        "remove it by hand once that undo is not needed"
    )


def test_a_grace_period_without_the_images_name_still_reads_whole(h: Harness):
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    _tag(h, snapshot, {ebs_snapshot.RETAIN_UNTIL_TAG: "2999-01-01T00:00:00+00:00"})

    result = DELETE.recheck(h.ctx(), item)

    assert result.reason == (
        "snapshot is kept until 2999-01-01T00:00:00+00:00 for the rollback of deregistered AMI"
    )


def test_the_grace_period_ends_at_its_date_exactly(h: Harness):
    snapshot = _snapshot(h)
    item = h.item("ebs-snapshot", snapshot)
    _tag(h, snapshot, {ebs_snapshot.RETAIN_UNTIL_TAG: "2026-06-01T00:00:00+00:00"})
    until = datetime(2026, 6, 1, tzinfo=UTC)

    assert DELETE.recheck(at(h.ctx(), until), item).still_waste
    assert not DELETE.recheck(at(h.ctx(), until - timedelta(microseconds=1)), item).still_waste
