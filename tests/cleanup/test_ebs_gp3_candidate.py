"""The ebs-gp3-candidate cleanup action (modify-to-gp3) against moto over HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import ebs_gp3_candidate
from cloudsweep.domain import ActionType, utcnow
from tests import faults

from .storage_helpers import StorageHarness, at

MODIFY = ebs_gp3_candidate.ModifyToGp3()


@pytest.fixture
def h(moto_endpoint: str) -> StorageHarness:
    return StorageHarness(moto_endpoint)


def volume_of(h: StorageHarness, volume_id: str) -> dict:
    return h.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]


def prepared(h: StorageHarness, volume_id: str):
    item = h.item("ebs-gp3-candidate", volume_id)
    ctx = h.ctx()
    params = h.params(MODIFY)
    return item, ctx, params, MODIFY.prepare(ctx, item, params, {})


def test_registered_with_its_contract():
    assert cleanup.get("ebs-gp3-candidate", "modify-to-gp3") is ebs_gp3_candidate.ModifyToGp3
    assert cleanup.actions_for("ebs-gp3-candidate") == ["modify-to-gp3"]
    assert MODIFY.action_type is ActionType.RESIZE
    assert MODIFY.rollback_possible
    assert "ec2:ModifyVolume" in MODIFY.permissions


def test_recheck_passes_refuses_and_says_gone(h: StorageHarness):
    volume = h.attached_volume()
    item = h.item("ebs-gp3-candidate", volume)
    assert MODIFY.recheck(h.ctx(), item).still_waste

    h.ec2.create_tags(Resources=[volume], Tags=[{"Key": "cloudsweep.io/protect", "Value": "1"}])
    protected = MODIFY.recheck(h.ctx(), item)
    assert not protected.still_waste and "protected by tag" in protected.reason

    h.ec2.delete_tags(Resources=[volume], Tags=[{"Key": "cloudsweep.io/protect"}])
    h.ec2.modify_volume(VolumeId=volume, Size=200)
    changed = MODIFY.recheck(h.ctx(), item)
    assert not changed.still_waste and "size 100 -> 200" in changed.reason

    h.ec2.modify_volume(VolumeId=volume, VolumeType="gp3")
    gone = MODIFY.recheck(h.ctx(), item)
    assert not gone.still_waste and gone.facts["gone"] is True
    assert h.count("ModifyVolume") == 0


def test_dry_run_asks_aws_and_changes_nothing(h: StorageHarness):
    volume = h.attached_volume()
    item = h.item("ebs-gp3-candidate", volume)

    result = MODIFY.dry_run(h.ctx(), item, h.params(MODIFY))

    assert result.would_succeed, result.message
    assert volume_of(h, volume)["VolumeType"] == "gp2"
    assert [r.params.get("DryRun") for r in h.mutating()] == [True]


def test_execute_modifies_to_gp3_with_matching_performance_and_only_that_volume(
    h: StorageHarness,
):
    volume = h.attached_volume(size=500)
    bystander = h.attached_volume(size=500)
    item, ctx, params, data = prepared(h, volume)

    assert data["original_volume_type"] == "gp2"
    assert (data["target_iops"], data["target_throughput"]) == (3000, 250)
    outcome = MODIFY.execute(ctx, item, params, data)

    assert not outcome.already_done
    seen = volume_of(h, volume)
    assert (seen["VolumeType"], seen["Iops"], seen["Throughput"], seen["Size"]) == (
        "gp3",
        3000,
        250,
        500,
    )
    assert seen["Attachments"], "the volume stays attached"
    assert volume_of(h, bystander)["VolumeType"] == "gp2"
    assert "modify_requested_at" in h.checkpoints
    assert [r.params for r in h.recorder.calls(operation="ModifyVolume")] == [
        {"VolumeId": volume, "VolumeType": "gp3", "Iops": 3000, "Throughput": 250}
    ]


def test_a_lost_modify_response_is_done_on_the_next_attempt_not_repeated(h: StorageHarness):
    volume = h.attached_volume()
    item, ctx, params, data = prepared(h, volume)
    lost = faults.lose_response(h.events, "ec2", "ModifyVolume")

    with pytest.raises(aws.AwsError) as failed:
        MODIFY.execute(ctx, item, params, data)
    assert aws.errors.outcome_unknown(failed.value)
    assert lost.hits == 1 and volume_of(h, volume)["VolumeType"] == "gp3"

    again = MODIFY.execute(ctx, item, params, MODIFY.prepare(ctx, item, params, {**data}))

    assert again.already_done
    assert h.count("ModifyVolume") == 1


def test_rollback_waits_out_the_six_hour_cooldown_then_restores_the_type(h: StorageHarness):
    volume = h.attached_volume(volume_type="io1", size=200, Iops=5000)
    item, ctx, params, data = prepared(h, volume)
    MODIFY.execute(ctx, item, params, data)
    data = {**data, **h.checkpoints}
    rollback_ctx = h.ctx(checkpoints={})

    with pytest.raises(aws.AwsError) as early:
        MODIFY.rollback(at(rollback_ctx, utcnow() + timedelta(hours=1)), data, params)

    assert early.value.code == "ModificationCooldown"
    assert early.value.kind is aws.ErrorKind.RECOVERABLE
    assert "run this rollback again at or after" in str(early.value)
    assert volume_of(h, volume)["VolumeType"] == "gp3"
    assert h.count("ModifyVolume") == 1

    later = at(rollback_ctx, utcnow() + timedelta(hours=6, minutes=5))
    outcome = MODIFY.rollback(later, data, params)

    assert not outcome.already_done
    seen = volume_of(h, volume)
    assert (seen["VolumeType"], seen["Iops"]) == ("io1", 5000)
    assert MODIFY.rollback(later, data, params).already_done
    assert h.count("ModifyVolume") == 2


def test_rollback_of_a_deleted_volume_fails_with_the_reason(h: StorageHarness):
    volume = h.volume()  # unattached, so it can be deleted; the item is made by hand
    data = {"volume_id": volume, "original_volume_type": "gp2"}
    h.ec2.delete_volume(VolumeId=volume)

    with pytest.raises(aws.AwsError, match="no longer exists"):
        MODIFY.rollback(h.ctx(), data, h.params(MODIFY))
