"""The ec2-stopped-instance cleanup action (snapshot-and-terminate) against moto over HTTP."""

from __future__ import annotations

import base64
import dataclasses
import gzip
from datetime import datetime
from decimal import Decimal

import pytest

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import ec2_stopped_instance
from cloudsweep.cleanup.base import ACTION_TAG, CleanupItem, Outcome, Recheck
from cloudsweep.domain import ActionType
from tests import faults

from .compute_helpers import instance, run_instance, seeder_client, state
from .ebs_helpers import Harness, tag_dict

TERMINATE = ec2_stopped_instance.SnapshotAndTerminateInstance()


@pytest.fixture
def h(moto_endpoint: str) -> Harness:
    return Harness(moto_endpoint)


def _network(h: Harness) -> tuple[str, str]:
    vpc = h.ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    subnet = h.ec2.create_subnet(
        VpcId=vpc, CidrBlock="10.30.1.0/24", AvailabilityZone="us-east-1a"
    )["Subnet"]["SubnetId"]
    group = h.ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    return subnet, group


def _stopped(h: Harness, **extra) -> str:
    instance_id = run_instance(h, **extra)
    h.ec2.stop_instances(InstanceIds=[instance_id])
    return instance_id


def _profile(h: Harness) -> str:
    iam = seeder_client(h, "iam")
    iam.create_role(RoleName="app", AssumeRolePolicyDocument="{}")
    profile = iam.create_instance_profile(InstanceProfileName="app")["InstanceProfile"]["Arn"]
    iam.add_role_to_instance_profile(InstanceProfileName="app", RoleName="app")
    return profile


def _images(h: Harness) -> list[dict]:
    return h.ec2.describe_images(Owners=["self"])["Images"]


def test_registered_with_its_contract():
    assert (
        cleanup.get("ec2-stopped-instance", "snapshot-and-terminate")
        is ec2_stopped_instance.SnapshotAndTerminateInstance
    )
    assert TERMINATE.action_type is ActionType.DELETE and TERMINATE.rollback_possible


def test_recheck_refusals_and_gone(h: Harness):
    ok = _stopped(h)
    assert TERMINATE.recheck(h.ctx(), h.item("ec2-stopped-instance", ok)).still_waste

    restarted = _stopped(h)
    item = h.item("ec2-stopped-instance", restarted)
    h.ec2.start_instances(InstanceIds=[restarted])
    assert "running, not stopped" in TERMINATE.recheck(h.ctx(), item).reason

    locked = _stopped(h)
    item = h.item("ec2-stopped-instance", locked)
    h.ec2.modify_instance_attribute(InstanceId=locked, DisableApiTermination={"Value": True})
    assert TERMINATE.recheck(h.ctx(), item).reason == "termination protection is on"

    grown = _stopped(h)
    item = h.item("ec2-stopped-instance", grown)
    volume = h.ec2.create_volume(AvailabilityZone="us-east-1a", Size=5)["VolumeId"]
    h.ec2.attach_volume(VolumeId=volume, InstanceId=grown, Device="/dev/sdg")
    assert "volumes changed since the scan" in TERMINATE.recheck(h.ctx(), item).reason

    grouped = _stopped(h, tags={"aws:autoscaling:groupName": "batch"})
    item = h.item("ec2-stopped-instance", grouped)
    assert "Auto Scaling group batch" in TERMINATE.recheck(h.ctx(), item).reason

    gone = _stopped(h)
    item = h.item("ec2-stopped-instance", gone)
    h.ec2.terminate_instances(InstanceIds=[gone])
    assert TERMINATE.recheck(h.ctx(), item).facts.get("gone")
    assert not h.mutating()


def test_dry_run_changes_nothing(h: Harness):
    instance_id = _stopped(h)
    result = TERMINATE.dry_run(
        h.ctx(), h.item("ec2-stopped-instance", instance_id), h.params(TERMINATE)
    )
    assert result.would_succeed, result.message
    assert result.calls == ("ec2:CreateImage", "ec2:TerminateInstances")
    assert state(h, instance_id) == "stopped" and _images(h) == []


def test_image_then_terminate_then_rollback_relaunches_the_recorded_configuration(h: Harness):
    subnet, group = _network(h)
    profile = _profile(h)
    h.ec2.create_key_pair(KeyName="ops")
    # Launched here: the helper sets a Placement, which a subnet makes redundant.
    instance_id = h.ec2.run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.small",
        SubnetId=subnet,
        SecurityGroupIds=[group],
        IamInstanceProfile={"Arn": profile},
        KeyName="ops",
        UserData="#!/bin/sh\necho hello",
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": "team", "Value": "batch"}, {"Key": "Name", "Value": "nightly"}],
            }
        ],
    )["Instances"][0]["InstanceId"]
    h.ec2.stop_instances(InstanceIds=[instance_id])
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)

    data = TERMINATE.prepare(ctx, item, params, {})
    assert h.checkpoints["image_id"] == data["image_id"]  # in the ledger before the terminate
    (image,) = _images(h)
    assert tag_dict(image.get("Tags"))[ACTION_TAG] == str(ctx.action_id)
    assert state(h, instance_id) == "stopped"

    outcome = TERMINATE.execute(ctx, item, params, data)

    assert not outcome.already_done and outcome.response["ImageId"] == data["image_id"]
    assert state(h, instance_id) == "terminated"
    assert data["instance_type"] == "t3.small" and data["subnet_id"] == subnet
    assert data["security_group_ids"] == [group]
    assert data["iam_instance_profile_arn"] == profile and data["key_name"] == "ops"
    assert data["user_data"] == "#!/bin/sh\necho hello"
    assert data["tags"] == {"team": "batch", "Name": "nightly"}

    rollback_ctx = h.ctx()
    undo = TERMINATE.rollback(rollback_ctx, data, params)
    again = TERMINATE.rollback(rollback_ctx, data, params)  # ClientToken: the same instance

    restored = instance(h, undo.response["InstanceId"])
    assert again.response["InstanceId"] == restored["InstanceId"]
    assert restored["ImageId"] == data["image_id"]
    assert restored["InstanceType"] == "t3.small" and restored["SubnetId"] == subnet
    assert [g["GroupId"] for g in restored["SecurityGroups"]] == [group]
    assert restored["IamInstanceProfile"]["Arn"] == profile and restored["KeyName"] == "ops"
    tags = tag_dict(restored["Tags"])
    assert tags["team"] == "batch" and tags[ACTION_TAG] == str(rollback_ctx.action_id)
    assert restored["State"]["Name"] == "stopped"  # as the original was


def test_execute_refuses_without_an_available_image(h: Harness):
    instance_id = _stopped(h)
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)
    data = TERMINATE.prepare(ctx, item, params, {})
    h.ec2.deregister_image(ImageId=data["image_id"])

    with pytest.raises(aws.AwsError, match="refusing to terminate"):
        TERMINATE.execute(ctx, item, params, data)
    with pytest.raises(aws.AwsError, match="no AMI was recorded"):
        TERMINATE.execute(ctx, item, params, {})
    assert state(h, instance_id) == "stopped"


def test_crash_after_create_image_then_resume_makes_no_second_image(h: Harness):
    """CreateImage took effect but its response was lost before the checkpoint: the resumed
    prepare finds the image by the action tag instead of imaging again."""
    instance_id = _stopped(h)
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)
    faults.lose_response(h.events, "ec2", "CreateImage")

    with pytest.raises(aws.AwsError):
        TERMINATE.prepare(ctx, item, params, {})
    assert h.checkpoints == {}

    data = TERMINATE.prepare(ctx, item, params, h.checkpoints)
    assert len(_images(h)) == 1 and data["image_id"] == _images(h)[0]["ImageId"]
    assert h.recorder.count(service="ec2", operation="CreateImage") == 1


def test_crash_after_terminate_then_resume_is_recorded_once(h: Harness):
    instance_id = _stopped(h)
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)
    data = TERMINATE.prepare(ctx, item, params, {})
    faults.lose_response(h.events, "ec2", "TerminateInstances")

    with pytest.raises(aws.AwsError):
        TERMINATE.execute(ctx, item, params, data)

    assert TERMINATE.recheck(h.ctx(ctx.action_id), item).facts.get("gone")
    # A rerun of prepare (a resumed attempt) keeps the recorded image and configuration; the
    # image is available: AWS is asked for it once, not waited for.
    described = h.recorder.count(service="ec2", operation="DescribeImages")
    assert TERMINATE.prepare(ctx, item, params, h.checkpoints) == data
    assert h.recorder.count(service="ec2", operation="DescribeImages") == described + 1
    assert h.recorder.count(service="ec2", operation="TerminateInstances") == 1
    assert h.recorder.count(service="ec2", operation="CreateImage") == 1


def test_savings_are_the_volumes_less_the_images_snapshots(h: Harness):
    """Terminating saves the volumes' cost (a stopped instance bills nothing else) less the
    AMI's snapshots, priced at the volumes' full size: us-east-1, one 8 GiB gp2 root volume,
    8 x 0.10 = 0.80 a month, its snapshot 8 x 0.05 = 0.40."""
    item = h.item("ec2-stopped-instance", _stopped(h))
    assert item.resource_details["pricing"]["volumes_gib"] == 8

    assert TERMINATE.estimated_monthly_savings(item) == Decimal("0.40")
    unsized = dataclasses.replace(
        item, resource_details={**item.resource_details, "pricing": {"volumes_monthly": "0.80"}}
    )
    assert TERMINATE.estimated_monthly_savings(unsized) == Decimal("0.80")


def test_recheck_of_an_older_finding_without_a_stop_time_or_volumes_passes(h: Harness):
    """Findings stored before the scan recorded the stop time and the volumes carry neither:
    the re-check cannot compare them and does not refuse for it."""
    instance_id = _stopped(h)
    item = h.item("ec2-stopped-instance", instance_id)
    details = {
        k: v for k, v in item.resource_details.items() if k not in ("stopped_at", "volume_ids")
    }
    older = dataclasses.replace(item, resource_details=details)
    moved = dataclasses.replace(
        item,
        resource_details={**item.resource_details, "stopped_at": "2020-01-01T00:00:00+00:00"},
    )

    assert TERMINATE.recheck(h.ctx(), older).still_waste
    refused = TERMINATE.recheck(h.ctx(), moved)
    assert not refused.still_waste and "started and stopped again" in refused.reason


# --- the re-check's reasons, word for word ------------------------------------------------------


def _seen_as(h: Harness, operation: str, key: str, **fields: object) -> None:
    """``operation`` of the cleanup session answers ``fields`` on every entry of ``key``
    (``Reservations.Instances`` or ``Images``): states and reasons moto never shows."""

    def report(parsed, **_):
        entries = (
            [i for r in parsed.get("Reservations", []) for i in r["Instances"]]
            if key == "Reservations.Instances"
            else parsed.get(key, [])
        )
        for entry in entries:
            entry.update(fields)

    h.events.register(f"after-call.ec2.{operation}", report)


def _grown(h: Harness) -> tuple[str, CleanupItem, str, str]:
    """A stopped instance given a second volume after its scan: its ID, the item the scan
    stored, the scanned root volume and the new one."""
    grown = _stopped(h)
    grown_item = h.item("ec2-stopped-instance", grown)
    (root,) = grown_item.resource_details["volume_ids"]
    volume = h.ec2.create_volume(AvailabilityZone="us-east-1a", Size=5)["VolumeId"]
    h.ec2.attach_volume(VolumeId=volume, InstanceId=grown, Device="/dev/sdg")
    return grown, grown_item, root, volume


def test_recheck_says_why_in_full(h: Harness):
    ok = _stopped(h, tags={"team": "batch"})
    item = h.item("ec2-stopped-instance", ok)
    _, grown_item, root, volume = _grown(h)
    missing = dataclasses.replace(item, resource_id="i-0123456789abcdef0")
    facts = {"state": "stopped", "instance_type": "t3.micro", "tags": {"team": "batch"}}

    passing = TERMINATE.recheck(h.ctx(), item)
    changed = TERMINATE.recheck(h.ctx(), grown_item)
    gone = TERMINATE.recheck(h.ctx(), missing)
    h.ec2.start_instances(InstanceIds=[ok])
    running = TERMINATE.recheck(h.ctx(), item)
    h.ec2.terminate_instances(InstanceIds=[ok])
    terminated = TERMINATE.recheck(h.ctx(), item)

    assert passing == Recheck(
        True, "still stopped, unprotected, unchanged, in no Auto Scaling group", facts
    )
    assert changed.reason == f"volumes changed since the scan: {[root]} -> {sorted([root, volume])}"
    assert gone == Recheck(False, "instance no longer exists", {"gone": True})
    assert running == Recheck(
        False,
        "instance is running, not stopped: someone uses it",
        {**facts, "state": "running"},
    )
    assert terminated == Recheck(
        False, "instance is already terminated", {**facts, "state": "terminated", "gone": True}
    )


def test_a_stop_time_nobody_knows_is_said_so(h: Harness):
    """A stop time AWS no longer states, or one the scan could not read, is "an unknown time"
    in the refusal; the two never count as the same stop."""
    instance_id = _stopped(h)
    item = h.item("ec2-stopped-instance", instance_id)
    seen = item.resource_details["stopped_at"]
    unread = dataclasses.replace(
        item, resource_details={**item.resource_details, "stopped_at": None}
    )

    refused_unread = TERMINATE.recheck(h.ctx(), unread)
    _seen_as(h, "DescribeInstances", "Reservations.Instances", StateTransitionReason="")
    refused_unstated = TERMINATE.recheck(h.ctx(), item)

    live = datetime.fromisoformat(str(seen)).isoformat()
    assert refused_unread.reason == (
        "instance was started and stopped again since the scan: stopped at "
        f"{live}, the scan saw it stopped since an unknown time"
    )
    assert refused_unstated.reason == (
        "instance was started and stopped again since the scan: stopped at an unknown time, "
        f"the scan saw it stopped since {live}"
    )


# --- prepare: what it records and makes; execute: what it says ---------------------------------


def test_prepare_images_and_records_everything_a_relaunch_needs(h: Harness):
    """The whole record (in the ledger before the AMI is waited for), the CreateImage request
    AWS received, the AMI's snapshots tagged; the kept volumes are named in the terminate's note."""
    instance_id = run_instance(h, EbsOptimized=True, tags={"team": "batch"})
    kept = [h.ec2.create_volume(AvailabilityZone="us-east-1a", Size=5)["VolumeId"] for _ in "gh"]
    for volume, device in zip(kept, ("/dev/sdg", "/dev/sdh"), strict=True):
        h.ec2.attach_volume(VolumeId=volume, InstanceId=instance_id, Device=device)
    h.ec2.stop_instances(InstanceIds=[instance_id])
    live = instance(h, instance_id)
    (root,) = [
        m["Ebs"]["VolumeId"]
        for m in live["BlockDeviceMappings"]
        if m["Ebs"]["VolumeId"] not in kept
    ]
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)

    data = TERMINATE.prepare(ctx, item, params, {})

    (image,) = _images(h)
    snapshot_ids = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
    config = {
        "instance_id": instance_id,
        "instance_type": "t3.micro",
        "availability_zone": "us-east-1a",
        "subnet_id": live["SubnetId"],
        "security_group_ids": [g["GroupId"] for g in live["SecurityGroups"]],
        "iam_instance_profile_arn": None,
        "key_name": None,
        "user_data": None,
        "user_data_base64": None,
        "ebs_optimized": True,
        "volume_ids": [root, *kept],
        "kept_volume_ids": kept,
        "tags": {"team": "batch"},
    }
    assert data == {"image_id": image["ImageId"], "snapshot_ids": snapshot_ids, **config}
    assert h.checkpoints == {"image_id": image["ImageId"], **config}
    name = f"cloudsweep-{instance_id}-{str(ctx.action_id)[:8]}"
    marks = {ACTION_TAG: str(ctx.action_id), ec2_stopped_instance.SOURCE_INSTANCE_TAG: instance_id}
    (asked,) = h.recorder.calls(service="ec2", operation="CreateImage")
    assert asked.params == {
        "InstanceId": instance_id,
        "Name": name,
        "Description": f"CloudSweep: {instance_id} before termination (action {ctx.action_id})",
        "NoReboot": True,
        "TagSpecifications": [
            {
                "ResourceType": "image",
                "Tags": [{"Key": k, "Value": v} for k, v in sorted(marks.items())],
            }
        ],
    }
    assert image["Name"] == name and snapshot_ids
    snapshots = h.ec2.describe_snapshots(SnapshotIds=snapshot_ids)["Snapshots"]
    assert all(marks.items() <= tag_dict(s.get("Tags")).items() for s in snapshots)

    outcome = TERMINATE.execute(ctx, item, params, data)

    assert outcome.note == (
        f"terminated {instance_id}; AMI {image['ImageId']} kept for rollback; volumes "
        f"{kept[0]}, {kept[1]} survive (DeleteOnTermination false)"
    )
    assert outcome.response["ImageId"] == image["ImageId"]
    assert [t["InstanceId"] for t in outcome.response["TerminatingInstances"]] == [instance_id]


def test_prepare_without_the_instance_or_a_complete_record_refuses(h: Harness):
    """Gone before anything was recorded, or gone after an image whose configuration never
    reached the ledger: nothing is imaged, nothing can be terminated, and the error says so."""
    instance_id = _stopped(h)
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)
    missing = dataclasses.replace(item, resource_id="i-0123456789abcdef0")
    faults.lose_response(h.events, "ec2", "CreateImage")
    with pytest.raises(aws.AwsError):
        TERMINATE.prepare(ctx, item, params, {})  # the AMI exists; nothing was recorded
    h.ec2.terminate_instances(InstanceIds=[instance_id])

    for gone in (missing, item):
        with pytest.raises(aws.AwsError) as refused:
            TERMINATE.prepare(ctx, gone, params, {})
        assert str(refused.value) == (
            f"ec2:CreateImage in us-east-1 failed (not-found, InvalidInstanceID.NotFound): "
            f"instance {gone.resource_id} no longer exists and this action recorded no image and "
            "configuration of it: nothing to image or terminate"
        )
    assert h.checkpoints == {}
    assert h.recorder.count(service="ec2", operation="CreateImage") == 1


def test_a_failed_ami_stops_the_action_with_the_reason(h: Harness):
    """An AMI that fails while being made fails the wait, terminally; found failed by a rerun, it
    stops the action with AWS's reason (or "no reason"). The instance stays."""
    instance_id = _stopped(h)
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)
    _seen_as(h, "DescribeImages", "Images", State="failed")

    with pytest.raises(aws.AwsError) as waited:
        TERMINATE.prepare(ctx, item, params, {})
    with pytest.raises(aws.AwsError) as failed:
        TERMINATE.prepare(ctx, item, params, h.checkpoints)
    reason = {"Code": "Server.InternalError", "Message": "snapshot failed"}
    _seen_as(h, "DescribeImages", "Images", StateReason=reason)
    with pytest.raises(aws.AwsError) as explained:
        TERMINATE.prepare(ctx, item, params, h.checkpoints)

    image_id = h.checkpoints["image_id"]
    assert str(waited.value) == (
        "ec2:DescribeImages in us-east-1 failed (terminal, WaiterFailed): image_available: "
        "Waiter ImageAvailable failed: Waiter encountered a terminal failure state: For "
        'expression "Images[].State" we matched expected path: "failed" at least once'
    )
    assert str(failed.value) == (
        f"ec2:CreateImage in us-east-1 failed (terminal, ImageFailed): AMI {image_id} "
        "failed (no reason); the instance was not terminated. Deregister the AMI and retry the "
        "action"
    )
    assert str(explained.value) == (
        f"ec2:CreateImage in us-east-1 failed (terminal, ImageFailed): AMI {image_id} "
        f"failed ({reason}); the instance was not terminated. Deregister the AMI and retry the "
        "action"
    )
    assert state(h, instance_id) == "stopped"


def test_execute_names_the_state_of_an_unusable_ami(h: Harness):
    instance_id = _stopped(h)
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)
    data = TERMINATE.prepare(ctx, item, params, {})
    image_id = data["image_id"]
    h.ec2.deregister_image(ImageId=image_id)

    with pytest.raises(aws.AwsError) as missing:
        TERMINATE.execute(ctx, item, params, data)
    with pytest.raises(aws.AwsError) as unrecorded:
        TERMINATE.execute(ctx, item, params, {})

    assert str(missing.value) == (
        f"ec2:TerminateInstances in us-east-1 failed (terminal, MissingRollbackData): refusing "
        f"to terminate {instance_id}: its AMI {image_id} is missing; run prepare again"
    )
    assert str(unrecorded.value) == (
        f"ec2:TerminateInstances in us-east-1 failed (terminal, MissingRollbackData): refusing "
        f"to terminate {instance_id}: no AMI was recorded; run prepare again"
    )
    assert state(h, instance_id) == "stopped"


def test_execute_refuses_while_the_ami_is_pending(h: Harness):
    instance_id = _stopped(h)
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)
    data = TERMINATE.prepare(ctx, item, params, {})
    _seen_as(h, "DescribeImages", "Images", State="pending")

    with pytest.raises(aws.AwsError, match=f"its AMI {data['image_id']} is pending;"):
        TERMINATE.execute(ctx, item, params, data)
    assert state(h, instance_id) == "stopped"


def test_execute_of_an_instance_terminated_meanwhile_is_done(h: Harness):
    instance_id = _stopped(h)
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)
    data = TERMINATE.prepare(ctx, item, params, {})
    missing = dataclasses.replace(item, resource_id="i-0123456789abcdef0")

    outcome = TERMINATE.execute(ctx, missing, params, data)

    assert outcome == Outcome(
        {
            "InstanceId": "i-0123456789abcdef0",
            "Error": "InvalidInstanceID.NotFound",
            "ImageId": data["image_id"],
        },
        already_done=True,
        note=f"i-0123456789abcdef0 was already terminated (an earlier attempt); AMI "
        f"{data['image_id']} kept for rollback",
    )


# --- rollback: one instance, the recorded configuration -----------------------------------------


def test_rollback_without_a_subnet_launches_one_instance_in_the_recorded_zone(h: Harness):
    """An instance recorded without a subnet is launched in its zone, with its user data and
    EBS optimisation; exactly one, stopped, and the ledger learns its ID at once."""
    instance_id = _stopped(h)
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)
    data = TERMINATE.prepare(ctx, item, params, {})
    TERMINATE.execute(ctx, item, params, data)
    recorded = {
        **data,
        "subnet_id": None,
        "availability_zone": "us-east-1b",
        "user_data": "#!/bin/sh\necho again",
        "ebs_optimized": True,
    }

    undo = TERMINATE.rollback(h.ctx(), recorded, params)

    new = undo.response["InstanceId"]
    assert undo == Outcome(
        {"InstanceId": new, "ImageId": data["image_id"]},
        already_done=False,
        note=f"instance {new} launched from {data['image_id']} and stopped (was {instance_id})",
    )
    launched = h.ec2.describe_instances(
        Filters=[{"Name": "image-id", "Values": [data["image_id"]]}]
    )["Reservations"]
    assert [i["InstanceId"] for r in launched for i in r["Instances"]] == [new]
    (run,) = h.recorder.calls(service="ec2", operation="RunInstances")
    assert (run.params["MinCount"], run.params["MaxCount"]) == (1, 1)  # AWS would launch more
    restored = instance(h, new)
    assert restored["Placement"]["AvailabilityZone"] == "us-east-1b"
    assert restored["EbsOptimized"] is True and restored["State"]["Name"] == "stopped"
    user_data = h.ec2.describe_instance_attribute(InstanceId=new, Attribute="userData")
    assert base64.b64decode(user_data["UserData"]["Value"]) == b"#!/bin/sh\necho again"
    assert h.checkpoints["restored_instance_id"] == new


def test_savings_read_the_priced_volumes_and_their_size_apart(h: Harness):
    """The volumes' recorded monthly cost is what a termination saves, not the finding's whole
    cost; without it the finding's cost stands in, less the snapshots at the recorded size."""
    item = h.item("ec2-stopped-instance", _stopped(h))
    assert item.monthly_cost == Decimal("0.80")

    def priced(pricing: dict) -> Decimal:
        replaced = dataclasses.replace(
            item, resource_details={**item.resource_details, "pricing": pricing}
        )
        return TERMINATE.estimated_monthly_savings(replaced)

    assert priced({"volumes_monthly": "3.00"}) == Decimal("3.00")
    assert priced({"volumes_monthly": "3.00", "volumes_gib": 8}) == Decimal("2.60")
    assert priced({"volumes_gib": 8}) == Decimal("0.40")


def test_an_earlier_attempts_failed_ami_is_passed_over_for_its_usable_one(h: Harness):
    """Two AMIs carry this action's tag (a failed one from an earlier attempt, then a usable
    one): prepare takes the usable one, whichever AWS lists first."""
    instance_id = _stopped(h)
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)
    marks = [{"Key": ACTION_TAG, "Value": str(ctx.action_id)}]
    failed, usable = (
        h.ec2.create_image(
            InstanceId=instance_id,
            Name=name,
            TagSpecifications=[{"ResourceType": "image", "Tags": marks}],
        )["ImageId"]
        for name in ("first", "second")
    )
    _seen_as_image(h, failed, State="failed")

    data = TERMINATE.prepare(ctx, item, params, {})

    assert data["image_id"] == usable
    assert h.recorder.count(service="ec2", operation="CreateImage") == 0


def _seen_as_image(h: Harness, image_id: str, **fields: object) -> None:
    def report(parsed, **_):
        for image in parsed.get("Images", []):
            if image.get("ImageId") == image_id:
                image.update(fields)

    h.events.register("after-call.ec2.DescribeImages", report)


def test_an_ami_listing_an_instance_store_device_has_its_snapshots_tagged(h: Harness):
    """An AMI of an instance with instance-store volumes lists them without an ``Ebs`` entry:
    prepare tags the EBS snapshots and passes over the rest."""
    instance_id = _stopped(h)
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)

    def with_ephemeral(parsed, **_):
        for image in parsed.get("Images", []):
            image["BlockDeviceMappings"] = [
                *image.get("BlockDeviceMappings", []),
                {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"},
            ]

    h.events.register("after-call.ec2.DescribeImages", with_ephemeral)

    data = TERMINATE.prepare(ctx, item, params, {})

    (image,) = _images(h)
    assert data["snapshot_ids"] == [
        m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m
    ]
    assert data["snapshot_ids"]


def test_binary_user_data_is_relaunched_byte_for_byte(h: Harness):
    """User data may be gzip (cloud-init reads it so): the record keeps its exact bytes beside
    a readable text, and the relaunched instance gets those bytes, not the text."""
    script = gzip.compress(b"#!/bin/sh\necho restored\n", mtime=0)
    instance_id = _stopped(h, UserData=script)
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)
    data = TERMINATE.prepare(ctx, item, params, {})
    TERMINATE.execute(ctx, item, params, data)

    undo = TERMINATE.rollback(h.ctx(), data, params)

    restored = h.ec2.describe_instance_attribute(
        InstanceId=undo.response["InstanceId"], Attribute="userData"
    )
    assert base64.b64decode(restored["UserData"]["Value"]) == script
    assert base64.b64decode(data["user_data_base64"]) == script
    assert data["user_data"] == script.decode("utf-8", "replace")


def test_an_ami_deregistered_as_it_becomes_available_is_refused_by_execute(h: Harness):
    """Someone deregisters the action's AMI the moment it is available: prepare records it (with
    no snapshots: AWS no longer lists it) and execute refuses for it, though another AMI of the
    same instance is available; the instance stays."""
    instance_id = _stopped(h)
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)
    backup = h.ec2.create_image(InstanceId=instance_id, Name="the owner's own backup")["ImageId"]

    def deregister_once_available(parsed, **_):
        for image in parsed.get("Images", []):
            if image["ImageId"] != backup and image.get("State") == "available":
                h.ec2.deregister_image(ImageId=image["ImageId"])

    h.events.register("after-call.ec2.DescribeImages", deregister_once_available)

    data = TERMINATE.prepare(ctx, item, params, {})
    with pytest.raises(aws.AwsError) as refused:
        TERMINATE.execute(ctx, item, params, data)

    image_id = data["image_id"]
    assert image_id != backup and data["snapshot_ids"] == []
    assert [i["ImageId"] for i in _images(h)] == [backup]
    assert str(refused.value) == (
        f"ec2:TerminateInstances in us-east-1 failed (terminal, MissingRollbackData): refusing "
        f"to terminate {instance_id}: its AMI {image_id} is missing; run prepare again"
    )
    assert state(h, instance_id) == "stopped"


def _recorded_for_rollback(h: Harness) -> dict[str, object]:
    """The record of a terminated instance as far as a rollback reads it: its AMI, type, ID and
    tags (made without a scan: a rollback needs none)."""
    source = _stopped(h)
    image_id = h.ec2.create_image(InstanceId=source, Name="before termination")["ImageId"]
    h.ec2.terminate_instances(InstanceIds=[source])
    return {
        "image_id": image_id,
        "instance_type": "t3.micro",
        "instance_id": source,
        "tags": {"team": "batch"},
    }


def test_a_rollback_run_again_takes_back_its_live_instance_only(h: Harness):
    """A rerun finds the instance its first run launched (by the rollback's tag, asking AWS for
    live ones only) and launches nothing; once that instance is terminated, a rerun launches a
    new one, even from an endpoint that ignores the state filter."""
    data = _recorded_for_rollback(h)
    ctx, params = h.ctx(), h.params(TERMINATE)
    image_id = data["image_id"]

    first = TERMINATE.rollback(ctx, data, params)
    again = TERMINATE.rollback(ctx, data, params)

    restored = first.response["InstanceId"]
    assert again == Outcome(
        {"InstanceId": restored, "ImageId": image_id},
        already_done=True,
        note=f"instance {restored} launched from {image_id} and stopped (was {data['instance_id']})",
    )
    assert h.recorder.count(service="ec2", operation="RunInstances") == 1
    assert tag_dict(instance(h, restored)["Tags"]) == {
        "team": "batch",
        ACTION_TAG: str(ctx.action_id),
        ec2_stopped_instance.RESTORED_FROM_TAG: image_id,
    }
    lookups = [
        c.params
        for c in h.recorder.calls(service="ec2", operation="DescribeInstances")
        if "Filters" in c.params
    ]
    assert lookups == 2 * [
        {
            "Filters": [
                {"Name": f"tag:{ACTION_TAG}", "Values": [str(ctx.action_id)]},
                {
                    "Name": "instance-state-name",
                    "Values": ["pending", "running", "stopping", "stopped"],
                },
            ]
        }
    ]

    h.ec2.terminate_instances(InstanceIds=[restored])

    def ignore_the_state_filter(params, **_):
        if "Filters" in params:
            params["Filters"] = [f for f in params["Filters"] if f["Name"] != "instance-state-name"]

    h.events.register("before-parameter-build.ec2.DescribeInstances", ignore_the_state_filter)
    third = TERMINATE.rollback(ctx, data, params)

    relaunched = third.response["InstanceId"]
    assert relaunched != restored and not third.already_done
    assert state(h, relaunched) == "stopped" and state(h, restored) == "terminated"
    assert h.recorder.count(service="ec2", operation="RunInstances") == 2


def test_a_relaunch_that_does_not_come_up_stopped_says_which_wait_failed(h: Harness):
    """A relaunched instance that terminates as it starts (no capacity, a volume limit) fails the
    wait for it to run, terminally. One stuck stopping is not started again: the rollback waits
    for the stop and, out of attempts, says so (recoverable: the next attempt waits again)."""
    data = _recorded_for_rollback(h)
    params = h.params(TERMINATE)
    reported: dict[str, object] = {"Code": 48, "Name": "terminated"}
    # Every DescribeInstances answer shows the state ``reported`` holds at the time.
    _seen_as(h, "DescribeInstances", "Reservations.Instances", State=reported)

    with pytest.raises(aws.AwsError) as terminated:
        TERMINATE.rollback(h.ctx(), data, params)
    reported.update(Code=64, Name="stopping")
    with pytest.raises(aws.AwsError) as stuck:
        TERMINATE.rollback(h.ctx(), data, params)

    assert str(terminated.value) == (
        "ec2:DescribeInstances in us-east-1 failed (terminal, WaiterFailed): instance_running: "
        "Waiter InstanceRunning failed: Waiter encountered a terminal failure state: For "
        'expression "Reservations[].Instances[].State.Name" we matched expected path: '
        '"terminated" at least once'
    )
    assert str(stuck.value) == (
        "ec2:DescribeInstances in us-east-1 failed (recoverable, WaiterTimedOut): "
        "instance_stopped: Waiter InstanceStopped failed: Max attempts exceeded"
    )
    assert h.recorder.count(service="ec2", operation="RunInstances") == 2
    assert h.recorder.count(service="ec2", operation="StopInstances") == 0


def test_a_rerun_of_prepare_keeps_its_recorded_ami_and_records_a_replacement(h: Harness):
    """The checkpointed AMI is taken back though its action tag was removed (no second AMI); one
    deregistered since is replaced and the replacement checkpointed; a record holding only an
    AMI (from before the configuration was recorded with it) gets the configuration."""
    instance_id = _stopped(h)
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)

    first = TERMINATE.prepare(ctx, item, params, {})
    image_id = first["image_id"]
    lookup = {
        "Owners": ["self"],
        "Filters": [{"Name": f"tag:{ACTION_TAG}", "Values": [str(ctx.action_id)]}],
    }
    described = [c.params for c in h.recorder.calls(service="ec2", operation="DescribeImages")]
    assert described == [lookup, {"ImageIds": [image_id]}, {"ImageIds": [image_id]}]
    h.ec2.delete_tags(Resources=[image_id], Tags=[{"Key": ACTION_TAG}])

    again = TERMINATE.prepare(ctx, item, params, h.checkpoints)

    assert again["image_id"] == image_id
    assert h.recorder.count(service="ec2", operation="CreateImage") == 1
    h.ec2.deregister_image(ImageId=image_id)

    replaced = TERMINATE.prepare(ctx, item, params, h.checkpoints)

    assert replaced["image_id"] != image_id
    assert [i["ImageId"] for i in _images(h)] == [replaced["image_id"]]
    recorded = {k: v for k, v in replaced.items() if k != "snapshot_ids"}
    assert h.checkpoints == recorded
    older: dict[str, object] = {"image_id": replaced["image_id"]}

    TERMINATE.prepare(h.ctx(ctx.action_id, older), item, params, dict(older))

    assert older == recorded


def test_every_refusal_of_recheck_reports_the_instance_it_saw(h: Harness):
    """A protected, grouped or grown instance is refused with the facts of the instance, which
    the ledger records with the refusal."""
    locked = _stopped(h)
    locked_item = h.item("ec2-stopped-instance", locked)
    h.ec2.modify_instance_attribute(InstanceId=locked, DisableApiTermination={"Value": True})
    grouped = _stopped(h, tags={"aws:autoscaling:groupName": "batch"})
    grouped_item = h.item("ec2-stopped-instance", grouped)
    grown, grown_item, root, volume = _grown(h)
    facts = {"state": "stopped", "instance_type": "t3.micro", "tags": {}}

    protected = TERMINATE.recheck(h.ctx(), locked_item)
    in_group = TERMINATE.recheck(h.ctx(), grouped_item)
    changed = TERMINATE.recheck(h.ctx(), grown_item)

    assert protected == Recheck(False, "termination protection is on", facts)
    assert in_group == Recheck(
        False,
        in_group.reason,
        {**facts, "tags": {"aws:autoscaling:groupName": "batch"}},
    )
    assert "Auto Scaling group batch" in in_group.reason
    assert changed == Recheck(
        False, f"volumes changed since the scan: {[root]} -> {sorted([root, volume])}", facts
    )
    assert {state(h, i) for i in (locked, grouped, grown)} == {"stopped"}


def test_a_failing_rerun_of_prepare_leaves_the_record_of_the_attempt_that_made_the_ami(
    h: Harness,
):
    """The record holds the AMI and the configuration of the instance it was made from. Someone
    resizes the instance before a rerun, which finds the AMI failed: the rerun fails without
    rewriting the record (a rerun that completes returns the configuration it sees)."""
    instance_id = _stopped(h)
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(TERMINATE)
    first = TERMINATE.prepare(ctx, item, params, {})
    made = {k: v for k, v in first.items() if k != "snapshot_ids"}
    assert h.checkpoints == made and made["instance_type"] == "t3.micro"
    h.ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "t3.large"})
    assert instance(h, instance_id)["InstanceType"] == "t3.large"
    _seen_as(h, "DescribeImages", "Images", State="failed")

    with pytest.raises(aws.AwsError):
        TERMINATE.prepare(ctx, item, params, dict(h.checkpoints))

    assert h.checkpoints == made
    assert state(h, instance_id) == "stopped"
