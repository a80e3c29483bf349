"""The ebs-volume cleanup actions (snapshot-and-delete, delete) against moto over HTTP.

Faults (lost responses, throttling, refusals) are injected at the botocore event layer of the
cleanup session's EC2 client (``tests/faults.py``); moto stays real. See ``ebs_helpers`` for how the
account, the session and the items are built.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import ACTION_TAG, ebs_volume
from cloudsweep.domain import ActionType
from tests import faults

from .ebs_helpers import AZ, Harness, tag_dict, tags_spec

SNAPSHOT_AND_DELETE = ebs_volume.SnapshotAndDeleteVolume()
ROLLBACK_KEYS = {
    "snapshot_id",
    "volume_id",
    "availability_zone",
    "volume_type",
    "size",
    "iops",
    "throughput",
    "encrypted",
    "kms_key_id",
    "multi_attach",
    "tags",
}


@pytest.fixture
def h(moto_endpoint: str) -> Harness:
    return Harness(moto_endpoint)


def _prepared(h: Harness, volume_id: str):
    item = h.item("ebs-volume", volume_id)
    ctx = h.ctx()
    params = h.params(SNAPSHOT_AND_DELETE)
    data = SNAPSHOT_AND_DELETE.prepare(ctx, item, params, {})
    return item, ctx, params, data


def test_registered_with_their_contract():
    assert cleanup.get("ebs-volume", "snapshot-and-delete") is ebs_volume.SnapshotAndDeleteVolume
    # No plain delete: a volume's data can be kept (a snapshot), so a delete must keep it first.
    assert cleanup.actions_for("ebs-volume") == ["snapshot-and-delete"]
    assert SNAPSHOT_AND_DELETE.action_type is ActionType.DELETE
    assert SNAPSHOT_AND_DELETE.rollback_possible is True
    for needed in ("ec2:CreateSnapshot", "ec2:DeleteVolume", "ec2:CreateVolume", "ec2:CreateTags"):
        assert needed in SNAPSHOT_AND_DELETE.permissions


# --- recheck -----------------------------------------------------------------------------------


def test_recheck_passes_for_an_unchanged_unattached_volume(h: Harness):
    volume = h.volume(tags={"do-not-delete": "false", "team": "data"})
    item = h.item("ebs-volume", volume)

    result = SNAPSHOT_AND_DELETE.recheck(h.ctx(), item)

    assert result.still_waste, result.reason
    assert h.mutating() == []


def test_recheck_refuses_a_volume_attached_again(h: Harness):
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    instance = h.instance()
    h.ec2.attach_volume(VolumeId=volume, InstanceId=instance, Device="/dev/sdf")

    result = SNAPSHOT_AND_DELETE.recheck(h.ctx(), item)

    assert not result.still_waste
    assert instance in result.reason
    assert result.facts["attached_to"] == instance


@pytest.mark.parametrize("key, value", [("cloudsweep.io/protect", "true"), ("Do-Not-Delete", "")])
def test_recheck_refuses_a_volume_protected_since_the_scan(h: Harness, key: str, value: str):
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    h.ec2.create_tags(Resources=[volume], Tags=[{"Key": key, "Value": value}])

    result = SNAPSHOT_AND_DELETE.recheck(h.ctx(), item)

    assert not result.still_waste
    assert f"protected by tag {key}" in result.reason


def test_recheck_refuses_a_volume_changed_since_the_scan(h: Harness):
    volume = h.volume(size=50)
    item = h.item("ebs-volume", volume)
    h.ec2.modify_volume(VolumeId=volume, Size=80)

    result = SNAPSHOT_AND_DELETE.recheck(h.ctx(), item)

    assert not result.still_waste
    assert "changed since the scan" in result.reason
    assert "size 50 -> 80" in result.reason


@pytest.mark.parametrize("state", ["creating", "error", "deleting", "in-use"])
def test_recheck_refuses_a_volume_that_is_not_available(h: Harness, state: str):
    """AWS reports states moto never shows (a volume in ``error``, being restored, being deleted,
    or ``in-use`` before its attachment is listed): only ``available`` is waste. The state is set
    in the DescribeVolumes answer by an ``after-call`` handler; no attachment is listed."""
    volume = h.volume()
    item = h.item("ebs-volume", volume)

    def report_state(parsed, **_):
        for entry in parsed.get("Volumes", []):
            entry["State"] = state

    h.events.register("after-call.ec2.DescribeVolumes", report_state)

    result = SNAPSHOT_AND_DELETE.recheck(h.ctx(), item)

    assert not result.still_waste
    assert result.reason == f"volume is {state}, not available"
    assert result.facts["state"] == state
    assert "gone" not in result.facts
    assert h.mutating() == []


def test_recheck_reports_a_deleted_volume_as_gone(h: Harness):
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    h.ec2.delete_volume(VolumeId=volume)

    result = SNAPSHOT_AND_DELETE.recheck(h.ctx(), item)

    assert not result.still_waste
    assert result.reason == "volume no longer exists"
    assert result.facts == {"gone": True}


# --- dry run -----------------------------------------------------------------------------------


@pytest.mark.parametrize("action", [SNAPSHOT_AND_DELETE], ids=lambda a: a.action)
def test_dry_run_changes_nothing_and_only_makes_dry_run_calls(h: Harness, action):
    volume = h.volume(tags={"team": "data"})
    item = h.item("ebs-volume", volume)
    before = h.world()

    result = action.dry_run(h.ctx(), item, h.params(action))

    assert result.would_succeed, result.message
    assert "ec2:DeleteVolume" in result.calls
    assert h.world() == before
    mutating = h.mutating()
    assert mutating, "the dry run asked AWS nothing"
    assert all(r.params.get("DryRun") is True for r in mutating)
    assert {r.operation for r in mutating} == {c.removeprefix("ec2:") for c in result.calls}


def test_dry_run_reports_a_refused_permission(h: Harness):
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    faults.fail_with(
        h.events,
        "before-send.ec2.DeleteVolume",
        status=403,
        body=faults.ec2_error_body("UnauthorizedOperation", "You are not authorized"),
    )

    result = SNAPSHOT_AND_DELETE.dry_run(h.ctx(), item, h.params(SNAPSHOT_AND_DELETE))

    assert not result.would_succeed
    assert "ec2:DeleteVolume would fail (UnauthorizedOperation)" in result.message
    assert h.volume_exists(volume)


# --- prepare and execute -----------------------------------------------------------------------


def test_prepare_and_execute_snapshot_then_delete_exactly_the_volume(h: Harness):
    volume = h.volume(
        size=20,
        volume_type="gp3",
        tags={"team": "data", "Name": "scratch"},
        Iops=4000,
        Throughput=250,
    )
    bystander = h.volume()
    item = h.item("ebs-volume", volume)
    ctx = h.ctx()
    params = h.params(SNAPSHOT_AND_DELETE)

    data = SNAPSHOT_AND_DELETE.prepare(ctx, item, params, {})

    assert set(data) == ROLLBACK_KEYS
    assert data["volume_id"] == volume
    assert (data["availability_zone"], data["volume_type"], data["size"]) == (AZ, "gp3", 20)
    assert (data["iops"], data["throughput"]) == (4000, 250)
    assert data["tags"] == {"team": "data", "Name": "scratch"}
    assert h.checkpoints["snapshot_id"] == data["snapshot_id"]
    (snapshot,) = h.snapshots_tagged(ACTION_TAG, str(ctx.action_id))
    assert snapshot["SnapshotId"] == data["snapshot_id"]
    assert snapshot["VolumeId"] == volume
    assert tag_dict(snapshot["Tags"]) == {
        "team": "data",
        "Name": "scratch",
        ACTION_TAG: str(ctx.action_id),
        ebs_volume.SOURCE_VOLUME_TAG: volume,
    }
    assert h.volume_exists(volume), "prepare must not delete"

    outcome = SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)

    assert not outcome.already_done
    assert outcome.response["SnapshotId"] == data["snapshot_id"]
    assert not h.volume_exists(volume)
    assert h.volume_exists(bystander)
    assert len(h.snapshots_tagged(ACTION_TAG, str(ctx.action_id))) == 1
    assert h.count("CreateSnapshot") == 1
    assert h.count("DeleteVolume") == 1
    assert [r.params for r in h.recorder.calls(operation="DeleteVolume")] == [{"VolumeId": volume}]


def test_prepare_again_with_the_checkpoint_reuses_the_snapshot(h: Harness):
    """A crash after the snapshot, before the delete: the rerun gets the checkpoint back."""
    item, ctx, params, first = _prepared(h, h.volume())

    again = SNAPSHOT_AND_DELETE.prepare(ctx, item, params, dict(h.checkpoints))

    assert again == first
    assert h.count("CreateSnapshot") == 1
    assert len(h.snapshots_tagged(ACTION_TAG, str(ctx.action_id))) == 1


def test_prepare_interrupted_before_the_checkpoint_finds_the_snapshot_by_its_tag(h: Harness):
    """A crash between CreateSnapshot and the checkpoint: the ledger has nothing, the tag does."""
    item, ctx, params, first = _prepared(h, h.volume())

    again = SNAPSHOT_AND_DELETE.prepare(ctx, item, params, {})

    assert again["snapshot_id"] == first["snapshot_id"]
    assert h.count("CreateSnapshot") == 1
    assert len(h.snapshots_tagged(ACTION_TAG, str(ctx.action_id))) == 1


def test_prepare_of_another_action_takes_its_own_snapshot(h: Harness):
    volume = h.volume()
    item, _, params, first = _prepared(h, volume)

    other = SNAPSHOT_AND_DELETE.prepare(h.ctx(checkpoints={}), item, params, {})

    assert other["snapshot_id"] != first["snapshot_id"]


def test_a_lost_delete_response_is_done_on_the_next_attempt_not_repeated(h: Harness):
    volume = h.volume()
    item, ctx, params, data = _prepared(h, volume)
    lost = faults.lose_response(h.events, "ec2", "DeleteVolume")

    with pytest.raises(aws.AwsError) as failed:
        SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)
    assert failed.value.kind is aws.ErrorKind.RECOVERABLE
    assert lost.hits == 1
    assert not h.volume_exists(volume), "the delete took effect; only its answer was lost"

    outcome = SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)

    assert outcome.already_done
    deletes = h.recorder.calls(operation="DeleteVolume")
    assert [r.error_code for r in deletes][1:] == ["InvalidVolume.NotFound"]
    assert len(h.snapshots_tagged(ACTION_TAG, str(ctx.action_id))) == 1


def test_sustained_throttling_fails_as_throttled_and_keeps_the_volume(h: Harness):
    volume = h.volume()
    item, ctx, params, data = _prepared(h, volume)
    throttled = faults.throttle(h.events, "ec2", "DeleteVolume")

    with pytest.raises(aws.AwsError) as failed:
        SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)

    assert failed.value.kind is aws.ErrorKind.THROTTLED
    assert throttled.hits == 2  # aws_max_attempts: bounded
    assert h.volume_exists(volume)


def test_a_refused_delete_fails_with_aws_message(h: Harness):
    volume = h.volume()
    item, ctx, params, data = _prepared(h, volume)
    faults.fail_with(
        h.events,
        "before-send.ec2.DeleteVolume",
        status=400,
        body=faults.ec2_error_body("IncorrectState", "The volume is being modified"),
    )

    with pytest.raises(aws.AwsError) as failed:
        SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)

    assert failed.value.kind is aws.ErrorKind.TERMINAL
    assert failed.value.code == "IncorrectState"
    assert "The volume is being modified" in str(failed.value)
    assert h.volume_exists(volume)


def test_a_volume_attached_after_prepare_is_not_deleted(h: Harness):
    volume = h.volume()
    item, ctx, params, data = _prepared(h, volume)
    h.ec2.attach_volume(VolumeId=volume, InstanceId=h.instance(), Device="/dev/sdf")

    with pytest.raises(aws.AwsError) as failed:
        SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)

    assert failed.value.code == "VolumeInUse"
    assert h.volume_exists(volume)


def test_execute_refuses_without_a_completed_snapshot(h: Harness):
    volume = h.volume()
    item, ctx, params, data = _prepared(h, volume)

    with pytest.raises(ebs_volume.MissingRollbackData, match="no snapshot"):
        SNAPSHOT_AND_DELETE.execute(ctx, item, params, {**data, "snapshot_id": None})
    h.ec2.delete_snapshot(SnapshotId=data["snapshot_id"])
    with pytest.raises(ebs_volume.MissingRollbackData, match="missing"):
        SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)

    assert h.count("DeleteVolume") == 0
    assert h.volume_exists(volume)


def test_a_snapshot_deleted_by_someone_after_the_checkpoint_is_taken_again(h: Harness):
    volume = h.volume()
    item, ctx, params, first = _prepared(h, volume)
    h.ec2.delete_snapshot(SnapshotId=first["snapshot_id"])

    again = SNAPSHOT_AND_DELETE.prepare(ctx, item, params, dict(h.checkpoints))

    assert again["snapshot_id"] != first["snapshot_id"]
    assert h.checkpoints["snapshot_id"] == again["snapshot_id"]


# --- rollback ----------------------------------------------------------------------------------


def test_rollback_recreates_the_volume_from_the_snapshot_once(h: Harness):
    volume = h.volume(size=30, volume_type="gp3", tags={"team": "data"}, Iops=5000, Throughput=300)
    item, ctx, params, data = _prepared(h, volume)
    SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)
    rollback_ctx = h.ctx(checkpoints={})

    outcome = SNAPSHOT_AND_DELETE.rollback(rollback_ctx, data, params)

    assert not outcome.already_done
    restored_id = outcome.response["VolumeId"]
    (restored,) = h.ec2.describe_volumes(VolumeIds=[restored_id])["Volumes"]
    assert restored["State"] == "available"
    assert restored["SnapshotId"] == data["snapshot_id"]
    assert (restored["AvailabilityZone"], restored["VolumeType"], restored["Size"]) == (
        AZ,
        "gp3",
        30,
    )
    assert (restored["Iops"], restored["Throughput"]) == (5000, 300)
    assert tag_dict(restored["Tags"]) == {
        "team": "data",
        ACTION_TAG: str(rollback_ctx.action_id),
        ebs_volume.RESTORED_FROM_TAG: data["snapshot_id"],
    }

    again = SNAPSHOT_AND_DELETE.rollback(rollback_ctx, data, params)

    assert again.already_done
    assert again.response["VolumeId"] == restored_id
    assert h.count("CreateVolume") == 1


def test_savings_subtract_the_kept_snapshot(h: Harness):
    item = h.item("ebs-volume", h.volume(size=50))  # gp2: 5.00 USD/month in us-east-1

    assert item.monthly_cost == Decimal("5.00")
    # 50 GiB of standard snapshot at 0.05 USD: an upper bound for the snapshot
    assert SNAPSHOT_AND_DELETE.estimated_monthly_savings(item) == Decimal("2.50")


def test_action_ids_are_what_find_earlier_work(h: Harness):
    """Two items, two actions: each finds only its own snapshot."""
    a, b = h.volume(), h.volume()
    ids = {}
    for volume in (a, b):
        action_id = uuid.uuid4()
        data = SNAPSHOT_AND_DELETE.prepare(
            h.ctx(action_id, checkpoints={}),
            h.item("ebs-volume", volume),
            h.params(SNAPSHOT_AND_DELETE),
            {},
        )
        ids[volume] = (action_id, data["snapshot_id"])
    for volume, (action_id, snapshot_id) in ids.items():
        (found,) = h.snapshots_tagged(ACTION_TAG, str(action_id))
        assert found["SnapshotId"] == snapshot_id and found["VolumeId"] == volume


def _snapshot_state_seen_as(h: Harness, state: str) -> None:
    """Make CreateSnapshot answer ``pending`` (as AWS does) and every DescribeSnapshots by ID
    answer ``state``: moto completes snapshots at once."""
    from urllib.parse import parse_qs

    from botocore.awsrequest import AWSResponse

    def handler(request, **_):
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        ids = parse_qs(body).get("SnapshotId.1")
        if not ids:
            return None
        xml = (
            '<DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
            "<requestId>injected</requestId><snapshotSet><item>"
            f"<snapshotId>{ids[0]}</snapshotId><status>{state}</status>"
            "<statusMessage>injected</statusMessage></item></snapshotSet>"
            "</DescribeSnapshotsResponse>"
        ).encode()
        return AWSResponse(request.url, 200, {}, faults._Raw(xml))

    def created(parsed, **_):
        parsed["State"] = "pending"

    h.events.register("before-send.ec2.DescribeSnapshots", handler)
    h.events.register("after-call.ec2.CreateSnapshot", created)


@pytest.mark.parametrize(
    "state, kind, code",
    [
        ("pending", aws.ErrorKind.RECOVERABLE, "WaiterTimedOut"),
        ("error", aws.ErrorKind.TERMINAL, "WaiterFailed"),
    ],
)
def test_a_snapshot_not_completed_stops_prepare_with_the_snapshot_checkpointed(
    h: Harness, state: str, kind: aws.ErrorKind, code: str
):
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    ctx = h.ctx()
    _snapshot_state_seen_as(h, state)

    with pytest.raises(aws.AwsError) as failed:
        SNAPSHOT_AND_DELETE.prepare(ctx, item, h.params(SNAPSHOT_AND_DELETE), {})

    assert (failed.value.kind, failed.value.code) == (kind, code)
    (snapshot,) = h.snapshots_tagged(ACTION_TAG, str(ctx.action_id))
    assert h.checkpoints["snapshot_id"] == snapshot["SnapshotId"]
    assert h.volume_exists(volume)
    assert h.count("DeleteVolume") == 0


def test_prepare_after_the_volume_went_uses_the_ledger(h: Harness):
    """A rerun of a finished action (prepare, execute, crash before the outcome was stored)."""
    volume = h.volume()
    item, ctx, params, data = _prepared(h, volume)
    SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)

    again = SNAPSHOT_AND_DELETE.prepare(ctx, item, params, dict(h.checkpoints))

    assert again == data
    assert h.count("CreateSnapshot") == 1


# --- what the re-check decides --------------------------------------------------------------


def test_recheck_reports_the_live_volume(h: Harness):
    volume = h.volume(size=20, volume_type="gp3", tags={"team": "data"}, Iops=4000, Throughput=200)
    item = h.item("ebs-volume", volume)

    result = SNAPSHOT_AND_DELETE.recheck(h.ctx(), item)

    assert result.still_waste, result.reason
    assert result.facts == {
        "state": "available",
        "size": 20,
        "volume_type": "gp3",
        "iops": 4000,
        "throughput": 200,
        "tags": {"team": "data"},
    }


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"Iops": 5000}, "iops 4000 -> 5000"),
        ({"Throughput": 300}, "throughput 200 -> 300"),
        ({"VolumeType": "io1", "Iops": 4000}, "type gp3 -> io1"),
    ],
)
def test_recheck_refuses_a_volume_whose_performance_or_type_changed(h: Harness, change, said):
    volume = h.volume(size=20, volume_type="gp3", Iops=4000, Throughput=200)
    item = h.item("ebs-volume", volume)
    h.ec2.modify_volume(VolumeId=volume, **change)

    result = SNAPSHOT_AND_DELETE.recheck(h.ctx(), item)

    assert not result.still_waste
    assert said in result.reason


def test_recheck_under_the_scans_own_protection_tag_refuses(h: Harness):
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    h.ec2.create_tags(Resources=[volume], Tags=[{"Key": "FinOps/Keep", "Value": "y"}])
    ctx = dataclasses.replace(h.ctx(), protection_tags=("finops/keep",))

    result = SNAPSHOT_AND_DELETE.recheck(ctx, item)

    assert result.reason == "volume is now protected by tag FinOps/Keep=y"


# --- prepare ------------------------------------------------------------------------------------


def test_a_volume_restored_by_an_earlier_rollback_gets_this_actions_tags(h: Harness):
    volume = h.volume(
        tags={
            ACTION_TAG: "an-earlier-rollback",
            ebs_volume.SOURCE_VOLUME_TAG: "vol-old",
            "team": "x",
        }
    )
    _, ctx, _, _ = _prepared(h, volume)

    (snapshot,) = h.snapshots_tagged(ACTION_TAG, str(ctx.action_id))
    assert tag_dict(snapshot["Tags"]) == {
        "team": "x",
        ACTION_TAG: str(ctx.action_id),
        ebs_volume.SOURCE_VOLUME_TAG: volume,
    }
    assert (
        snapshot["Description"] == f"CloudSweep: {volume} before deletion (action {ctx.action_id})"
    )


def test_prepare_of_a_volume_gone_with_nothing_recorded_fails_not_found(h: Harness):
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    h.ec2.delete_volume(VolumeId=volume)

    with pytest.raises(aws.AwsError) as failed:
        SNAPSHOT_AND_DELETE.prepare(h.ctx(), item, h.params(SNAPSHOT_AND_DELETE), {})

    assert (failed.value.kind, failed.value.code) == (
        aws.ErrorKind.NOT_FOUND,
        "InvalidVolume.NotFound",
    )
    assert h.count("CreateSnapshot") == 0


def test_prepare_of_a_volume_gone_with_only_a_snapshot_recorded_fails_not_found(h: Harness):
    """The configuration was never recorded: the volume cannot be recreated from the ledger."""
    volume = h.volume()
    item, ctx, params, data = _prepared(h, volume)
    h.ec2.delete_volume(VolumeId=volume)

    with pytest.raises(aws.AwsError) as failed:
        SNAPSHOT_AND_DELETE.prepare(ctx, item, params, {"snapshot_id": data["snapshot_id"]})

    assert failed.value.code == "InvalidVolume.NotFound"


def test_a_rerun_with_a_complete_record_does_not_checkpoint_again(h: Harness):
    volume = h.volume()
    item, ctx, params, data = _prepared(h, volume)
    checkpoints: list = []
    rerun = dataclasses.replace(ctx, checkpoint=checkpoints.append)

    again = SNAPSHOT_AND_DELETE.prepare(rerun, item, params, data)

    assert again == data and checkpoints == []


def _encrypted_multi_attach_volume(h: Harness) -> str:
    """An io1 volume with everything a plain recreate would lose: its key and multi-attach."""
    return h.volume(
        size=10,
        volume_type="io1",
        Iops=1000,
        Encrypted=True,
        KmsKeyId="alias/data",
        MultiAttachEnabled=True,
    )


def test_prepare_records_an_encrypted_multi_attach_volume(h: Harness):
    volume = _encrypted_multi_attach_volume(h)
    _, _, _, data = _prepared(h, volume)

    assert (data["volume_type"], data["iops"], data["throughput"]) == ("io1", 1000, None)
    assert (data["encrypted"], data["multi_attach"]) == (True, True)
    assert data["kms_key_id"]


# --- execute -------------------------------------------------------------------------------------


@pytest.mark.parametrize("recorded", [{}, {"snapshot_id": ""}])
def test_execute_without_a_recorded_snapshot_refuses_and_deletes_nothing(h: Harness, recorded):
    volume = h.volume()
    item = h.item("ebs-volume", volume)

    with pytest.raises(ebs_volume.MissingRollbackData) as failed:
        SNAPSHOT_AND_DELETE.execute(h.ctx(), item, h.params(SNAPSHOT_AND_DELETE), recorded)

    assert str(failed.value) == (
        "ec2:DeleteVolume in us-east-1 failed (terminal, MissingRollbackData): refusing to delete "
        f"{volume}: no snapshot was recorded; run prepare again"
    )
    assert h.volume_exists(volume) and h.count("DeleteVolume") == 0


def test_execute_whose_snapshot_was_deleted_refuses(h: Harness):
    """Another snapshot of the account, complete and listed first, does not stand for it."""
    h.ec2.create_snapshot(VolumeId=h.volume(size=8))
    volume = h.volume()
    item, ctx, params, data = _prepared(h, volume)
    h.ec2.delete_snapshot(SnapshotId=data["snapshot_id"])

    with pytest.raises(ebs_volume.MissingRollbackData) as failed:
        SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)

    assert f"its snapshot {data['snapshot_id']} is missing" in str(failed.value)
    assert h.volume_exists(volume)


def test_execute_says_what_it_deleted_and_kept(h: Harness):
    volume = h.volume()
    item, ctx, params, data = _prepared(h, volume)

    outcome = SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)
    again = SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)

    assert outcome.note == f"deleted {volume}; snapshot {data['snapshot_id']} kept for rollback"
    assert again.already_done
    assert again.response == {
        "VolumeId": volume,
        "Error": "InvalidVolume.NotFound",
        "SnapshotId": data["snapshot_id"],
    }


# --- rollback ------------------------------------------------------------------------------------


def test_rollback_recreates_encryption_key_and_multi_attach(h: Harness):
    volume = _encrypted_multi_attach_volume(h)
    item, ctx, params, data = _prepared(h, volume)
    SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)
    checkpoints: dict = {}

    outcome = SNAPSHOT_AND_DELETE.rollback(h.ctx(checkpoints=checkpoints), data, params)

    (create,) = h.recorder.calls(operation="CreateVolume")
    assert create.params["Encrypted"] is True
    assert create.params["KmsKeyId"] == data["kms_key_id"]
    assert create.params["MultiAttachEnabled"] is True
    assert (create.params["VolumeType"], create.params["Iops"], create.params["Size"]) == (
        "io1",
        1000,
        10,
    )
    assert "Throughput" not in create.params
    assert checkpoints == {"restored_volume_id": outcome.response["VolumeId"]}
    assert outcome.response == {
        "VolumeId": checkpoints["restored_volume_id"],
        "SnapshotId": data["snapshot_id"],
        "AvailabilityZone": AZ,
    }
    assert outcome.note == (
        f"volume {outcome.response['VolumeId']} recreated from {data['snapshot_id']} (was {volume})"
    )


def test_prepare_records_what_aws_leaves_out_as_its_defaults(h: Harness):
    """A DescribeVolumes answer without the optional fields (type, encryption, multi-attach):
    the record holds AWS's defaults (gp2, not encrypted, single-attach), which a rollback can
    ask CreateVolume for."""
    volume = h.volume(size=10)

    def leave_out_optional_fields(parsed, **_):
        for entry in parsed.get("Volumes", []):
            for field in ("VolumeType", "Encrypted", "MultiAttachEnabled"):
                entry.pop(field, None)

    h.events.register("after-call.ec2.DescribeVolumes", leave_out_optional_fields)
    _, _, _, data = _prepared(h, volume)

    assert (data["volume_type"], data["encrypted"], data["multi_attach"]) == ("gp2", False, False)


def test_a_restored_volume_that_fails_is_a_terminal_error_of_the_volume_read(h: Harness):
    """The recreated volume is reported deleted while the rollback waits for it: a terminal
    error that names the read which saw it."""
    volume = h.volume(size=10)
    item, ctx, params, data = _prepared(h, volume)
    SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)

    def restored_volume_deleted(parsed, **_):
        for entry in parsed.get("Volumes", []):
            entry["State"] = "deleted"

    h.events.register("after-call.ec2.DescribeVolumes", restored_volume_deleted)

    with pytest.raises(aws.AwsError) as failed:
        SNAPSHOT_AND_DELETE.rollback(h.ctx(checkpoints={}), data, params)

    assert str(failed.value) == (
        "ec2:DescribeVolumes in us-east-1 failed (terminal, WaiterFailed): volume_available: "
        "Waiter VolumeAvailable failed: Waiter encountered a terminal failure state: For "
        'expression "Volumes[].State" we matched expected path: "deleted" at least once'
    )


def test_rollback_of_a_gp2_volume_asks_for_no_iops_or_throughput(h: Harness):
    volume = h.volume(size=10)

    def baseline_iops(parsed, **_):  # AWS reports gp2's baseline (3 per GiB, at least 100)
        for entry in parsed.get("Volumes", []):
            entry.setdefault("Iops", 100)

    h.events.register("after-call.ec2.DescribeVolumes", baseline_iops)
    item, ctx, params, data = _prepared(h, volume)
    SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)

    SNAPSHOT_AND_DELETE.rollback(h.ctx(checkpoints={}), data, params)

    # gp2's baseline IOPS figure is not recorded: CreateVolume would refuse it for gp2.
    assert (data["volume_type"], data["iops"], data["throughput"]) == ("gp2", None, None)
    (create,) = h.recorder.calls(operation="CreateVolume")
    assert not {"Iops", "Throughput", "Encrypted", "KmsKeyId", "MultiAttachEnabled"} & set(
        create.params
    )


@pytest.mark.parametrize("state", ["deleting", "deleted", "error"])
def test_a_restored_volume_deleted_since_does_not_count_as_the_earlier_rollback(
    h: Harness, state: str
):
    volume = h.volume(size=10)
    item, ctx, params, data = _prepared(h, volume)
    SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)
    rollback_ctx = h.ctx(checkpoints={})
    first = SNAPSHOT_AND_DELETE.rollback(rollback_ctx, data, params)

    def deleting(parsed, **_):
        for entry in parsed.get("Volumes", []):
            if entry["VolumeId"] == first.response["VolumeId"]:
                entry["State"] = state

    h.events.register("after-call.ec2.DescribeVolumes", deleting)

    second = SNAPSHOT_AND_DELETE.rollback(rollback_ctx, data, params)

    assert not second.already_done
    assert second.response["VolumeId"] != first.response["VolumeId"]
    assert h.count("CreateVolume") == 2


# --- waiting for the snapshot: the rule's wait parameters, and what a person reads ------------


def _describes_by_id(h: Harness) -> int:
    """The DescribeSnapshots calls of the waiter (by snapshot ID; the tag search has none)."""
    return len(
        [r for r in h.recorder.calls(operation="DescribeSnapshots") if "SnapshotIds" in r.params]
    )


def test_a_snapshot_still_pending_is_waited_for_as_the_rule_says_then_retried_later(h: Harness):
    """``wait_max_attempts`` reads and ``wait_delay_seconds`` between them, not the waiter's
    own 40 reads 15 s apart; then a recoverable error the ledger records in full."""
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    _snapshot_state_seen_as(h, "pending")
    params = SNAPSHOT_AND_DELETE.parameters({"wait_delay_seconds": 0.2, "wait_max_attempts": 3})
    started = time.monotonic()

    with pytest.raises(aws.AwsError) as failed:
        SNAPSHOT_AND_DELETE.prepare(h.ctx(), item, params, {})

    assert str(failed.value) == (
        "ec2:DescribeSnapshots in us-east-1 failed (recoverable, WaiterTimedOut): "
        "snapshot_completed: Waiter SnapshotCompleted failed: Max attempts exceeded"
    )
    assert _describes_by_id(h) == 3
    assert 0.4 <= time.monotonic() - started < 10  # two delays of 0.2 s, never 15 s
    assert h.volume_exists(volume) and h.count("DeleteVolume") == 0


def test_a_snapshot_that_failed_while_waited_for_is_a_terminal_error_in_full(h: Harness):
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    _snapshot_state_seen_as(h, "error")

    with pytest.raises(aws.AwsError) as failed:
        SNAPSHOT_AND_DELETE.prepare(h.ctx(), item, h.params(SNAPSHOT_AND_DELETE), {})

    assert str(failed.value) == (
        "ec2:DescribeSnapshots in us-east-1 failed (terminal, WaiterFailed): snapshot_completed: "
        "Waiter SnapshotCompleted failed: Waiter encountered a terminal failure state: For "
        'expression "Snapshots[].State" we matched expected path: "error" at least once'
    )


def test_a_read_lost_while_waiting_is_a_recoverable_error_of_that_read(h: Harness):
    """Not a waiter's verdict: the read itself failed, and the error says which read."""
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    ctx = h.ctx()

    def pending(parsed, **_):
        parsed["State"] = "pending"
        faults.lose_response(h.events, "ec2", "DescribeSnapshots")  # the waiter's first read

    h.events.register("after-call.ec2.CreateSnapshot", pending)

    with pytest.raises(aws.AwsError) as failed:
        SNAPSHOT_AND_DELETE.prepare(ctx, item, h.params(SNAPSHOT_AND_DELETE), {})

    assert failed.value.kind is aws.ErrorKind.RECOVERABLE
    assert str(failed.value).startswith(
        "ec2:DescribeSnapshots in us-east-1 failed (recoverable, ReadTimeoutError): "
    )
    assert h.checkpoints["snapshot_id"]  # the rerun finds this snapshot
    assert h.volume_exists(volume) and h.count("DeleteVolume") == 0


# --- snapshots an earlier attempt of this action left ------------------------------------------


def _earlier_snapshots(
    h: Harness,
    volume: str,
    action_id: uuid.UUID,
    states: list[str],
    reason: str | None = "disk fault",
) -> list[str]:
    """Snapshots of ``volume`` tagged with ``action_id`` (as an interrupted attempt leaves them),
    one a second apart from 2026-01-01, reported by AWS in ``states``, newest first; a failed
    one with ``reason`` as its StateMessage (none when None)."""
    ids = [
        h.ec2.create_snapshot(
            VolumeId=volume,
            TagSpecifications=tags_spec("snapshot", {ACTION_TAG: str(action_id)}),
        )["SnapshotId"]
        for _ in states
    ]
    seen = {
        snapshot_id: (state, datetime(2026, 1, 1, 0, 0, n, tzinfo=UTC))
        for n, (snapshot_id, state) in enumerate(zip(ids, states, strict=True))
    }

    def as_seen(parsed, **_):
        for entry in parsed.get("Snapshots", []):
            if entry["SnapshotId"] in seen:
                entry["State"], entry["StartTime"] = seen[entry["SnapshotId"]]
                if entry["State"] == "error" and reason is not None:
                    entry["StateMessage"] = reason
        parsed["Snapshots"] = parsed.get("Snapshots", [])[::-1]

    h.events.register("after-call.ec2.DescribeSnapshots", as_seen)
    return ids


def test_of_the_snapshots_an_earlier_attempt_left_the_oldest_usable_one_is_kept(h: Harness):
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    action_id = uuid.uuid4()
    failed, oldest_usable, newer = _earlier_snapshots(
        h, volume, action_id, ["error", "completed", "completed"]
    )

    data = SNAPSHOT_AND_DELETE.prepare(h.ctx(action_id), item, h.params(SNAPSHOT_AND_DELETE), {})

    assert data["snapshot_id"] == oldest_usable, (failed, oldest_usable, newer)
    assert h.checkpoints["snapshot_id"] == oldest_usable
    assert h.count("CreateSnapshot") == 0


@pytest.mark.parametrize(
    ("reason", "said"), [("disk fault", "disk fault"), (None, "no reason given")]
)
def test_a_failed_snapshot_an_earlier_attempt_left_is_reported_not_taken_again(
    h: Harness, reason: str | None, said: str
):
    """Reported for a person to delete, instead of a second copy of the volume's data, with
    AWS's reason for the failure when it gives one."""
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    action_id = uuid.uuid4()
    (failed,) = _earlier_snapshots(h, volume, action_id, ["error"], reason)

    with pytest.raises(aws.AwsError) as refused:
        SNAPSHOT_AND_DELETE.prepare(h.ctx(action_id), item, h.params(SNAPSHOT_AND_DELETE), {})

    assert str(refused.value) == (
        "ec2:CreateSnapshot in us-east-1 failed (terminal, SnapshotFailed): snapshot "
        f"{failed} failed ({said}); the volume was not deleted. Delete the snapshot and "
        "retry the action"
    )
    assert h.checkpoints["snapshot_id"] == failed
    assert h.count("CreateSnapshot") == 0
    assert h.volume_exists(volume) and h.count("DeleteVolume") == 0


# --- what a person reads, and the guards around the delete -------------------------------------


def test_a_volume_attached_to_two_instances_names_both(h: Harness):
    """An io1/io2 multi-attach volume can be attached to several instances (moto keeps one
    attachment: the second is added to the DescribeVolumes answer)."""
    volume = h.volume(size=10, volume_type="io1", Iops=1000, MultiAttachEnabled=True)
    item = h.item("ebs-volume", volume)
    first, second = h.instance(), h.instance()
    h.ec2.attach_volume(VolumeId=volume, InstanceId=first, Device="/dev/sdf")

    def also_attached(parsed, **_):
        for entry in parsed.get("Volumes", []):
            entry["Attachments"].append({**entry["Attachments"][0], "InstanceId": second})

    h.events.register("after-call.ec2.DescribeVolumes", also_attached)

    result = SNAPSHOT_AND_DELETE.recheck(h.ctx(), item)

    assert not result.still_waste
    assert result.reason == f"volume is attached to {first}, {second} again"
    assert result.facts["attached_to"] == f"{first}, {second}"


def test_prepare_of_a_volume_gone_with_nothing_recorded_says_so_in_full(h: Harness):
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    h.ec2.delete_volume(VolumeId=volume)

    with pytest.raises(aws.AwsError) as failed:
        SNAPSHOT_AND_DELETE.prepare(h.ctx(), item, h.params(SNAPSHOT_AND_DELETE), {})

    assert str(failed.value) == (
        "ec2:CreateSnapshot in us-east-1 failed (not-found, InvalidVolume.NotFound): volume "
        f"{volume} no longer exists and this action recorded no snapshot and configuration of "
        "it: nothing to snapshot or delete"
    )


def test_execute_refuses_while_the_snapshot_is_not_completed(h: Harness):
    """The undo copy must be whole before the data goes: a snapshot still ``pending`` (or in
    ``error``) when execute runs stops it, with nothing deleted."""
    volume = h.volume()
    item, ctx, params, data = _prepared(h, volume)

    def pending(parsed, **_):
        for entry in parsed.get("Snapshots", []):
            entry["State"] = "pending"

    h.events.register("after-call.ec2.DescribeSnapshots", pending)

    with pytest.raises(ebs_volume.MissingRollbackData) as failed:
        SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)

    assert str(failed.value) == (
        "ec2:DeleteVolume in us-east-1 failed (terminal, MissingRollbackData): refusing to "
        f"delete {volume}: its snapshot {data['snapshot_id']} is pending; run prepare again"
    )
    assert h.volume_exists(volume) and h.count("DeleteVolume") == 0


def test_rollback_of_a_single_attach_unencrypted_io1_volume_asks_for_neither(h: Harness):
    volume = h.volume(size=10, volume_type="io1", Iops=1000)
    item, ctx, params, data = _prepared(h, volume)
    SNAPSHOT_AND_DELETE.execute(ctx, item, params, data)

    SNAPSHOT_AND_DELETE.rollback(h.ctx(checkpoints={}), data, params)

    assert (data["encrypted"], data["kms_key_id"], data["multi_attach"]) == (False, None, False)
    (create,) = h.recorder.calls(operation="CreateVolume")
    assert create.params["Iops"] == 1000
    assert not {"Throughput", "Encrypted", "KmsKeyId", "MultiAttachEnabled"} & set(create.params)


# --- the earlier attempt's snapshot: by the ledger's ID first, and only our own ----------------


def test_a_recorded_snapshot_whose_tag_was_removed_is_still_reused(h: Harness):
    """The ledger's snapshot ID finds the undo copy even when the tag search cannot: no second
    copy of the volume's data is taken."""
    item, ctx, params, first = _prepared(h, h.volume())
    h.ec2.delete_tags(Resources=[first["snapshot_id"]], Tags=[{"Key": ACTION_TAG}])

    again = SNAPSHOT_AND_DELETE.prepare(ctx, item, params, dict(h.checkpoints))

    assert again["snapshot_id"] == first["snapshot_id"]
    assert h.count("CreateSnapshot") == 1
    assert [s["SnapshotId"] for s in h.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]] == [
        first["snapshot_id"]
    ]


FOREIGN_OWNER = "999999999999"


def _a_foreign_snapshot_with_our_tag(h: Harness, action_id: uuid.UUID) -> str:
    """AWS's ``OwnerIds`` (moto ignores it): a public snapshot of another account, tagged with
    this action's ID and older than ours, is in every DescribeSnapshots search that does not keep
    only the owners named (``self`` being this account)."""
    foreign_id = "snap-0f0f0f0f0f0f0f0f0"

    def remember_request(params, context, **_):
        context["owner_ids"] = params.get("OwnerIds")
        context["snapshot_ids"] = params.get("SnapshotIds")

    def as_aws_answers(parsed, context, **_):
        if context.get("snapshot_ids"):
            return  # a read by ID: the foreign snapshot is not asked for
        owners = context.get("owner_ids")
        entries = [*parsed.get("Snapshots", [])]
        entries.append(
            {
                "SnapshotId": foreign_id,
                "OwnerId": FOREIGN_OWNER,
                "State": "completed",
                "StartTime": datetime(2020, 1, 1, tzinfo=UTC),
                "Tags": [{"Key": ACTION_TAG, "Value": str(action_id)}],
            }
        )
        if owners is not None:
            entries = [
                s
                for s in entries
                if s.get("OwnerId") in owners
                or ("self" in owners and s.get("OwnerId") != FOREIGN_OWNER)
            ]
        parsed["Snapshots"] = entries

    h.events.register("before-parameter-build.ec2.DescribeSnapshots", remember_request)
    h.events.register("after-call.ec2.DescribeSnapshots", as_aws_answers)
    return foreign_id


def test_another_accounts_snapshot_with_the_same_tag_is_never_taken_as_the_undo_copy(h: Harness):
    """A rerun after a crash before the checkpoint searches for its snapshot by tag, among this
    account's snapshots only: it finds its own, not a stranger's older public one."""
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    action_id = uuid.uuid4()
    params = h.params(SNAPSHOT_AND_DELETE)
    first = SNAPSHOT_AND_DELETE.prepare(h.ctx(action_id), item, params, {})
    foreign = _a_foreign_snapshot_with_our_tag(h, action_id)

    again = SNAPSHOT_AND_DELETE.prepare(h.ctx(action_id, checkpoints={}), item, params, {})

    assert again["snapshot_id"] == first["snapshot_id"] != foreign
    assert h.count("CreateSnapshot") == 1
    searches = [
        r.params
        for r in h.recorder.calls(operation="DescribeSnapshots")
        if "SnapshotIds" not in r.params
    ]
    assert searches and all(s.get("OwnerIds") == ["self"] for s in searches)


def test_an_earlier_snapshot_already_completed_is_reused_without_waiting(h: Harness):
    """A rerun whose snapshot AWS already reports ``completed`` reads it once (by the ledger's
    ID) and waits for nothing: no waiter reads follow."""
    item, ctx, params, first = _prepared(h, h.volume())
    reads_before = _describes_by_id(h)

    again = SNAPSHOT_AND_DELETE.prepare(ctx, item, params, dict(h.checkpoints))

    assert again == first
    assert _describes_by_id(h) - reads_before == 1
    assert h.count("CreateSnapshot") == 1


# --- the re-check's verdicts, as the ledger records them ----------------------------------------


def _gp3_volume(h: Harness) -> str:
    return h.volume(size=20, volume_type="gp3", tags={"team": "data"}, Iops=4000, Throughput=200)


def test_recheck_passes_saying_the_volume_is_still_waste(h: Harness):
    item = h.item("ebs-volume", _gp3_volume(h))

    result = SNAPSHOT_AND_DELETE.recheck(h.ctx(), item)

    assert (result.still_waste, result.reason) == (
        True,
        "still unattached, unprotected and unchanged",
    )


def test_recheck_refuses_a_protected_volume_with_what_it_saw(h: Harness):
    volume = _gp3_volume(h)
    item = h.item("ebs-volume", volume)
    h.ec2.create_tags(Resources=[volume], Tags=[{"Key": "cloudsweep.io/protect", "Value": "true"}])

    result = SNAPSHOT_AND_DELETE.recheck(h.ctx(), item)

    assert (result.still_waste, result.reason) == (
        False,
        "volume is now protected by tag cloudsweep.io/protect=true",
    )
    assert result.facts == {
        "state": "available",
        "size": 20,
        "volume_type": "gp3",
        "iops": 4000,
        "throughput": 200,
        "tags": {"team": "data", "cloudsweep.io/protect": "true"},
    }


def test_recheck_refuses_a_volume_changed_twice_naming_each_change_with_what_it_saw(h: Harness):
    volume = _gp3_volume(h)
    item = h.item("ebs-volume", volume)
    h.ec2.modify_volume(VolumeId=volume, Size=30, Iops=5000)

    result = SNAPSHOT_AND_DELETE.recheck(h.ctx(), item)

    assert (result.still_waste, result.reason) == (
        False,
        "volume changed since the scan: size 20 -> 30, iops 4000 -> 5000",
    )
    assert result.facts == {
        "state": "available",
        "size": 30,
        "volume_type": "gp3",
        "iops": 5000,
        "throughput": 200,
        "tags": {"team": "data"},
    }
