"""The ebs-gp3-candidate cleanup action (modify-to-gp3) against moto over HTTP."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import ebs_gp3_candidate
from cloudsweep.cleanup.base import Outcome, Recheck
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


# --- what the re-check decides --------------------------------------------------------------


def _modifications_seen_as(h: StorageHarness, *entries: dict) -> None:
    """DescribeVolumesModifications answers those of ``entries`` whose volume it is asked about
    (every one when no VolumeIds are given), as AWS filters them (moto completes modifications at
    once and AWS keeps them ``modifying`` or ``optimizing`` for minutes to hours)."""
    asked = "cloudsweep-test-asked-volume-ids"

    def ask(params: dict, context: dict, **_: object) -> None:
        context[asked] = params.get("VolumeIds")

    def report(parsed: dict, context: dict, **_: object) -> None:
        volumes = context.get(asked)
        parsed["VolumesModifications"] = [
            dict(e) for e in entries if volumes is None or e["VolumeId"] in volumes
        ]

    h.events.register("provide-client-params.ec2.DescribeVolumesModifications", ask)
    h.events.register("after-call.ec2.DescribeVolumesModifications", report)


def test_recheck_reports_the_live_volume_and_tags(h: StorageHarness):
    volume = h.attached_volume(size=100)
    item = h.item("ebs-gp3-candidate", volume)
    h.ec2.create_tags(Resources=[volume], Tags=[{"Key": "owner", "Value": "ops"}])

    result = MODIFY.recheck(h.ctx(), item)

    assert result.still_waste, result.reason
    assert result.facts == {
        "volume_type": "gp2",
        "size": 100,
        "iops": volume_of(h, volume).get("Iops"),
        "tags": {"owner": "ops"},
    }


def test_recheck_refuses_a_changed_type_or_iops(h: StorageHarness):
    volume = h.attached_volume(volume_type="io1", size=200, Iops=5000)
    item = h.item("ebs-gp3-candidate", volume)
    assert MODIFY.recheck(h.ctx(), item).still_waste
    h.ec2.modify_volume(VolumeId=volume, Iops=6000)

    iops = MODIFY.recheck(h.ctx(), item)

    assert not iops.still_waste
    assert iops.reason == "volume changed since the scan: iops 5000 -> 6000"
    h.ec2.modify_volume(VolumeId=volume, VolumeType="io2", Iops=5000)
    kind = MODIFY.recheck(h.ctx(), item)
    assert kind.reason == "volume changed since the scan: type io1 -> io2"


def test_recheck_under_the_scans_own_protection_tag_refuses(h: StorageHarness):
    volume = h.attached_volume()
    item = h.item("ebs-gp3-candidate", volume)
    h.ec2.create_tags(Resources=[volume], Tags=[{"Key": "FinOps/Keep", "Value": "y"}])
    ctx = dataclasses.replace(h.ctx(), protection_tags=("finops/keep",))

    result = MODIFY.recheck(ctx, item)

    assert result.reason == "volume is now protected by tag FinOps/Keep=y"


def test_a_finding_without_a_gp3_target_is_refused(h: StorageHarness):
    volume = h.attached_volume()
    item = h.item("ebs-gp3-candidate", volume)
    untargeted = dataclasses.replace(
        item, resource_details={k: v for k, v in item.resource_details.items() if k != "target"}
    )

    result = MODIFY.recheck(h.ctx(), untargeted)

    assert not result.still_waste
    assert result.reason == "the finding has no gp3 target: scan again"


@pytest.mark.parametrize("state", ["modifying", "optimizing"])
def test_a_modification_under_way_is_refused(h: StorageHarness, state: str):
    volume = h.attached_volume()
    item = h.item("ebs-gp3-candidate", volume)
    _modifications_seen_as(
        h, {"VolumeId": volume, "ModificationState": state, "StartTime": utcnow()}
    )

    result = MODIFY.recheck(h.ctx(), item)

    assert not result.still_waste
    assert result.reason == f"a modification of the volume is {state}"


def test_only_the_latest_modification_counts(h: StorageHarness):
    volume = h.attached_volume()
    item = h.item("ebs-gp3-candidate", volume)
    now = utcnow()
    _modifications_seen_as(
        h,
        {"VolumeId": volume, "ModificationState": "completed", "StartTime": now},
        {
            "VolumeId": volume,
            "ModificationState": "optimizing",
            "StartTime": now - timedelta(days=9),
        },
    )

    assert MODIFY.recheck(h.ctx(), item).still_waste


# --- prepare and execute ------------------------------------------------------------------------


def test_prepare_records_the_type_size_and_performance(h: StorageHarness):
    io1 = h.attached_volume(volume_type="io1", size=200, Iops=5000)
    gp2 = h.attached_volume(size=100)

    _, _, _, io1_data = prepared(h, io1)
    _, _, _, gp2_data = prepared(h, gp2)

    assert {
        k: io1_data[k] for k in ("volume_id", "original_volume_type", "size", "original_iops")
    } == {
        "volume_id": io1,
        "original_volume_type": "io1",
        "size": 200,
        "original_iops": 5000,
    }
    # gp2's IOPS are a baseline CreateVolume or ModifyVolume would refuse: not recorded.
    assert (gp2_data["original_volume_type"], gp2_data["original_iops"]) == ("gp2", None)
    assert "original_throughput" in gp2_data


def test_prepare_on_a_rerun_keeps_the_first_record(h: StorageHarness):
    volume = h.attached_volume()
    item, ctx, params, data = prepared(h, volume)
    MODIFY.execute(ctx, item, params, data)

    again = MODIFY.prepare(ctx, item, params, data)

    assert again == data and again["original_volume_type"] == "gp2"


def test_prepare_and_execute_of_a_deleted_volume_fail_not_found(h: StorageHarness):
    scanned = h.item("ebs-gp3-candidate", h.attached_volume())
    ctx, params = h.ctx(), h.params(MODIFY)
    data = MODIFY.prepare(ctx, scanned, params, {})
    volume = h.volume()
    h.ec2.delete_volume(VolumeId=volume)
    # The scan's finding, for a volume deleted since.
    item = dataclasses.replace(scanned, resource_id=volume)

    with pytest.raises(aws.AwsError) as in_prepare:
        MODIFY.prepare(ctx, item, params, {})
    with pytest.raises(aws.AwsError) as in_execute:
        MODIFY.execute(ctx, item, params, data)

    for failed in (in_prepare.value, in_execute.value):
        assert (failed.kind, failed.code) == (aws.ErrorKind.NOT_FOUND, "InvalidVolume.NotFound")
    assert h.count("ModifyVolume") == 0


def test_a_modification_to_gp3_under_way_is_done(h: StorageHarness):
    volume = h.attached_volume()
    item, ctx, params, data = prepared(h, volume)
    _modifications_seen_as(
        h,
        {
            "VolumeId": volume,
            "ModificationState": "optimizing",
            "TargetVolumeType": "gp3",
            "StartTime": utcnow(),
        },
    )

    outcome = MODIFY.execute(ctx, item, params, data)

    assert outcome.already_done
    assert outcome.response == {"VolumeId": volume, "VolumeType": "gp3"}
    assert h.count("ModifyVolume") == 0


@pytest.mark.parametrize(
    "modification",
    [
        {"ModificationState": "optimizing", "TargetVolumeType": "io2"},
        {"ModificationState": "completed", "TargetVolumeType": "gp3"},
    ],
)
def test_another_modification_is_not_taken_for_this_one(h: StorageHarness, modification: dict):
    volume = h.attached_volume()
    item, ctx, params, data = prepared(h, volume)
    _modifications_seen_as(h, {"VolumeId": volume, "StartTime": utcnow(), **modification})

    outcome = MODIFY.execute(ctx, item, params, data)

    assert not outcome.already_done
    assert h.count("ModifyVolume") == 1


def test_another_volumes_modification_to_gp3_under_way_is_not_taken_for_this_ones(
    h: StorageHarness,
) -> None:
    volume = h.attached_volume()
    bystander = h.attached_volume()
    item, ctx, params, data = prepared(h, volume)
    _modifications_seen_as(
        h,
        {
            "VolumeId": bystander,
            "ModificationState": "optimizing",
            "TargetVolumeType": "gp3",
            "StartTime": utcnow(),
        },
    )

    outcome = MODIFY.execute(ctx, item, params, data)

    assert not outcome.already_done
    assert volume_of(h, volume)["VolumeType"] == "gp3"
    assert volume_of(h, bystander)["VolumeType"] == "gp2"


def test_the_baseline_iops_aws_reports_for_gp2_are_not_recorded(h: StorageHarness) -> None:
    """AWS reports a gp2 volume's baseline IOPS (3 per GiB, at least 100; moto reports none):
    a baseline is no setting ModifyVolume could give back, so the record holds none."""

    def as_aws_reports(parsed: dict, **_: object) -> None:
        for seen in parsed.get("Volumes", []):
            if seen.get("VolumeType") == "gp2":
                seen["Iops"] = min(16000, max(100, 3 * seen["Size"]))

    h.events.register("after-call.ec2.DescribeVolumes", as_aws_reports)
    volume = h.attached_volume(size=100)

    _, _, _, data = prepared(h, volume)

    assert (data["original_volume_type"], data["original_iops"]) == ("gp2", None)


def test_execute_records_when_it_asked_and_says_what_it_changed(h: StorageHarness):
    volume = h.attached_volume(size=500)
    item, ctx, params, data = prepared(h, volume)
    asked = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    outcome = MODIFY.execute(at(ctx, asked), item, params, data)

    assert h.checkpoints["modify_requested_at"] == asked.isoformat()
    assert outcome.note == f"modified {volume} from gp2 to gp3 (3000 IOPS, 250 MiB/s)"


# --- rollback -----------------------------------------------------------------------------------


def test_the_cooldown_counts_from_the_later_of_the_request_and_the_modification(
    h: StorageHarness,
):
    volume = h.attached_volume()
    item, ctx, params, data = prepared(h, volume)
    MODIFY.execute(ctx, item, params, data)
    requested = utcnow() - timedelta(hours=10)  # as recorded; AWS saw a later start
    started = utcnow() - timedelta(hours=2)
    _modifications_seen_as(
        h, {"VolumeId": volume, "ModificationState": "completed", "StartTime": started}
    )
    data = {**data, "modify_requested_at": requested.isoformat()}

    with pytest.raises(aws.AwsError) as early:
        MODIFY.rollback(h.ctx(), data, params)

    until = started.astimezone(UTC) + timedelta(hours=6)
    assert early.value.code == "ModificationCooldown"
    assert f"after {until:%Y-%m-%d %H:%M} UTC" in str(early.value)
    assert h.count("ModifyVolume") == 1


def test_rollback_waits_for_a_modification_still_under_way(h: StorageHarness):
    volume = h.attached_volume()
    item, ctx, params, data = prepared(h, volume)
    MODIFY.execute(ctx, item, params, data)
    long_ago = utcnow() - timedelta(days=1)
    _modifications_seen_as(
        h, {"VolumeId": volume, "ModificationState": "optimizing", "StartTime": long_ago}
    )
    data = {**data, "modify_requested_at": long_ago.isoformat()}

    with pytest.raises(aws.AwsError) as waiting:
        MODIFY.rollback(h.ctx(), data, params)

    assert (waiting.value.kind, waiting.value.code) == (
        aws.ErrorKind.RECOVERABLE,
        "IncorrectModificationState",
    )
    assert "still optimizing" in str(waiting.value)
    assert volume_of(h, volume)["VolumeType"] == "gp3"


@pytest.mark.parametrize("volume_type", ["io1", "io2"])
def test_rollback_restores_the_provisioned_iops_the_gp3_target_replaced(
    h: StorageHarness, volume_type: str
) -> None:
    """2,000 provisioned IOPS become gp3's 3,000 baseline; the rollback gives the volume back its
    type and its own 2,000 (moto, like AWS, keeps the IOPS a ModifyVolume does not name)."""
    volume = h.attached_volume(volume_type=volume_type, size=100, Iops=2000)
    item, ctx, params, data = prepared(h, volume)
    MODIFY.execute(ctx, item, params, data)
    assert (volume_of(h, volume)["VolumeType"], volume_of(h, volume)["Iops"]) == ("gp3", 3000)
    later = at(h.ctx(), utcnow() + timedelta(hours=7))

    outcome = MODIFY.rollback(later, {**data, **h.checkpoints}, params)

    assert not outcome.already_done
    seen = volume_of(h, volume)
    assert (seen["VolumeType"], seen["Iops"], seen["Size"]) == (volume_type, 2000, 100)
    assert [r.params for r in h.recorder.calls(operation="ModifyVolume")][1:] == [
        {"VolumeId": volume, "VolumeType": volume_type, "Iops": 2000}
    ]


def test_rollback_without_the_recorded_request_time_goes_by_aws_alone(h: StorageHarness) -> None:
    """A record without ``modify_requested_at`` (written before it was recorded): the start of
    the modification AWS lists opens the cooldown; once AWS lists none, the rollback runs."""
    volume = h.attached_volume()
    item, ctx, params, data = prepared(h, volume)
    MODIFY.execute(ctx, item, params, data)
    assert "modify_requested_at" not in data
    (modification,) = h.ec2.describe_volumes_modifications(VolumeIds=[volume])[
        "VolumesModifications"
    ]
    until = modification["StartTime"].astimezone(UTC) + timedelta(hours=6)

    with pytest.raises(aws.AwsError) as early:
        MODIFY.rollback(at(h.ctx(), utcnow() + timedelta(hours=1)), data, params)
    assert early.value.code == "ModificationCooldown"
    assert f"at or after {until:%Y-%m-%d %H:%M} UTC" in str(early.value)
    assert volume_of(h, volume)["VolumeType"] == "gp3"
    _modifications_seen_as(h)  # AWS forgets a volume's modifications after a while

    done = MODIFY.rollback(h.ctx(), data, params)

    assert not done.already_done
    assert volume_of(h, volume)["VolumeType"] == "gp2"
    assert h.count("ModifyVolume") == 2


def test_rollback_to_gp2_asks_for_the_type_alone(h: StorageHarness):
    volume = h.attached_volume()
    item, ctx, params, data = prepared(h, volume)
    MODIFY.execute(ctx, item, params, data)
    later = at(h.ctx(), utcnow() + timedelta(hours=7))

    outcome = MODIFY.rollback(later, {**data, **h.checkpoints}, params)

    assert outcome.note == f"modified {volume} back to gp2"
    assert [r.params for r in h.recorder.calls(operation="ModifyVolume")][1:] == [
        {"VolumeId": volume, "VolumeType": "gp2"}
    ]
    assert volume_of(h, volume)["VolumeType"] == "gp2"


# --- reasons, records and errors, word for word ---------------------------------------------


def test_recheck_says_why_in_full(h: StorageHarness):
    volume = h.attached_volume(size=100)
    item = h.item("ebs-gp3-candidate", volume)
    missing = dataclasses.replace(item, resource_id="vol-0123456789abcdef0")
    iops = volume_of(h, volume).get("Iops")
    facts = {"volume_type": "gp2", "size": 100, "iops": iops, "tags": {}}

    passing = MODIFY.recheck(h.ctx(), item)
    gone = MODIFY.recheck(h.ctx(), missing)
    h.ec2.create_tags(Resources=[volume], Tags=[{"Key": "cloudsweep.io/protect", "Value": "1"}])
    protected = MODIFY.recheck(h.ctx(), item)
    h.ec2.delete_tags(Resources=[volume], Tags=[{"Key": "cloudsweep.io/protect"}])
    h.ec2.modify_volume(VolumeId=volume, Size=200)
    resized = MODIFY.recheck(h.ctx(), item)
    h.ec2.modify_volume(VolumeId=volume, VolumeType="gp3")
    converted = MODIFY.recheck(h.ctx(), item)

    assert passing == Recheck(True, "still not gp3, unprotected and unchanged", facts)
    assert gone == Recheck(False, "volume no longer exists", {"gone": True})
    assert protected == Recheck(
        False,
        "volume is now protected by tag cloudsweep.io/protect=1",
        {**facts, "tags": {"cloudsweep.io/protect": "1"}},
    )
    assert resized.reason == "volume changed since the scan: size 100 -> 200"
    assert converted == Recheck(
        False,
        "volume is gp3 already",
        {**converted.facts, "volume_type": "gp3", "size": 200, "gone": True},
    )


def test_every_refusal_carries_the_live_volume_as_its_facts(h: StorageHarness) -> None:
    """What the ledger keeps of a refused attempt (``{"recheck": facts}``): the volume as the
    re-check saw it, with every change since the scan named in the reason."""
    volume = h.attached_volume(size=100)
    item = h.item("ebs-gp3-candidate", volume)
    untargeted = dataclasses.replace(
        item, resource_details={k: v for k, v in item.resource_details.items() if k != "target"}
    )
    iops = volume_of(h, volume).get("Iops")
    facts = {"volume_type": "gp2", "size": 100, "iops": iops, "tags": {}}

    no_target = MODIFY.recheck(h.ctx(), untargeted)
    _modifications_seen_as(
        h, {"VolumeId": volume, "ModificationState": "modifying", "StartTime": utcnow()}
    )
    under_way = MODIFY.recheck(h.ctx(), item)
    h.ec2.modify_volume(VolumeId=volume, Size=200, VolumeType="io1", Iops=4000)
    changed = MODIFY.recheck(h.ctx(), item)

    assert no_target == Recheck(False, "the finding has no gp3 target: scan again", facts)
    assert under_way == Recheck(False, "a modification of the volume is modifying", facts)
    assert changed == Recheck(
        False,
        "volume changed since the scan: size 100 -> 200, type gp2 -> io1",
        {"volume_type": "io1", "size": 200, "iops": 4000, "tags": {}},
    )


def test_the_latest_modification_counts_in_any_order(h: StorageHarness):
    """AWS lists a volume's modifications in no promised order: the latest by start time
    decides, whether it comes first or last."""
    volume = h.attached_volume()
    item = h.item("ebs-gp3-candidate", volume)
    now = utcnow()
    old_under_way = {"VolumeId": volume, "ModificationState": "optimizing", "StartTime": now}
    old_under_way["StartTime"] = now - timedelta(days=9)
    new_done = {"VolumeId": volume, "ModificationState": "completed", "StartTime": now}
    _modifications_seen_as(h, old_under_way, new_done)

    assert MODIFY.recheck(h.ctx(), item).still_waste


def test_a_volume_never_modified_is_not_refused_and_other_errors_are_raised(
    h: StorageHarness,
):
    """AWS answers "not found" for a volume that was never modified; any other failure of
    DescribeVolumesModifications tells nothing and is raised."""
    volume = h.attached_volume()
    item = h.item("ebs-gp3-candidate", volume)
    faults.fail_with(
        h.events,
        "before-send.ec2.DescribeVolumesModifications",
        status=400,
        body=faults.ec2_error_body("InvalidVolumeModification.NotFound", "never modified"),
        times=1,
    )
    never_modified = MODIFY.recheck(h.ctx(), item)
    faults.fail_with(
        h.events,
        "before-send.ec2.DescribeVolumesModifications",
        status=403,
        body=faults.ec2_error_body("UnauthorizedOperation", "not allowed"),
        times=1,
    )

    with pytest.raises(aws.AwsError) as denied:
        MODIFY.recheck(h.ctx(), item)

    assert never_modified.still_waste, never_modified.reason
    assert denied.value.code == "UnauthorizedOperation"


def test_dry_run_asks_for_the_exact_modification(h: StorageHarness):
    volume = h.attached_volume(size=500)
    item = h.item("ebs-gp3-candidate", volume)

    MODIFY.dry_run(h.ctx(), item, h.params(MODIFY))

    assert [r.params for r in h.mutating()] == [
        {"VolumeId": volume, "VolumeType": "gp3", "Iops": 3000, "Throughput": 250, "DryRun": True}
    ]


def test_prepare_records_exactly_what_the_rollback_needs(h: StorageHarness):
    volume = h.attached_volume(volume_type="io1", size=200, Iops=5000)
    seen = volume_of(h, volume)

    _, _, _, data = prepared(h, volume)

    assert data == {
        "volume_id": volume,
        "original_volume_type": "io1",
        "size": 200,
        "original_iops": 5000,
        "original_throughput": seen.get("Throughput"),
        "target_iops": data["target_iops"],
        "target_throughput": data["target_throughput"],
    }
    assert data["target_iops"] >= 5000


def test_a_deleted_volume_fails_with_the_whole_message(h: StorageHarness):
    scanned = h.item("ebs-gp3-candidate", h.attached_volume())
    ctx, params = h.ctx(), h.params(MODIFY)
    data = MODIFY.prepare(ctx, scanned, params, {})
    volume = h.volume()
    h.ec2.delete_volume(VolumeId=volume)
    item = dataclasses.replace(scanned, resource_id=volume)

    failures = []
    for step in (
        lambda: MODIFY.prepare(ctx, item, params, {}),
        lambda: MODIFY.execute(ctx, item, params, data),
        lambda: MODIFY.rollback(ctx, {**data, "volume_id": volume}, params),
    ):
        with pytest.raises(aws.AwsError) as failed:
            step()
        failures.append(str(failed.value))

    assert failures == [
        f"ec2:DescribeVolumes in us-east-1 failed (not-found, InvalidVolume.NotFound): {volume} "
        "is gone before its configuration was recorded",
        f"ec2:ModifyVolume in us-east-1 failed (not-found, InvalidVolume.NotFound): {volume} is "
        "gone before its configuration was recorded",
        f"ec2:ModifyVolume in us-east-1 failed (terminal, InvalidVolume.NotFound): volume "
        f"{volume} no longer exists: there is nothing to modify back",
    ]


def test_the_cooldown_and_the_modification_under_way_say_when_in_full(h: StorageHarness):
    volume = h.attached_volume()
    item, ctx, params, data = prepared(h, volume)
    MODIFY.execute(ctx, item, params, data)
    asked = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    data = {**data, "modify_requested_at": asked.isoformat()}
    _modifications_seen_as(
        h, {"VolumeId": volume, "ModificationState": "optimizing", "StartTime": asked}
    )

    with pytest.raises(aws.AwsError) as early:
        MODIFY.rollback(at(ctx, asked + timedelta(hours=5)), data, params)
    with pytest.raises(aws.AwsError) as under_way:
        MODIFY.rollback(at(ctx, asked + timedelta(hours=7)), data, params)

    assert str(early.value) == (
        "ec2:ModifyVolume in us-east-1 failed (recoverable, ModificationCooldown): volume "
        f"{volume} was modified at 2026-12-01 09:30 UTC and AWS allows the next modification of "
        "a volume six hours later: run this rollback again at or after 2026-12-01 15:30 UTC"
    )
    assert str(under_way.value) == (
        "ec2:ModifyVolume in us-east-1 failed (recoverable, IncorrectModificationState): volume "
        f"{volume} is still optimizing: run the rollback again when the modification has "
        "completed"
    )


def test_the_cooldown_is_told_in_utc_whatever_the_local_zone(
    h: StorageHarness, monkeypatch: pytest.MonkeyPatch
):
    volume = h.attached_volume()
    item, ctx, params, data = prepared(h, volume)
    MODIFY.execute(ctx, item, params, data)
    asked = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    data = {**data, "modify_requested_at": asked.isoformat()}
    _modifications_seen_as(h)
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        with pytest.raises(aws.AwsError) as early:
            MODIFY.rollback(at(ctx, asked + timedelta(hours=1)), data, params)
    finally:
        monkeypatch.undo()
        time.tzset()

    assert "modified at 2026-12-01 09:30 UTC" in str(early.value)
    assert "at or after 2026-12-01 15:30 UTC" in str(early.value)


def test_the_cooldown_counts_from_the_request_alone_and_ends_at_six_hours(h: StorageHarness):
    """Without a modification AWS still lists (it forgets them), the recorded request starts
    the cooldown; at six hours exactly the rollback runs."""
    volume = h.attached_volume()
    item, ctx, params, data = prepared(h, volume)
    MODIFY.execute(ctx, item, params, data)
    asked = utcnow() - timedelta(hours=1)
    data = {**data, "modify_requested_at": asked.isoformat()}
    _modifications_seen_as(h)

    with pytest.raises(aws.AwsError) as early:
        MODIFY.rollback(at(ctx, asked + timedelta(hours=5, minutes=59)), data, params)
    done = MODIFY.rollback(at(ctx, asked + timedelta(hours=6)), data, params)

    assert early.value.code == "ModificationCooldown"
    assert not done.already_done and volume_of(h, volume)["VolumeType"] == "gp2"


def test_a_second_execute_finds_the_volume_gp3_and_says_an_earlier_attempt_did_it(
    h: StorageHarness,
) -> None:
    """The note is what the audit trail shows for the resumed attempt."""
    volume = h.attached_volume()
    item, ctx, params, data = prepared(h, volume)
    MODIFY.execute(ctx, item, params, data)

    again = MODIFY.execute(ctx, item, params, data)

    assert again == Outcome(
        {"VolumeId": volume, "VolumeType": "gp3"},
        already_done=True,
        note=f"{volume} was already modified to gp3 (an earlier attempt)",
    )
    assert h.count("ModifyVolume") == 1


def test_a_rollback_of_a_volume_already_back_says_so(h: StorageHarness):
    volume = h.attached_volume(volume_type="io1", size=200, Iops=5000)
    data = {"volume_id": volume, "original_volume_type": "io1", "original_iops": 5000}

    outcome = MODIFY.rollback(h.ctx(), data, h.params(MODIFY))

    assert outcome == Outcome(
        {"VolumeId": volume, "VolumeType": "io1"},
        already_done=True,
        note=f"{volume} is io1 already",
    )
    assert h.count("ModifyVolume") == 0
