"""The ami cleanup action (deregister) against moto over HTTP, and the hand-over of the kept
snapshots to the ebs-snapshot detector and actions after the grace period.

moto 5.2 gives every registered image a snapshot of its own and ignores the
BlockDeviceMappings of RegisterImage: the rollback is checked by the image it registers (name,
architecture, tags), not by which snapshot moto attaches to it.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest

from cloudsweep import aws, cleanup, detectors
from cloudsweep.cleanup import ACTION_TAG, ami, ebs_snapshot
from cloudsweep.detectors import RegionContext
from cloudsweep.domain import DEREGISTERED_IMAGE_TAG, RETAIN_UNTIL_TAG, utcnow
from cloudsweep.pricing import load_catalog
from cloudsweep.settings import Settings
from tests import faults

from .ebs_helpers import ACCOUNT, EXTERNAL_ID, ROLE_ARN, tag_dict
from .storage_helpers import REGION, StorageHarness, at

DEREGISTER = ami.DeregisterImage()
PARAMS = DEREGISTER.parameters({"snapshot_grace_days": 10})


@pytest.fixture
def h(moto_endpoint: str) -> StorageHarness:
    return StorageHarness(moto_endpoint)


def image(h: StorageHarness, name: str = "web-2023.01") -> tuple[str, str]:
    image_id = h.ec2.register_image(Name=name, Architecture="x86_64")["ImageId"]
    h.ec2.create_tags(Resources=[image_id], Tags=[{"Key": "team", "Value": "web"}])
    (mapping,) = h.ec2.describe_images(ImageIds=[image_id])["Images"][0]["BlockDeviceMappings"]
    return image_id, mapping["Ebs"]["SnapshotId"]


def registered(h: StorageHarness, image_id: str) -> bool:
    return bool(h.ec2.describe_images(ImageIds=[image_id])["Images"])


def deregistered(h: StorageHarness, image_id: str):
    item = h.item("ami", image_id)
    ctx = h.ctx()
    data = DEREGISTER.prepare(ctx, item, PARAMS, {})
    return item, ctx, data, DEREGISTER.execute(ctx, item, PARAMS, data)


def test_registered_and_saves_nothing_itself(h):
    assert cleanup.actions_for("ami") == ["deregister"]
    image_id, _ = image(h)
    item = h.item("ami", image_id)
    assert item.monthly_cost > 0
    assert DEREGISTER.estimated_monthly_savings(item) == 0  # the snapshot actions save it later


def test_recheck_refuses_an_image_a_launch_template_or_instance_uses_now(h):
    image_id, _ = image(h)
    item = h.item("ami", image_id)
    assert DEREGISTER.recheck(h.ctx(), item).still_waste

    h.ec2.create_launch_template(
        LaunchTemplateName="late", LaunchTemplateData={"ImageId": image_id}
    )
    by_template = DEREGISTER.recheck(h.ctx(), item)
    assert not by_template.still_waste
    assert "launch template late version 1" in by_template.reason

    h.ec2.delete_launch_template(LaunchTemplateName="late")
    h.client("autoscaling").create_launch_configuration(
        LaunchConfigurationName="lc-late", ImageId=image_id, InstanceType="t3.micro"
    )
    assert "launch configuration lc-late" in DEREGISTER.recheck(h.ctx(), item).reason

    h.client("autoscaling").delete_launch_configuration(LaunchConfigurationName="lc-late")
    instance = h.ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]
    assert f"instance {instance['InstanceId']}" in DEREGISTER.recheck(h.ctx(), item).reason
    assert h.count("DeregisterImage") == 0


def test_recheck_refuses_protected_and_is_gone_when_deregistered(h):
    image_id, _ = image(h)
    item = h.item("ami", image_id)
    h.ec2.create_tags(Resources=[image_id], Tags=[{"Key": "do-not-delete", "Value": "1"}])
    assert "protected" in DEREGISTER.recheck(h.ctx(), item).reason

    h.ec2.deregister_image(ImageId=image_id)
    assert DEREGISTER.recheck(h.ctx(), item).facts["gone"] is True


@pytest.mark.parametrize(
    ("code", "status", "gone"),
    [
        ("InvalidAMIID.Unavailable", 400, True),
        ("InvalidAMIID.NotFound", 400, True),
        ("UnauthorizedOperation", 403, False),
    ],
)
def test_the_recheck_reads_only_the_images_own_errors_as_gone(h, code, status, gone):
    """DescribeImages answers InvalidAMIID.* for an image just deregistered or unknown: gone. A
    refusal says nothing about the image: the recheck fails instead of reporting it gone."""
    image_id, _ = image(h)
    item = h.item("ami", image_id)
    faults.fail_with(
        h.events,
        "before-send.ec2.DescribeImages",
        status=status,
        body=faults.ec2_error_body(code, "the answer of the test"),
    )

    if gone:
        assert DEREGISTER.recheck(h.ctx(), item).facts["gone"] is True
    else:
        with pytest.raises(aws.AwsError) as refused:
            DEREGISTER.recheck(h.ctx(), item)
        assert refused.value.code == code


@pytest.mark.parametrize(
    ("refused", "body", "named"),
    [
        (
            "ec2.DescribeInstances",
            faults.ec2_error_body("UnauthorizedOperation", "no"),
            "ec2:DescribeInstances in us-east-1 failed (access-denied, UnauthorizedOperation): no",
        ),
        (
            "ec2.DescribeLaunchTemplates",
            faults.ec2_error_body("UnauthorizedOperation", "no"),
            "ec2:DescribeLaunchTemplateVersions in us-east-1 failed (access-denied, "
            "UnauthorizedOperation): no",
        ),
        (
            "autoscaling.DescribeLaunchConfigurations",
            faults.query_error_body("AccessDenied", "no"),
            "autoscaling:DescribeLaunchConfigurations in us-east-1 failed (access-denied, "
            "AccessDenied): no",
        ),
    ],
)
def test_a_refused_lookup_of_the_images_users_fails_the_recheck_naming_it(h, refused, body, named):
    """Who launches from the image cannot be known: the recheck fails, and says which call (the
    permission to add) in which region."""
    image_id, _ = image(h)
    item = h.item("ami", image_id)
    service = refused.split(".")[0]
    faults.fail_with(h.events_of(service), f"before-send.{refused}", status=403, body=body)

    with pytest.raises(aws.AwsError) as failed:
        DEREGISTER.recheck(h.ctx(), item)

    assert str(failed.value) == named


def test_dry_run_changes_nothing(h):
    image_id, snapshot = image(h)
    item = h.item("ami", image_id)

    result = DEREGISTER.dry_run(h.ctx(), item, PARAMS)

    assert result.would_succeed, result.message
    assert registered(h, image_id)
    assert RETAIN_UNTIL_TAG not in tag_dict(
        h.ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0].get("Tags")
    )
    assert all(r.params.get("DryRun") for r in h.mutating())


def test_deregister_keeps_the_snapshots_tagged_with_their_grace_period(h):
    image_id, snapshot = image(h)
    bystander, _ = image(h, "other-image")
    started = utcnow()
    _, _, data, outcome = deregistered(h, image_id)

    assert not outcome.already_done
    assert not registered(h, image_id) and registered(h, bystander)
    assert data["snapshot_ids"] == [snapshot]
    assert data["register"]["Name"] == "web-2023.01"
    assert h.checkpoints["register"] == data["register"], "recorded before anything changed"
    tags = tag_dict(h.ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]["Tags"])
    assert tags[DEREGISTERED_IMAGE_TAG] == image_id
    until = datetime.fromisoformat(tags[RETAIN_UNTIL_TAG])
    assert (
        timedelta(days=10) - timedelta(minutes=1) < until - started < timedelta(days=10, minutes=1)
    )
    deregisters = h.recorder.calls(operation="DeregisterImage")
    assert [r.params for r in deregisters] == [
        {"ImageId": image_id}
    ]  # no DeleteAssociatedSnapshots
    operations = [r.operation for r in h.mutating()]
    assert operations.index("CreateTags") < operations.index("DeregisterImage")


def test_execute_refuses_when_a_kept_snapshot_is_gone(h):
    image_id, snapshot = image(h)
    item = h.item("ami", image_id)
    ctx = h.ctx()
    data = DEREGISTER.prepare(ctx, item, PARAMS, {})
    h.ec2.deregister_image(ImageId=image_id)  # moto refuses to delete an AMI's snapshot
    h.ec2.delete_snapshot(SnapshotId=snapshot)

    with pytest.raises(aws.AwsError, match="could not be registered again"):
        DEREGISTER.execute(ctx, item, PARAMS, data)


def test_a_lost_response_is_done_on_the_next_attempt_not_repeated(h):
    image_id, _ = image(h)
    item = h.item("ami", image_id)
    ctx = h.ctx()
    data = DEREGISTER.prepare(ctx, item, PARAMS, {})
    lost = faults.lose_response(h.events, "ec2", "DeregisterImage")

    with pytest.raises(aws.AwsError) as failed:
        DEREGISTER.execute(ctx, item, PARAMS, data)
    assert aws.errors.outcome_unknown(failed.value) and lost.hits == 1

    again = DEREGISTER.execute(ctx, item, PARAMS, DEREGISTER.prepare(ctx, item, PARAMS, data))

    assert again.already_done
    assert [r.error_code for r in h.recorder.calls(operation="DeregisterImage")][1:] == [
        "InvalidAMIID.Unavailable"
    ]


def test_rollback_registers_the_image_again_once(h):
    image_id, _ = image(h)
    _, _, data, _ = deregistered(h, image_id)
    rollback_ctx = h.ctx(checkpoints={})

    outcome = DEREGISTER.rollback(rollback_ctx, data, PARAMS)

    again = h.ec2.describe_images(ImageIds=[outcome.response["ImageId"]])["Images"][0]
    assert (again["Name"], again["State"]) == ("web-2023.01", "available")
    (call,) = h.recorder.calls(operation="RegisterImage")
    assert call.params["Name"] == "web-2023.01"
    assert [m["Ebs"]["SnapshotId"] for m in call.params["BlockDeviceMappings"]] == data[
        "snapshot_ids"
    ]
    assert tag_dict(again["Tags"]) == {"team": "web", ACTION_TAG: str(rollback_ctx.action_id)}
    assert DEREGISTER.rollback(rollback_ctx, data, PARAMS).already_done
    assert h.count("RegisterImage") == 1


def test_a_rollback_whose_answer_was_lost_finds_the_image_by_name(h):
    image_id, _ = image(h)
    image(h, "web-2023.02")  # another image of the account, not the one to find
    _, _, data, _ = deregistered(h, image_id)
    rollback_ctx = h.ctx(checkpoints={})
    faults.lose_response(h.events, "ec2", "RegisterImage")

    with pytest.raises(aws.AwsError):
        DEREGISTER.rollback(rollback_ctx, data, PARAMS)
    asked_before = len(h.recorder.calls(operation="DescribeImages"))
    again = DEREGISTER.rollback(rollback_ctx, data, PARAMS)

    (made,) = h.ec2.describe_images(
        Owners=["self"], Filters=[{"Name": "name", "Values": ["web-2023.01"]}]
    )["Images"]
    assert again.already_done
    assert again.response == {"ImageId": made["ImageId"], "PreviousImageId": image_id}
    assert h.count("RegisterImage") == 1
    # Names are unique per account only: both searches ask for this account's images (a public
    # image of another account may carry the same name), the second by name.
    searches = h.recorder.calls(operation="DescribeImages")[asked_before:]
    assert [(s.params["Owners"], s.params["Filters"][-1]) for s in searches] == [
        (["self"], {"Name": f"tag:{ACTION_TAG}", "Values": [str(rollback_ctx.action_id)]}),
        (["self"], {"Name": "name", "Values": ["web-2023.01"]}),
    ]


def test_rollback_after_the_snapshots_went_says_why_it_cannot(h):
    image_id, snapshot = image(h)
    _, _, data, _ = deregistered(h, image_id)
    h.ec2.delete_snapshot(SnapshotId=snapshot)

    with pytest.raises(aws.AwsError, match="cannot be registered again"):
        DEREGISTER.rollback(h.ctx(checkpoints={}), data, PARAMS)
    assert h.count("RegisterImage") == 0


def test_the_snapshot_detector_and_actions_take_over_only_after_the_grace_period(h):
    image_id, snapshot = image(h)
    deregistered(h, image_id)
    detector = detectors.get("ebs-snapshot")()

    def snapshot_finding(now: datetime):
        scan = aws.AccountSession(
            ACCOUNT,
            ROLE_ARN,
            external_id=EXTERNAL_ID,
            settings=Settings(aws_endpoint_url=h.endpoint),
        )
        context = RegionContext.for_session(scan, REGION, load_catalog(), now=now)
        found = {f.resource_id: f for f in detector.detect(context, detector.parameters())}
        return found[snapshot]

    during = snapshot_finding(utcnow() + timedelta(days=5))
    (grace,) = [c for c in during.safety_checks if c.name == "ami-grace-period"]
    assert not grace.passed and image_id in grace.detail
    after = snapshot_finding(utcnow() + timedelta(days=120))
    assert [c.passed for c in after.safety_checks if c.name == "ami-grace-period"] == [True]
    assert after.safety_checks_passed

    item = h.item("ebs-snapshot", snapshot)
    delete = ebs_snapshot.DeleteSnapshot()
    early = delete.recheck(h.ctx(), item)
    assert not early.still_waste and "kept until" in early.reason
    assert delete.recheck(at(h.ctx(), utcnow() + timedelta(days=11)), item).still_waste


# --- what the re-check decides --------------------------------------------------------------


def test_recheck_reports_the_live_state_and_tags(h):
    image_id, _ = image(h)
    item = h.item("ami", image_id)
    h.ec2.create_tags(Resources=[image_id], Tags=[{"Key": "owner", "Value": "ops"}])

    result = DEREGISTER.recheck(h.ctx(), item)

    assert result.still_waste, result.reason
    assert result.facts == {"state": "available", "tags": {"team": "web", "owner": "ops"}}


@pytest.mark.parametrize(
    ("state", "gone"), [("pending", False), ("failed", False), ("deregistered", True)]
)
def test_recheck_refuses_an_image_that_is_not_available(h, state: str, gone: bool):
    image_id, _ = image(h)
    item = h.item("ami", image_id)

    def report_state(parsed, **_):
        for entry in parsed.get("Images", []):
            entry["State"] = state

    h.events.register("after-call.ec2.DescribeImages", report_state)

    result = DEREGISTER.recheck(h.ctx(), item)

    assert not result.still_waste
    assert (result.facts.get("gone") is True) is gone
    if not gone:
        assert result.reason == f"image is {state}, not available"
        assert result.facts == {"state": state, "tags": {"team": "web"}}  # what history shows


def test_recheck_under_the_scans_own_protection_tag_refuses(h):
    image_id, _ = image(h)
    item = h.item("ami", image_id)
    h.ec2.create_tags(Resources=[image_id], Tags=[{"Key": "FinOps/Keep", "Value": "y"}])

    result = DEREGISTER.recheck(
        dataclasses.replace(h.ctx(), protection_tags=("finops/keep",)), item
    )

    assert not result.still_waste
    assert result.reason == "image is now protected by tag FinOps/Keep=y"
    assert result.facts == {"state": "available", "tags": {"team": "web", "FinOps/Keep": "y"}}


def test_only_what_launches_from_this_image_keeps_it(h):
    """A terminated instance, and templates or configurations of another image, use nothing."""
    image_id, _ = image(h)
    other, _ = image(h, "other-image")
    item = h.item("ami", image_id)
    gone = h.ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]
    h.ec2.terminate_instances(InstanceIds=[gone["InstanceId"]])
    h.ec2.run_instances(ImageId=other, MinCount=1, MaxCount=1)
    h.ec2.create_launch_template(LaunchTemplateName="other", LaunchTemplateData={"ImageId": other})
    h.client("autoscaling").create_launch_configuration(
        LaunchConfigurationName="lc-other", ImageId=other, InstanceType="t3.micro"
    )

    result = DEREGISTER.recheck(h.ctx(), item)

    assert result.still_waste, result.reason
    assert "used_by" not in result.facts


def test_every_user_is_reported(h):
    image_id, _ = image(h)
    item = h.item("ami", image_id)
    h.ec2.create_launch_template(LaunchTemplateName="lt", LaunchTemplateData={"ImageId": image_id})
    h.client("autoscaling").create_launch_configuration(
        LaunchConfigurationName="lc", ImageId=image_id, InstanceType="t3.micro"
    )

    result = DEREGISTER.recheck(h.ctx(), item)

    assert result.facts["used_by"] == ["launch template lt version 1", "launch configuration lc"]
    assert (
        result.reason
        == "image is now used by launch template lt version 1, launch configuration lc"
    )


# --- dry run, prepare, execute ------------------------------------------------------------------


def test_dry_run_asks_for_the_snapshot_tags_then_the_deregistration(h):
    image_id, snapshot = image(h)
    item = h.item("ami", image_id)

    result = DEREGISTER.dry_run(h.ctx(), item, PARAMS)

    assert result.calls == ("ec2:CreateTags", "ec2:DeregisterImage")
    assert [(r.operation, r.params) for r in h.mutating()] == [
        (
            "CreateTags",
            {
                "Resources": [snapshot],
                "Tags": [{"Key": RETAIN_UNTIL_TAG, "Value": "dry-run"}],
                "DryRun": True,
            },
        ),
        ("DeregisterImage", {"ImageId": image_id, "DryRun": True}),
    ]


def test_prepare_records_what_registers_the_image_again(h):
    image_id, snapshot = image(h)
    item = h.item("ami", image_id)

    data = DEREGISTER.prepare(h.ctx(), item, PARAMS, {})

    assert data["image_id"] == image_id
    assert data["tags"] == {"team": "web"}
    assert data["snapshot_ids"] == [snapshot]
    assert data["register"]["Name"] == "web-2023.01"
    assert data["register"]["RootDeviceName"] == "/dev/sda1"
    assert data["register"]["BlockDeviceMappings"] == [
        {
            "DeviceName": "/dev/sda1",
            "Ebs": {
                "SnapshotId": snapshot,
                "VolumeSize": 15,
                "VolumeType": "standard",
                "DeleteOnTermination": False,
            },
        }
    ]
    assert "ImageId" not in data["register"] and "State" not in data["register"]


def test_a_rerun_of_prepare_tags_the_date_first_recorded(h):
    image_id, snapshot = image(h)
    item = h.item("ami", image_id)
    ctx = h.ctx()
    first = DEREGISTER.prepare(ctx, item, PARAMS, {})
    h.ec2.delete_tags(Resources=[snapshot], Tags=[{"Key": RETAIN_UNTIL_TAG}])
    later = at(ctx, ctx.now() + timedelta(days=3))

    again = DEREGISTER.prepare(later, item, PARAMS, dict(h.checkpoints))

    assert again == first
    tags = tag_dict(h.ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]["Tags"])
    assert tags[RETAIN_UNTIL_TAG] == first["retain_until"]
    assert tags[DEREGISTERED_IMAGE_TAG] == image_id


def test_prepare_of_an_image_deregistered_before_it_was_recorded_fails_not_found(h):
    image_id, _ = image(h)
    item = h.item("ami", image_id)
    h.ec2.deregister_image(ImageId=image_id)

    with pytest.raises(aws.AwsError) as failed:
        DEREGISTER.prepare(h.ctx(), item, PARAMS, {})

    assert (failed.value.kind, failed.value.code) == (
        aws.ErrorKind.NOT_FOUND,
        "InvalidAMIID.NotFound",
    )
    assert str(failed.value) == (
        "ec2:DescribeImages in us-east-1 failed (not-found, InvalidAMIID.NotFound): "
        f"{image_id} is gone before its configuration was recorded"
    )
    assert h.mutating() == []


def test_execute_without_a_recorded_registration_refuses_and_calls_nothing(h):
    image_id, _ = image(h)
    item = h.item("ami", image_id)

    with pytest.raises(aws.AwsError) as failed:
        DEREGISTER.execute(h.ctx(), item, PARAMS, {"snapshot_ids": []})

    assert (failed.value.kind, failed.value.code) == (aws.ErrorKind.TERMINAL, "MissingRollbackData")
    assert registered(h, image_id)
    assert h.mutating() == []


def test_execute_says_which_snapshots_are_kept_until_when(h):
    image_id, snapshot = image(h)
    _, _, data, outcome = deregistered(h, image_id)

    assert outcome.note == (
        f"deregistered {image_id}; snapshots {snapshot} kept until {data['retain_until']}"
    )
    assert outcome.response["ImageId"] == image_id


# --- rollback -----------------------------------------------------------------------------------


def test_rollback_registers_from_the_record_with_the_tags_and_checkpoints_the_image(h):
    image_id, _ = image(h)
    _, _, data, _ = deregistered(h, image_id)
    checkpoints: dict = {}
    rollback_ctx = h.ctx(checkpoints=checkpoints)
    stale = {**data, "tags": {**data["tags"], ACTION_TAG: "the-original-cleanup"}}

    outcome = DEREGISTER.rollback(rollback_ctx, stale, PARAMS)

    new_id = outcome.response["ImageId"]
    assert outcome.response == {"ImageId": new_id, "PreviousImageId": image_id}
    assert outcome.note == f"{image_id} registered again as {new_id}"
    assert checkpoints == {"registered_image_id": new_id}
    (call,) = h.recorder.calls(operation="RegisterImage")
    assert {k: v for k, v in call.params.items() if k != "TagSpecifications"} == data["register"]
    # Tagged in the call that makes the image (AWS refuses another ResourceType there): a crash
    # before the CreateTags below still leaves it findable by the rollback's action tag.
    assert call.params["TagSpecifications"] == [
        {
            "ResourceType": "image",
            "Tags": [
                {"Key": ACTION_TAG, "Value": str(rollback_ctx.action_id)},
                {"Key": "team", "Value": "web"},
            ],
        }
    ]
    (tagged,) = h.recorder.calls(
        operation="CreateTags",
    )[-1:]
    assert tagged.params["Resources"] == [new_id]
    again = h.ec2.describe_images(ImageIds=[new_id])["Images"][0]
    assert tag_dict(again["Tags"]) == {"team": "web", ACTION_TAG: str(rollback_ctx.action_id)}


def test_a_rollback_finds_its_earlier_image_by_its_tag_before_the_name(h):
    image_id, _ = image(h)
    _, _, data, _ = deregistered(h, image_id)
    rollback_ctx = h.ctx(checkpoints={})
    first = DEREGISTER.rollback(rollback_ctx, data, PARAMS)
    renamed = {**data, "register": {**data["register"], "Name": "renamed-since"}}

    again = DEREGISTER.rollback(rollback_ctx, renamed, PARAMS)

    assert again.already_done
    assert again.response == {"ImageId": first.response["ImageId"], "PreviousImageId": image_id}
    assert h.count("RegisterImage") == 1


@pytest.mark.parametrize(("state", "taken"), [("pending", True), ("failed", False)])
def test_a_rerun_takes_the_image_it_registered_only_while_it_is_usable(h, state, taken):
    """RegisterImage answers with an image that is ``pending`` for a while: a rerun then must
    take it as the earlier attempt's (AWS would refuse a second image of the same name). One
    that ``failed`` is no undo: the rerun registers the image again."""
    image_id, _ = image(h)
    _, _, data, _ = deregistered(h, image_id)
    rollback_ctx = h.ctx(checkpoints={})
    first = DEREGISTER.rollback(rollback_ctx, data, PARAMS)
    new_id = first.response["ImageId"]

    def reported_as(parsed, **_):
        for entry in parsed.get("Images", []):
            if entry["ImageId"] == new_id:
                entry["State"] = state

    h.events.register("after-call.ec2.DescribeImages", reported_as)
    again = DEREGISTER.rollback(rollback_ctx, data, PARAMS)

    assert again.already_done is taken
    assert (again.response["ImageId"] == new_id) is taken
    assert h.count("RegisterImage") == (1 if taken else 2)


def test_a_deregistered_image_of_the_same_name_is_not_an_earlier_rollback(h):
    image_id, _ = image(h)
    _, _, data, _ = deregistered(h, image_id)
    first = DEREGISTER.rollback(h.ctx(checkpoints={}), data, PARAMS)
    h.ec2.deregister_image(ImageId=first.response["ImageId"])

    second = DEREGISTER.rollback(h.ctx(checkpoints={}), data, PARAMS)

    assert not second.already_done
    assert second.response["ImageId"] != first.response["ImageId"]
    assert registered(h, second.response["ImageId"])


def test_rollback_names_the_snapshots_that_are_gone(h):
    image_id, snapshot = image(h)
    _, _, data, _ = deregistered(h, image_id)
    h.ec2.delete_snapshot(SnapshotId=snapshot)

    with pytest.raises(aws.AwsError) as failed:
        DEREGISTER.rollback(h.ctx(checkpoints={}), data, PARAMS)

    assert (failed.value.kind, failed.value.code) == (
        aws.ErrorKind.TERMINAL,
        "InvalidSnapshot.NotFound",
    )
    assert f"snapshot(s) {snapshot} of {image_id} are gone" in str(failed.value)


# --- everything RegisterImage needs, the grace date, and the words each step says ---------------

# What AWS reports for an HVM image with instance-store and suppressed devices, and more of
# DescribeImages' fields than moto keeps; RegisterImage must get each of them back.
_FULL_IMAGE = {
    "Description": "web tier, January build",
    "Architecture": "arm64",
    "VirtualizationType": "hvm",
    "EnaSupport": True,
    "SriovNetSupport": "simple",
    "BootMode": "uefi",
    "TpmSupport": "v2.0",
    "ImdsSupport": "v2.0",
    "KernelId": "aki-0123456789abcdef0",
    "RamdiskId": "ari-0123456789abcdef0",
    "PlatformDetails": "Linux/UNIX",  # read-only: not a RegisterImage parameter
}


def _reported_in_full(h: StorageHarness, snapshot: str) -> None:
    def report(parsed, **_):
        for entry in parsed.get("Images", []):
            entry.update(_FULL_IMAGE)
            entry["BlockDeviceMappings"] = [
                {
                    "DeviceName": "/dev/xvda",
                    "Ebs": {
                        "SnapshotId": snapshot,
                        "VolumeSize": 20,
                        "VolumeType": "gp3",
                        "DeleteOnTermination": True,
                        "Iops": 4000,
                        "Throughput": 250,
                        "Encrypted": False,  # follows the snapshot: not sent back
                    },
                },
                {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"},
                {"DeviceName": "/dev/sdc", "NoDevice": ""},
            ]

    h.events.register("after-call.ec2.DescribeImages", report)


def test_prepare_records_every_field_registerimage_takes_back(h):
    image_id, snapshot = image(h)
    item = h.item("ami", image_id)
    _reported_in_full(h, snapshot)
    noon = datetime.fromisoformat("2026-12-04T12:00:00.654321+00:00")

    data = DEREGISTER.prepare(at(h.ctx(), noon), item, PARAMS, {})

    assert data["register"] == {
        "Name": "web-2023.01",
        "RootDeviceName": "/dev/sda1",
        **{k: v for k, v in _FULL_IMAGE.items() if k != "PlatformDetails"},
        "BlockDeviceMappings": [
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {
                    "SnapshotId": snapshot,
                    "VolumeSize": 20,
                    "VolumeType": "gp3",
                    "DeleteOnTermination": True,
                    "Iops": 4000,
                    "Throughput": 250,
                },
            },
            {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"},
            {"DeviceName": "/dev/sdc", "NoDevice": ""},
        ],
    }
    # Ten days of grace from the step's clock, to the second (the tag AWS keeps).
    assert data["retain_until"] == "2026-12-14T12:00:00+00:00"
    assert data["snapshot_ids"] == [snapshot]


def test_the_recheck_says_why_in_the_words_the_history_shows(h):
    image_id, _ = image(h)
    item = h.item("ami", image_id)
    waste = DEREGISTER.recheck(h.ctx(), item)
    for n in range(6):
        h.ec2.create_launch_template(
            LaunchTemplateName=f"lt-{n}", LaunchTemplateData={"ImageId": image_id}
        )
    used = DEREGISTER.recheck(h.ctx(), item)
    h.ec2.deregister_image(ImageId=image_id)
    gone = DEREGISTER.recheck(h.ctx(), item)

    assert waste.reason == "still available, unprotected and used by nothing"
    # The reason names the first five users; the facts keep them all.
    assert used.reason == "image is now used by " + ", ".join(
        f"launch template lt-{n} version 1" for n in range(5)
    )
    assert len(used.facts["used_by"]) == 6
    assert gone.reason == "image is deregistered"


@pytest.mark.parametrize("devices", [0, 2])
def test_execute_names_the_kept_snapshots_or_says_none_are_kept(h, devices):
    """An instance-store image has no snapshots to keep: nothing is tagged, and the note says so;
    an image of two EBS devices keeps two, both named."""
    image_id, _ = image(h)
    item = h.item("ami", image_id)
    kept = [h.ec2.create_snapshot(VolumeId=h.volume())["SnapshotId"] for _ in range(devices)]
    data = {"image_id": image_id, "register": {"Name": "web-2023.01"}, "snapshot_ids": kept}
    data["retain_until"] = "2026-12-14T12:00:00+00:00"

    outcome = DEREGISTER.execute(h.ctx(), item, PARAMS, data)
    again = DEREGISTER.execute(h.ctx(), item, PARAMS, data)

    named = f"{kept[0]}, {kept[1]}" if kept else "(none)"
    assert outcome.note == (
        f"deregistered {image_id}; snapshots {named} kept until 2026-12-14T12:00:00+00:00"
    )
    assert again.note == f"{image_id} was already deregistered (an earlier attempt)"
    # The history shows which error said it was done already.
    assert again.response == {"ImageId": image_id, "Error": "InvalidAMIID.Unavailable"}
    assert not registered(h, image_id)


def test_the_refusals_a_user_reads_say_why_exactly(h):
    image_id, snapshot = image(h)
    item = h.item("ami", image_id)
    ctx = h.ctx()

    with pytest.raises(aws.AwsError) as unrecorded:
        DEREGISTER.execute(ctx, item, PARAMS, {"snapshot_ids": []})
    # An image of two devices (moto registers one): both snapshots gone, both named.
    second = h.ec2.create_snapshot(VolumeId=h.volume())["SnapshotId"]
    data = DEREGISTER.prepare(ctx, item, PARAMS, {})
    data = {**data, "snapshot_ids": [*data["snapshot_ids"], second]}
    h.ec2.deregister_image(ImageId=image_id)
    h.ec2.delete_snapshot(SnapshotId=snapshot)
    h.ec2.delete_snapshot(SnapshotId=second)
    with pytest.raises(aws.AwsError) as no_snapshot:
        DEREGISTER.execute(ctx, item, PARAMS, data)
    with pytest.raises(aws.AwsError) as no_rollback:
        DEREGISTER.rollback(h.ctx(checkpoints={}), data, PARAMS)

    assert str(unrecorded.value) == (
        "ec2:DeregisterImage in us-east-1 failed (terminal, MissingRollbackData): refusing to "
        f"deregister {image_id}: its registration was not recorded; run prepare again"
    )
    assert str(no_snapshot.value) == (
        "ec2:DeregisterImage in us-east-1 failed (terminal, MissingRollbackData): refusing to "
        f"deregister {image_id}: its snapshot(s) {snapshot}, {second} are gone, so it could "
        "not be registered again"
    )
    assert str(no_rollback.value) == (
        "ec2:RegisterImage in us-east-1 failed (terminal, InvalidSnapshot.NotFound): "
        f"snapshot(s) {snapshot}, {second} of {image_id} are gone (the grace period ended or "
        "someone deleted them): the image cannot be registered again"
    )


def test_a_rerun_of_the_rollback_says_which_image_it_made(h):
    image_id, _ = image(h)
    _, _, data, _ = deregistered(h, image_id)
    rollback_ctx = h.ctx(checkpoints={})
    first = DEREGISTER.rollback(rollback_ctx, data, PARAMS)

    again = DEREGISTER.rollback(rollback_ctx, data, PARAMS)

    new_id = first.response["ImageId"]
    assert again.note == f"{image_id} was registered again as {new_id} (an earlier attempt)"
