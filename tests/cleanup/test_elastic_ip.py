"""The elastic-ip cleanup action (release) against moto over HTTP.

moto releases an associated address (disassociating it first) where AWS refuses with
``InvalidIPAddress.InUse``, so under moto the recheck is the only guard against releasing an
address in use: these tests check that it holds.
"""

from __future__ import annotations

import dataclasses

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
    # The facts are recorded with the refused attempt.
    assert result.facts["tags"]["do-not-delete"] == "partner allow-list"


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


# --- what the re-check reports and decides ------------------------------------------------------


def test_recheck_reports_the_live_address_and_tags(h: Harness):
    allocation, public_ip = _address(h, tags={"team": "edge"})

    result = RELEASE.recheck(h.ctx(), h.item("elastic-ip", allocation))

    assert result.still_waste, result.reason
    # The executor applies the policy's tag rules to these tags: they must be the live ones.
    assert result.facts == {"public_ip": public_ip, "tags": {"team": "edge"}}


def test_recheck_refuses_an_address_associated_with_a_network_interface(h: Harness):
    allocation, _ = _address(h)
    item = h.item("elastic-ip", allocation)
    vpc = h.ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnet = h.ec2.create_subnet(VpcId=vpc, CidrBlock="10.7.1.0/24")["Subnet"]["SubnetId"]
    eni = h.ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]
    h.ec2.associate_address(AllocationId=allocation, NetworkInterfaceId=eni["NetworkInterfaceId"])

    result = RELEASE.recheck(h.ctx(), item)

    assert not result.still_waste
    assert f"network interface {eni['NetworkInterfaceId']}" in result.reason
    assert "association eipassoc-" in result.reason
    assert f"network interface {eni['NetworkInterfaceId']}" in result.facts["associated_with"]


def test_recheck_under_the_scans_own_protection_tag_refuses(h: Harness):
    allocation, _ = _address(h)
    item = h.item("elastic-ip", allocation)
    h.ec2.create_tags(Resources=[allocation], Tags=[{"Key": "Finops/Keep", "Value": "yes"}])
    ctx = dataclasses.replace(h.ctx(), protection_tags=("finops/keep",))

    result = RELEASE.recheck(ctx, item)

    assert not result.still_waste
    assert "protected by tag Finops/Keep=yes" in result.reason


# --- addresses named by public IP (EC2-Classic: no allocation ID) ------------------------------


def test_an_address_named_by_its_public_ip_is_checked_and_released_by_that_ip(h: Harness):
    allocation, public_ip = _address(h)
    _, other_ip = _address(h)
    # The detector falls back to the public IP for an address without an allocation ID.
    item = dataclasses.replace(h.item("elastic-ip", allocation), resource_id=public_ip)
    ctx, params = h.ctx(), h.params(RELEASE)

    recheck = RELEASE.recheck(ctx, item)
    dry_run = RELEASE.dry_run(ctx, item, params)
    data = RELEASE.prepare(ctx, item, params, {})
    outcome = RELEASE.execute(ctx, item, params, data)

    assert recheck.still_waste and recheck.facts["public_ip"] == public_ip, recheck
    assert dry_run.would_succeed, dry_run.message
    assert data["allocation_id"] == allocation and data["public_ip"] == public_ip
    assert not outcome.already_done
    released = [c.params for c in h.mutating() if c.operation == "ReleaseAddress"]
    assert released == [{"PublicIp": public_ip, "DryRun": True}, {"PublicIp": public_ip}]
    assert {a["PublicIp"] for a in h.ec2.describe_addresses()["Addresses"]} == {other_ip}


# --- prepare and execute: what the audit trail keeps -------------------------------------------


def test_prepare_on_a_rerun_keeps_what_the_first_attempt_recorded(h: Harness):
    allocation, public_ip = _address(h, tags={"team": "edge"})
    item = h.item("elastic-ip", allocation)
    ctx, params = h.ctx(), h.params(RELEASE)
    first = RELEASE.prepare(ctx, item, params, {})
    RELEASE.execute(ctx, item, params, first)

    again = RELEASE.prepare(ctx, item, params, first)

    assert again == first
    assert again["public_ip"] == public_ip and again["tags"] == {"team": "edge"}


def test_prepare_of_an_address_already_released_records_the_scans_view(h: Harness):
    allocation, public_ip = _address(h, tags={"team": "edge"})
    scanned = h.item("elastic-ip", allocation)
    # moto reports no NetworkBorderGroup; AWS does, and the scan keeps it.
    item = dataclasses.replace(
        scanned, resource_details={**scanned.resource_details, "network_border_group": "us-east-1"}
    )
    h.ec2.release_address(AllocationId=allocation)

    data = RELEASE.prepare(h.ctx(), item, h.params(RELEASE), {})

    assert data == {
        "allocation_id": allocation,
        "public_ip": public_ip,
        "domain": "vpc",
        "network_border_group": "us-east-1",
        "public_ipv4_pool": None,
        "tags": {"team": "edge"},
    }


def test_prepare_records_the_live_address_over_the_scans_view(h: Harness):
    allocation, public_ip = _address(h)
    item = h.item("elastic-ip", allocation)
    h.ec2.create_tags(Resources=[allocation], Tags=[{"Key": "owner", "Value": "partner-x"}])
    stale = dataclasses.replace(
        item,
        resource_details={
            **item.resource_details,
            "public_ip": "192.0.2.1",
            "domain": "standard",
        },
    )

    data = RELEASE.prepare(h.ctx(), stale, h.params(RELEASE), {})

    assert data["public_ip"] == public_ip
    assert data["domain"] == "vpc"
    assert data["tags"] == {"owner": "partner-x"}


def test_execute_says_which_address_was_given_up(h: Harness):
    allocation, public_ip = _address(h)
    item = h.item("elastic-ip", allocation)
    ctx, params = h.ctx(), h.params(RELEASE)
    data = RELEASE.prepare(ctx, item, params, {})

    outcome = RELEASE.execute(ctx, item, params, data)
    without_data = RELEASE.execute(ctx, item, params, {})

    assert outcome.note == f"released {public_ip} ({allocation})"
    assert (without_data.already_done, without_data.response) == (
        True,
        {"AllocationId": allocation, "Error": "InvalidAllocationID.NotFound"},
    )
    assert without_data.note == f"{allocation} was already released (an earlier attempt)"


# --- what the audit trail and the reasons say, exactly -----------------------------------------


def _reported_by_aws(h: Harness, **fields: str) -> None:
    """Add ``fields`` to every address DescribeAddresses answers to the cleanup's session, as AWS
    reports them and moto does not (NetworkBorderGroup, PublicIpv4Pool)."""

    def add(parsed: dict, **_: object) -> None:
        for address in parsed.get("Addresses", []):
            address.update(fields)

    h.events.register("after-call.ec2.DescribeAddresses", add)


def test_prepare_records_the_border_group_and_pool_aws_reports(h: Harness):
    allocation, public_ip = _address(h)
    item = h.item("elastic-ip", allocation)
    # The scan saw another border group: the record must say where the address was given up.
    scanned = dataclasses.replace(
        item, resource_details={**item.resource_details, "network_border_group": "us-east-1"}
    )
    _reported_by_aws(h, NetworkBorderGroup="us-east-1-bos-1", PublicIpv4Pool="ipv4pool-ec2-0abc")

    data = RELEASE.prepare(h.ctx(), scanned, h.params(RELEASE), {})

    assert data == {
        "allocation_id": allocation,
        "public_ip": public_ip,
        "domain": "vpc",
        "network_border_group": "us-east-1-bos-1",
        "public_ipv4_pool": "ipv4pool-ec2-0abc",
        "tags": {},
    }


def test_a_rerun_of_prepare_before_the_release_keeps_the_first_record(h: Harness):
    """An attempt interrupted between prepare and execute: the address is still there, and what
    changed on it since (a tag) must not replace what was recorded before the intent."""
    allocation, _ = _address(h, tags={"team": "edge"})
    item = h.item("elastic-ip", allocation)
    ctx, params = h.ctx(), h.params(RELEASE)
    first = RELEASE.prepare(ctx, item, params, {})
    h.ec2.create_tags(Resources=[allocation], Tags=[{"Key": "team", "Value": "core"}])

    again = RELEASE.prepare(ctx, item, params, first)

    assert again == first and again["tags"] == {"team": "edge"}


def test_the_recheck_says_why_in_the_words_the_history_shows(h: Harness):
    free, _ = _address(h)
    gone, _ = _address(h)
    held, _ = _address(h)
    items = {a: h.item("elastic-ip", a) for a in (free, gone, held)}
    h.ec2.release_address(AllocationId=gone)
    instance = h.instance()
    h.ec2.associate_address(AllocationId=held, InstanceId=instance)
    (seen,) = h.ec2.describe_addresses(AllocationIds=[held])["Addresses"]

    reasons = {a: RELEASE.recheck(h.ctx(), item).reason for a, item in items.items()}

    assert reasons == {
        free: "still associated with nothing and unprotected",
        gone: "address no longer allocated",
        held: f"address is associated again (instance {instance}, network interface "
        f"{seen['NetworkInterfaceId']}, association {seen['AssociationId']})",
    }


def test_execute_without_a_recorded_ip_names_the_address_by_its_id(h: Harness):
    allocation, _ = _address(h)
    item = h.item("elastic-ip", allocation)

    outcome = RELEASE.execute(h.ctx(), item, h.params(RELEASE), {})

    assert outcome.note == f"released the address ({allocation})"
    assert _allocated(h) == set()
