"""The elastic-ip cleanup action (release) against moto over HTTP.

moto releases an associated address (disassociating it first) where AWS refuses with
``InvalidIPAddress.InUse``, so under moto the recheck is the only guard against releasing an
address in use: these tests check that it holds.
"""

from __future__ import annotations

import pytest

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import elastic_ip
from cloudsweep.domain import ActionType
from tests import faults

from .ebs_helpers import Harness, tags_spec

RELEASE = elastic_ip.ReleaseAddress()


@pytest.fixture
def h(moto_endpoint: str) -> Harness:
    return Harness(moto_endpoint)


def _address(h: Harness, tags: dict[str, str] | None = None) -> tuple[str, str]:
    spec = {"TagSpecifications": tags_spec("elastic-ip", tags)} if tags else {}
    address = h.ec2.allocate_address(Domain="vpc", **spec)
    return address["AllocationId"], address["PublicIp"]


def _allocated(h: Harness) -> set[str]:
    return {a["AllocationId"] for a in h.ec2.describe_addresses()["Addresses"]}


def test_registered_with_its_contract():
    assert cleanup.get("elastic-ip", "release") is elastic_ip.ReleaseAddress
    assert RELEASE.action_type is ActionType.RELEASE
    assert RELEASE.rollback_possible is False
    assert (
        RELEASE.rollback_note == "AWS cannot give a released address back; the address is recorded"
    )
    assert set(RELEASE.permissions) == {"ec2:DescribeAddresses", "ec2:ReleaseAddress"}
    with pytest.raises(NotImplementedError, match="cannot give a released address back"):
        RELEASE.rollback(None, {}, RELEASE.parameters())  # type: ignore[arg-type]


def test_recheck_passes_for_an_unassociated_address(h: Harness):
    allocation, _ = _address(h, tags={"do-not-delete": "off"})

    result = RELEASE.recheck(h.ctx(), h.item("elastic-ip", allocation))

    assert result.still_waste, result.reason
    assert h.mutating() == []


def test_recheck_refuses_an_address_associated_again(h: Harness):
    allocation, _ = _address(h)
    item = h.item("elastic-ip", allocation)
    instance = h.instance()
    h.ec2.associate_address(AllocationId=allocation, InstanceId=instance)

    result = RELEASE.recheck(h.ctx(), item)

    assert not result.still_waste
    assert f"instance {instance}" in result.reason


def test_recheck_refuses_an_address_protected_since_the_scan(h: Harness):
    allocation, _ = _address(h)
    item = h.item("elastic-ip", allocation)
    h.ec2.create_tags(
        Resources=[allocation], Tags=[{"Key": "do-not-delete", "Value": "partner allow-list"}]
    )

    result = RELEASE.recheck(h.ctx(), item)

    assert not result.still_waste
    assert "protected by tag do-not-delete" in result.reason


def test_recheck_reports_a_released_address_as_gone(h: Harness):
    allocation, _ = _address(h)
    item = h.item("elastic-ip", allocation)
    h.ec2.release_address(AllocationId=allocation)

    result = RELEASE.recheck(h.ctx(), item)

    assert (result.still_waste, result.facts) == (False, {"gone": True})


def test_dry_run_changes_nothing_and_only_makes_dry_run_calls(h: Harness):
    allocation, _ = _address(h)
    item = h.item("elastic-ip", allocation)
    before = h.world()

    result = RELEASE.dry_run(h.ctx(), item, h.params(RELEASE))

    assert result.would_succeed, result.message
    assert result.calls == ("ec2:ReleaseAddress",)
    assert h.world() == before
    (call,) = h.mutating()
    assert call.params == {"AllocationId": allocation, "DryRun": True}


def test_release_records_the_address_then_release_again_is_done(h: Harness):
    allocation, public_ip = _address(h, tags={"team": "edge"})
    other, _ = _address(h)
    item = h.item("elastic-ip", allocation)
    ctx, params = h.ctx(), h.params(RELEASE)

    data = RELEASE.prepare(ctx, item, params, {})
    outcome = RELEASE.execute(ctx, item, params, data)
    repeated = RELEASE.execute(ctx, item, params, data)

    assert data["allocation_id"] == allocation
    assert data["public_ip"] == public_ip
    assert data["domain"] == "vpc"
    assert data["tags"] == {"team": "edge"}
    assert "network_border_group" in data
    assert not outcome.already_done
    assert repeated.already_done and repeated.response["Error"] == "InvalidAllocationID.NotFound"
    assert _allocated(h) == {other}


def test_a_lost_release_response_is_done_on_the_next_attempt(h: Harness):
    allocation, _ = _address(h)
    item = h.item("elastic-ip", allocation)
    ctx, params = h.ctx(), h.params(RELEASE)
    data = RELEASE.prepare(ctx, item, params, {})
    faults.lose_response(h.events, "ec2", "ReleaseAddress")

    with pytest.raises(aws.AwsError) as failed:
        RELEASE.execute(ctx, item, params, data)
    assert failed.value.kind is aws.ErrorKind.RECOVERABLE

    assert RELEASE.execute(ctx, item, params, data).already_done
    assert _allocated(h) == set()


def test_an_address_in_use_fails_with_the_aws_message(h: Harness):
    allocation, _ = _address(h)
    item = h.item("elastic-ip", allocation)
    faults.fail_with(
        h.events,
        "before-send.ec2.ReleaseAddress",
        status=400,
        body=faults.ec2_error_body("InvalidIPAddress.InUse", "Address is in use"),
    )

    with pytest.raises(aws.AwsError) as failed:
        RELEASE.execute(h.ctx(), item, h.params(RELEASE), {})

    assert (failed.value.kind, failed.value.code) == (
        aws.ErrorKind.TERMINAL,
        "InvalidIPAddress.InUse",
    )
    assert "Address is in use" in str(failed.value)
    assert _allocated(h) == {allocation}
