"""The helpers every cleanup action shares; above all, re-checks are never laxer than the scan."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from cloudsweep import aws
from cloudsweep.cleanup import (
    ACTION_TAG,
    CleanupItem,
    common,
    ebs_volume,
    ec2_stopped_instance,
    elastic_ip,
    log_group,
)
from cloudsweep.cleanup.selection import DEFAULT_PROTECTION_TAGS, Selection
from cloudsweep.domain import utcnow
from cloudsweep.pricing import PriceCatalog
from tests import faults

from .compute_helpers import run_instance
from .ebs_helpers import Harness, tags_spec
from .storage_helpers import StorageHarness

KEYS = ("cloudsweep.io/protect", "do-not-delete")


@pytest.mark.parametrize(
    ("tags", "protected"),
    [
        ({"do-not-delete": "true"}, True),
        ({"Do-Not-Delete": "yes"}, True),  # keys match whatever their case
        ({"CLOUDSWEEP.IO/PROTECT": ""}, True),  # present with no value protects
        ({"do-not-delete": "false"}, False),
        ({"do-not-delete": " Off "}, False),
        ({"team": "web"}, False),
    ],
)
def test_protection_tags_are_judged_as_the_detectors_judge_them(
    tags: dict[str, str], protected: bool
) -> None:
    assert (common.protected_by(tags, KEYS) is not None) is protected


# --- savings ----------------------------------------------------------------------------------


def _item(region: str, cost: str, pricing: dict[str, object]) -> CleanupItem:
    return CleanupItem(
        waste_item_id=uuid.uuid4(),
        account_id="123456789012",
        region=region,
        resource_type="rds-instance",
        resource_id="db-1",
        resource_arn=None,
        availability_zone=None,
        monthly_cost=Decimal(cost),
        resource_details={"pricing": pricing},
    )


def test_savings_keeping_subtract_the_kept_copy_at_the_scanned_size() -> None:
    item = _item("us-east-1", "30.00", {"allocated_storage_gib": 100})
    # 100 GiB of RDS snapshot storage at 0.095 USD/GB-month in us-east-1
    assert common.savings_keeping(
        item, "allocated_storage_gib", PriceCatalog.rds_snapshot_monthly
    ) == Decimal("20.50")
    # A copy dearer than the item saves nothing, never a negative amount.
    cheap = _item("us-east-1", "5.00", {"allocated_storage_gib": 100})
    assert common.savings_keeping(
        cheap, "allocated_storage_gib", PriceCatalog.rds_snapshot_monthly
    ) == Decimal("0.00")


def test_savings_keeping_without_a_size_or_a_price_falls_back() -> None:
    unsized = _item("us-east-1", "30.00", {})
    unknown_region = _item("cn-north-1", "30.00", {"allocated_storage_gib": 100})
    for item in (unsized, unknown_region):
        assert common.savings_keeping(
            item, "allocated_storage_gib", PriceCatalog.rds_snapshot_monthly
        ) == Decimal("30.00")
        assert common.savings_keeping(
            item, "allocated_storage_gib", PriceCatalog.rds_snapshot_monthly, unpriced=Decimal(0)
        ) == Decimal(0)


# --- the shared AWS helpers and tag rules, through the actions (moto over HTTP) ---------------


RELEASE = elastic_ip.ReleaseAddress()
SNAPSHOT_AND_DELETE = ebs_volume.SnapshotAndDeleteVolume()


@pytest.fixture
def h(moto_endpoint: str) -> Harness:
    return Harness(moto_endpoint)


def _address(h: Harness) -> str:
    return h.ec2.allocate_address(Domain="vpc")["AllocationId"]


# --- the shared AWS helpers, through the actions that use them ---------------------------------


def test_a_refused_describe_is_an_error_not_a_resource_gone(h: Harness):
    """Only "not found" means gone: a denied or failing read must stop the step, never let the
    reconciliation record a removal that did not happen."""
    allocation = _address(h)
    item = h.item("elastic-ip", allocation)
    faults.fail_with(
        h.events,
        "before-send.ec2.DescribeAddresses",
        status=403,
        body=faults.ec2_error_body("UnauthorizedOperation", "not allowed"),
    )

    with pytest.raises(aws.AwsError) as failed:
        RELEASE.recheck(h.ctx(), item)

    assert failed.value.kind is aws.ErrorKind.ACCESS_DENIED
    # As the ledger records it: which read, where, and AWS's own words.
    assert str(failed.value) == (
        "ec2:DescribeAddresses in us-east-1 failed (access-denied, UnauthorizedOperation): "
        "not allowed"
    )


def test_an_endpoint_that_ignores_dry_run_stops_everything(h: Harness):
    allocation = _address(h)
    item = h.item("elastic-ip", allocation)
    body = (
        b'<ReleaseAddressResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
        b"<requestId>ignored-dry-run</requestId><return>true</return></ReleaseAddressResponse>"
    )
    faults.fail_with(h.events, "before-send.ec2.ReleaseAddress", status=200, body=body)

    with pytest.raises(aws.AwsError) as failed:
        RELEASE.dry_run(h.ctx(), item, h.params(RELEASE))

    assert (failed.value.kind, failed.value.code) == (aws.ErrorKind.TERMINAL, "DryRunIgnored")
    # What the ledger records and a person reads, in full.
    assert str(failed.value) == (
        "ec2:ReleaseAddress in us-east-1 failed (terminal, DryRunIgnored): the endpoint answered "
        "a DryRun call with success instead of DryRunOperation; it may have changed something: "
        "check the AWS endpoint setting"
    )


def test_a_throttled_dry_run_raises_instead_of_answering(h: Harness):
    allocation = _address(h)
    item = h.item("elastic-ip", allocation)
    faults.throttle(h.events, "ec2", "ReleaseAddress")

    with pytest.raises(aws.AwsError) as failed:
        RELEASE.dry_run(h.ctx(), item, h.params(RELEASE))

    assert failed.value.kind.retryable


def test_a_refused_dry_run_names_each_call_that_would_fail(h: Harness):
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    faults.fail_with(
        h.events,
        "before-send.ec2.DeleteVolume",
        status=403,
        body=faults.ec2_error_body("UnauthorizedOperation", "no delete for you"),
    )

    result = SNAPSHOT_AND_DELETE.dry_run(h.ctx(), item, h.params(SNAPSHOT_AND_DELETE))

    assert not result.would_succeed
    assert result.message == (
        "ec2:DeleteVolume would fail (UnauthorizedOperation): no delete for you"
    )
    assert result.calls == ("ec2:CreateSnapshot", "ec2:DeleteVolume")


def test_a_dry_run_refused_twice_names_both_calls(h: Harness):
    """Every refused call is named, not only the first: a person fixes the permissions once."""
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    for operation, message in (("CreateSnapshot", "no snapshot"), ("DeleteVolume", "no delete")):
        faults.fail_with(
            h.events,
            f"before-send.ec2.{operation}",
            status=403,
            body=faults.ec2_error_body("UnauthorizedOperation", message),
        )

    result = SNAPSHOT_AND_DELETE.dry_run(h.ctx(), item, h.params(SNAPSHOT_AND_DELETE))

    assert not result.would_succeed
    assert result.message == (
        "ec2:CreateSnapshot would fail (UnauthorizedOperation): no snapshot; "
        "ec2:DeleteVolume would fail (UnauthorizedOperation): no delete"
    )


def test_an_allowed_dry_run_says_so(h: Harness):
    volume = h.volume()
    item = h.item("ebs-volume", volume)

    result = SNAPSHOT_AND_DELETE.dry_run(h.ctx(), item, h.params(SNAPSHOT_AND_DELETE))

    assert result.would_succeed
    assert result.message == "AWS would allow ec2:CreateSnapshot, ec2:DeleteVolume"


def test_an_outcome_keeps_the_request_id_and_drops_the_metadata(h: Harness):
    allocation = _address(h)
    item = h.item("elastic-ip", allocation)
    ctx, params = h.ctx(), h.params(RELEASE)

    outcome = RELEASE.execute(ctx, item, params, RELEASE.prepare(ctx, item, params, {}))

    assert "ResponseMetadata" not in outcome.response
    assert outcome.response["RequestId"]


def test_reserved_aws_tags_are_kept_out_of_the_undo_data(h: Harness):
    """AWS refuses tags with the ``aws:`` prefix (any case) in CreateVolume and CreateSnapshot:
    the rollback data records only the tags a caller may set again."""
    volume = h.ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=10,
        VolumeType="gp2",
        TagSpecifications=tags_spec(
            "volume",
            {"team": "data", "aws:cloudformation:stack-name": "web", "AWS:backup:plan": "daily"},
        ),
    )["VolumeId"]
    item = h.item("ebs-volume", volume)
    ctx, params = h.ctx(), h.params(SNAPSHOT_AND_DELETE)

    recheck = SNAPSHOT_AND_DELETE.recheck(ctx, item)
    data = SNAPSHOT_AND_DELETE.prepare(ctx, item, params, {})

    assert recheck.facts["tags"]["aws:cloudformation:stack-name"] == "web"  # the live tags
    assert data["tags"] == {"team": "data"}
    (create,) = h.recorder.calls(operation="CreateSnapshot")
    keys = [t["Key"] for t in create.params["TagSpecifications"][0]["Tags"]]
    assert keys == sorted(keys) and "aws:cloudformation:stack-name" not in keys


def test_tags_without_a_key_are_ignored_and_a_missing_value_is_empty(h: Harness):
    allocation = _address(h)
    item = h.item("elastic-ip", allocation)

    def odd_tags(parsed, **_):
        for entry in parsed.get("Addresses", []):
            entry["Tags"] = [{"Key": "bare"}, {"Value": "orphan"}, {"Key": "team", "Value": "x"}]

    h.events.register("after-call.ec2.DescribeAddresses", odd_tags)

    result = RELEASE.recheck(h.ctx(), item)

    assert result.facts["tags"] == {"bare": "", "team": "x"}


# --- the tag rules that selected an item -------------------------------------------------------


def test_the_selection_joins_defaults_caller_and_scan_protection_tags_once():
    selection = Selection.of(
        {"selection": {"protection_tags": ["finops/keep", "do-not-delete"]}},
        protection_tags=("cli/keep",),
        include_tags={"env": "dev"},
        exclude_tags={"tier": "*"},
    )

    assert selection.protection_tags == (*DEFAULT_PROTECTION_TAGS, "cli/keep", "finops/keep")
    assert (selection.include_tags, selection.exclude_tags) == ({"env": "dev"}, {"tier": "*"})
    assert Selection.of({}).protection_tags == DEFAULT_PROTECTION_TAGS
    assert Selection.of({"selection": None}) == Selection()


@pytest.mark.parametrize(
    ("tags", "refusal"),
    [
        ({"env": "dev"}, None),
        (
            {"env": "dev", "Finops/Keep": "true"},
            "protected by tag Finops/Keep=true (a protection tag of the scan that found it)",
        ),
        ({"env": "dev", "finops/keep": "off"}, None),
        ({"env": "dev", "tier": "gold"}, "now has the policy's excluded tags tier"),
        ({"env": "dev", "legal": "hold"}, "now has the policy's excluded tags legal"),
        ({"env": "dev", "legal": "released"}, None),
        (
            {"env": "dev", "tier": "x", "legal": "hold"},
            "now has the policy's excluded tags tier, legal",
        ),
        ({"env": "prod"}, "no longer has the policy's included tags env"),
        ({}, "no longer has the policy's included tags env, owner"),
        ({"env": "dev", "owner": ""}, None),
        (
            {"env": "prod", "tier": "x", "finops/keep": "1"},
            "protected by tag finops/keep=1 (a protection tag of the scan that found it)",
        ),
        ({"env": "prod", "tier": "x"}, "now has the policy's excluded tags tier"),
    ],
)
def test_the_selection_refuses_by_protection_then_exclusion_then_inclusion(
    tags: dict[str, str], refusal: str | None
):
    selection = Selection.of(
        {"selection": {"protection_tags": ["finops/keep"]}},
        include_tags={"env": "dev", "owner": "*"},
        exclude_tags={"tier": "*", "legal": "hold"},
    )
    tags = {"owner": "ops", **tags} if "owner" not in tags and tags else tags

    found = selection.refusal(tags)

    assert found == refusal  # the whole text: the history records it as the refusal


# --- the refusals a person reads: the ledger records ``str(error)`` whole ---------------------


def test_execute_without_undo_data_reads_as_a_refusal_in_full(h: Harness):
    """The executor stores ``str(error)`` as the action's error: the service, the region, the
    code and the message all reach the person who must act on it."""
    volume = h.volume()
    item = h.item("ebs-volume", volume)

    with pytest.raises(common.MissingRollbackData) as failed:
        SNAPSHOT_AND_DELETE.execute(h.ctx(), item, h.params(SNAPSHOT_AND_DELETE), {})

    assert str(failed.value) == (
        "ec2:DeleteVolume in us-east-1 failed (terminal, MissingRollbackData): refusing to "
        f"delete {volume}: no snapshot was recorded; run prepare again"
    )
    assert failed.value.kind is aws.ErrorKind.TERMINAL
    assert h.volume_exists(volume) and h.count("DeleteVolume") == 0


def test_a_resource_gone_before_prepare_recorded_it_reads_in_full(moto_endpoint: str):
    s = StorageHarness(moto_endpoint)
    logs = s.client("logs")
    logs.create_log_group(logGroupName="/app/vanished")
    logs.create_log_stream(logGroupName="/app/vanished", logStreamName="s")
    logs.put_log_events(  # a group that stores something: the scan's finding
        logGroupName="/app/vanished",
        logStreamName="s",
        logEvents=[{"timestamp": int(utcnow().timestamp() * 1000), "message": "x" * 4000}],
    )
    item = s.item("cloudwatch-log-group", "/app/vanished")
    logs.delete_log_group(logGroupName="/app/vanished")
    action = log_group.SetRetention()

    with pytest.raises(aws.AwsError) as failed:
        action.prepare(s.ctx(), item, action.parameters({}), {})

    assert failed.value.kind is aws.ErrorKind.NOT_FOUND
    assert str(failed.value) == (
        "logs:DescribeLogGroups in us-east-1 failed (not-found, ResourceNotFoundException): "
        "/app/vanished is gone before its configuration was recorded"
    )


# --- what an earlier attempt made is found again, and only it ----------------------------------


def test_an_earlier_attempt_is_asked_for_among_the_accounts_own_by_the_action_tag(h: Harness):
    """AWS is asked for the account's own snapshots (``OwnerIds=self``: never the public ones of
    other accounts) that carry this action's tag, not for every snapshot there is."""
    volume = h.volume()
    item = h.item("ebs-volume", volume)
    ctx = h.ctx()

    SNAPSHOT_AND_DELETE.prepare(ctx, item, h.params(SNAPSHOT_AND_DELETE), {})

    (search,) = [
        r for r in h.recorder.calls(operation="DescribeSnapshots") if "Filters" in r.params
    ]
    assert search.params == {
        "Filters": [{"Name": f"tag:{ACTION_TAG}", "Values": [str(ctx.action_id)]}],
        "OwnerIds": ["self"],
    }


def test_a_rollback_rerun_finds_the_instance_the_first_run_launched(h: Harness):
    """The instances of ``DescribeInstances`` sit in its reservations: the rerun must look
    inside them to find its own launch, and report the rollback done instead of launching."""
    instance_id = run_instance(h)
    h.ec2.stop_instances(InstanceIds=[instance_id])
    terminate = ec2_stopped_instance.SnapshotAndTerminateInstance()
    item = h.item("ec2-stopped-instance", instance_id)
    ctx, params = h.ctx(), h.params(terminate)
    data = terminate.prepare(ctx, item, params, {})
    terminate.execute(ctx, item, params, data)
    rollback_ctx = h.ctx(checkpoints={})

    first = terminate.rollback(rollback_ctx, data, params)
    again = terminate.rollback(rollback_ctx, data, params)

    assert (first.already_done, again.already_done) == (False, True)
    assert again.response["InstanceId"] == first.response["InstanceId"]
    assert h.count("RunInstances") == 1
