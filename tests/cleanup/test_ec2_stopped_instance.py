"""The ec2-stopped-instance cleanup action (snapshot-and-terminate) against moto over HTTP."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import ec2_stopped_instance
from cloudsweep.cleanup.base import ACTION_TAG
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
    # A rerun of prepare (a resumed attempt) keeps the recorded image and configuration.
    assert TERMINATE.prepare(ctx, item, params, h.checkpoints) == data
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
