"""The nat-gateway cleanup action (delete) against moto over HTTP.

moto ignores ``DryRun`` on ``DeleteNatGateway`` (it deletes), which is why the action's dry run
is read-only; the dry-run test proves nothing is deleted.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import nat_gateway
from cloudsweep.cleanup.base import ACTION_TAG, DryRunResult, Outcome, Recheck
from cloudsweep.domain import ActionType, utcnow
from tests import faults

from .compute_helpers import datapoint, seeder_client
from .ebs_helpers import REGION, Harness, tag_dict, tags_spec

DELETE = nat_gateway.DeleteNatGateway()


@pytest.fixture
def h(moto_endpoint: str) -> Harness:
    return Harness(moto_endpoint)


def _nat(h: Harness, routes: int = 1, tags: dict[str, str] | None = None):
    vpc = h.ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnet = h.ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24")["Subnet"]["SubnetId"]
    allocation = h.ec2.allocate_address(Domain="vpc")["AllocationId"]
    spec = {"TagSpecifications": tags_spec("natgateway", tags)} if tags else {}
    nat = h.ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation, **spec)["NatGateway"][
        "NatGatewayId"
    ]
    tables = []
    for n in range(routes):
        table = h.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        h.ec2.create_route(
            RouteTableId=table, DestinationCidrBlock=f"10.{n + 50}.0.0/16", NatGatewayId=nat
        )
        tables.append(table)
    return nat, subnet, allocation, vpc, tables


def _nat_state(h: Harness, nat: str) -> str:
    return h.ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"]


def _routes_to(h: Harness, table: str) -> dict[str, str | None]:
    (found,) = h.ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"]
    return {
        r.get("DestinationCidrBlock"): r.get("NatGatewayId")
        for r in found["Routes"]
        if r.get("DestinationCidrBlock") != "10.40.0.0/16"
    }


def _free_address_as_aws_does(h: Harness, allocation: str) -> None:
    """AWS frees a deleted gateway's Elastic IP; moto keeps it associated with the deleted
    gateway's network interface, so the tests free it as AWS would."""
    (address,) = h.ec2.describe_addresses(AllocationIds=[allocation])["Addresses"]
    if address.get("AssociationId"):
        h.ec2.disassociate_address(AssociationId=address["AssociationId"])


def test_registered_with_its_contract():
    assert cleanup.get("nat-gateway", "delete") is nat_gateway.DeleteNatGateway
    assert DELETE.action_type is ActionType.DELETE and DELETE.rollback_possible


def test_recheck_refusals_and_gone(h: Harness):
    nat, *_ = _nat(h)
    item = h.item("nat-gateway", nat)
    assert DELETE.recheck(h.ctx(), item).still_waste

    h.ec2.create_tags(Resources=[nat], Tags=[{"Key": "cloudsweep.io/protect", "Value": "true"}])
    assert "protected by tag" in DELETE.recheck(h.ctx(), item).reason

    unrouted, _, _, vpc, _ = _nat(h, routes=0)
    item = h.item("nat-gateway", unrouted)
    table = h.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    h.ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=unrouted)
    refused = DELETE.recheck(h.ctx(), item)
    assert not refused.still_waste and f"route tables {table} route to it" in refused.reason

    h.ec2.delete_nat_gateway(NatGatewayId=unrouted)
    assert DELETE.recheck(h.ctx(), item).facts.get("gone")


def test_dry_run_deletes_nothing(h: Harness):
    nat, *_ = _nat(h)
    result = DELETE.dry_run(h.ctx(), h.item("nat-gateway", nat), h.params(DELETE))
    assert result.would_succeed, result.message
    assert _nat_state(h, nat) == "available"
    assert not h.mutating()


def test_delete_records_routes_then_rollback_recreates_on_the_same_allocation(h: Harness):
    nat, subnet, allocation, _, tables = _nat(h, routes=2, tags={"team": "net"})
    item = h.item("nat-gateway", nat)
    ctx, params = h.ctx(), h.params(DELETE)

    data = DELETE.prepare(ctx, item, params, {})
    assert h.checkpoints["routes"] == data["routes"]  # in the ledger before the delete
    outcome = DELETE.execute(ctx, item, params, data)

    assert not outcome.already_done and _nat_state(h, nat) == "deleted"
    _free_address_as_aws_does(h, allocation)
    assert data["subnet_id"] == subnet and data["allocation_id"] == allocation
    assert data["tags"] == {"team": "net"}
    assert sorted(r["route_table_id"] for r in data["routes"]) == sorted(tables)

    rollback_ctx = h.ctx()
    undo = DELETE.rollback(rollback_ctx, data, params)
    again = DELETE.rollback(rollback_ctx, data, params)

    new = undo.response["NatGatewayId"]
    assert again.response["NatGatewayId"] == new and again.already_done
    (restored,) = h.ec2.describe_nat_gateways(NatGatewayIds=[new])["NatGateways"]
    assert restored["SubnetId"] == subnet
    assert restored["NatGatewayAddresses"][0]["AllocationId"] == allocation
    tags = tag_dict(restored["Tags"])
    assert tags["team"] == "net" and tags[ACTION_TAG] == str(rollback_ctx.action_id)
    for n, table in enumerate(tables):
        assert _routes_to(h, table) == {f"10.{n + 50}.0.0/16": new}
    assert h.recorder.count(service="ec2", operation="CreateNatGateway") == 1


def test_rollback_creates_a_route_removed_since(h: Harness):
    nat, _, allocation, _, (table,) = _nat(h)
    item = h.item("nat-gateway", nat)
    ctx, params = h.ctx(), h.params(DELETE)
    data = DELETE.prepare(ctx, item, params, {})
    DELETE.execute(ctx, item, params, data)
    _free_address_as_aws_does(h, allocation)
    h.ec2.delete_route(RouteTableId=table, DestinationCidrBlock="10.50.0.0/16")

    undo = DELETE.rollback(h.ctx(), data, params)

    assert _routes_to(h, table) == {"10.50.0.0/16": undo.response["NatGatewayId"]}


def test_execute_refuses_without_recorded_configuration(h: Harness):
    nat, *_ = _nat(h)
    item = h.item("nat-gateway", nat)
    with pytest.raises(aws.AwsError, match="refusing to delete"):
        DELETE.execute(h.ctx(), item, h.params(DELETE), {})
    assert _nat_state(h, nat) == "available"


def test_crash_after_the_delete_then_resume_is_recorded_once(h: Harness):
    nat, *_ = _nat(h)
    item = h.item("nat-gateway", nat)
    ctx, params = h.ctx(), h.params(DELETE)
    data = DELETE.prepare(ctx, item, params, {})
    faults.lose_response(h.events, "ec2", "DeleteNatGateway")

    with pytest.raises(aws.AwsError):
        DELETE.execute(ctx, item, params, data)

    assert DELETE.recheck(h.ctx(ctx.action_id), item).facts.get("gone")
    assert DELETE.prepare(ctx, item, params, h.checkpoints) == data  # from the ledger
    assert h.recorder.count(service="ec2", operation="DeleteNatGateway") == 1


def test_recheck_refuses_a_gateway_with_traffic_since_the_scan(h: Harness):
    nat, subnet, _, _, tables = _nat(h)
    item = h.item("nat-gateway", nat)
    assert item.resource_details["max_bytes"] == 0
    assert DELETE.recheck(h.ctx(), item).still_waste

    seeder_client(h, "cloudwatch").put_metric_data(
        Namespace="AWS/NATGateway",
        MetricData=[
            {
                "MetricName": "BytesInFromSource",
                "Dimensions": [{"Name": "NatGatewayId", "Value": nat}],
                "Value": 2048,
                "Timestamp": utcnow() - timedelta(hours=5),
            }
        ],
    )
    refused = DELETE.recheck(h.ctx(), item)

    assert not refused.still_waste
    assert "traffic again: 2,048 bytes in the last day" in refused.reason
    assert refused.facts == {
        "state": "available",
        "subnet_id": subnet,
        "tags": {},
        "route_tables": tables,
        "bytes_last_day": 2048.0,
    }
    assert _nat_state(h, nat) == "available"


def _bytes(h: Harness, nat: str, metric: str, value: float, hours_ago: float) -> None:
    datapoint(h, "AWS/NATGateway", metric, ("NatGatewayId", nat), value, hours_ago)


def test_recheck_holds_both_directions_of_the_last_day_to_the_scans_max_bytes(h: Harness):
    """Bytes in from sources and back from destinations both count against the scan's own
    ``max_bytes`` (here 4,096): at it the gateway is idle, one byte more refuses; what was
    carried before the last day does not count."""
    nat, *_ = _nat(h)
    item = h.item("nat-gateway", nat)
    item = dataclasses.replace(item, resource_details={**item.resource_details, "max_bytes": 4096})
    _bytes(h, nat, "BytesInFromSource", 2048, hours_ago=2)
    _bytes(h, nat, "BytesInFromDestination", 2048, hours_ago=3)
    _bytes(h, nat, "BytesInFromDestination", 10**9, hours_ago=30)

    at_limit = DELETE.recheck(h.ctx(), item)
    _bytes(h, nat, "BytesInFromDestination", 1, hours_ago=4)
    above = DELETE.recheck(h.ctx(), item)

    assert at_limit.still_waste, at_limit.reason
    assert at_limit.facts["bytes_last_day"] == 4096
    assert not above.still_waste
    assert "4,097 bytes in the last day (idle at <= 4,096)" in above.reason


def test_dry_run_and_prepare_refuse_a_deleted_gateway(h: Harness):
    nat, *_ = _nat(h)
    item = h.item("nat-gateway", nat)
    h.ec2.delete_nat_gateway(NatGatewayId=nat)

    dry = DELETE.dry_run(h.ctx(), item, h.params(DELETE))
    with pytest.raises(aws.AwsError) as raised:
        DELETE.prepare(h.ctx(), item, h.params(DELETE), {})

    assert not dry.would_succeed and "it is deleted" in dry.message
    assert raised.value.kind is aws.ErrorKind.NOT_FOUND
    assert h.checkpoints == {} and not h.mutating()


def test_rollback_never_adopts_another_live_gateway(h: Harness):
    """The emulator ignores the tag filter of the rollback's "earlier run" lookup: another live
    gateway of the account must not be taken for this rollback's, nor get its routes."""
    nat, _, allocation, _, (table,) = _nat(h)
    other, *_ = _nat(h, routes=0, tags={"team": "web"})
    item = h.item("nat-gateway", nat)
    ctx, params = h.ctx(), h.params(DELETE)
    data = DELETE.prepare(ctx, item, params, {})
    DELETE.execute(ctx, item, params, data)
    _free_address_as_aws_does(h, allocation)

    undo = DELETE.rollback(h.ctx(), data, params)

    new = undo.response["NatGatewayId"]
    assert new not in (nat, other) and not undo.already_done
    assert _routes_to(h, table) == {"10.50.0.0/16": new}
    assert h.recorder.count(service="ec2", operation="CreateNatGateway") == 1


# --- the re-check's reasons and facts, word for word --------------------------------------------


def _nat_seen_as(h: Harness, only: str | None = None, **fields: object) -> None:
    """DescribeNatGateways of the cleanup session answers ``fields`` on every gateway (or the
    gateway ``only``): moto deletes at once and never shows a pending, deleting or failed one."""

    def report(parsed, **_):
        for gateway in parsed.get("NatGateways", []):
            if only in (None, gateway.get("NatGatewayId")):
                gateway.update(fields)

    h.events.register("after-call.ec2.DescribeNatGateways", report)


def test_recheck_reports_the_live_gateway_and_its_reasons_in_full(h: Harness):
    nat, subnet, _, _, (table,) = _nat(h, tags={"team": "net"})
    item = h.item("nat-gateway", nat)
    missing = dataclasses.replace(item, resource_id="nat-0123456789abcdef0")
    facts = {"state": "available", "subnet_id": subnet, "tags": {"team": "net"}}

    passing = DELETE.recheck(h.ctx(), item)
    gone = DELETE.recheck(h.ctx(), missing)
    h.ec2.create_tags(Resources=[nat], Tags=[{"Key": "cloudsweep.io/protect", "Value": "true"}])
    protected = DELETE.recheck(h.ctx(), item)

    assert passing == Recheck(
        True,
        "still available, unprotected, and no new route to it",
        {**facts, "route_tables": [table], "bytes_last_day": 0.0},
    )
    assert gone == Recheck(False, "NAT gateway no longer exists", {"gone": True})
    assert protected == Recheck(
        False,
        "NAT gateway is now protected by tag cloudsweep.io/protect=true",
        {**facts, "tags": {"team": "net", "cloudsweep.io/protect": "true"}},
    )
    h.ec2.delete_nat_gateway(NatGatewayId=nat)
    deleted = DELETE.recheck(h.ctx(), item)
    assert deleted == Recheck(
        False,
        "NAT gateway is deleted",
        {**facts, "state": "deleted", "tags": {**protected.facts["tags"]}, "gone": True},
    )


def test_recheck_refuses_a_gateway_that_is_not_available(h: Harness):
    nat, subnet, *_ = _nat(h)
    item = h.item("nat-gateway", nat)
    _nat_seen_as(h, State="pending")

    pending = DELETE.recheck(h.ctx(), item)

    assert pending == Recheck(
        False,
        "NAT gateway is pending, not available",
        {"state": "pending", "subnet_id": subnet, "tags": {}},
    )
    assert not h.mutating()


def test_recheck_asks_cloudwatch_for_the_last_days_hourly_sums(h: Harness):
    """AWS takes a period in whole minutes and case-sensitive statistic names: the request, as
    CloudWatch received it; a failing answer names the call."""
    nat, *_ = _nat(h)
    item = h.item("nat-gateway", nat)

    DELETE.recheck(h.ctx(), item)
    events = h.session.client("cloudwatch", REGION).meta.events
    faults.fail_with(
        events,
        "before-send.cloudwatch.GetMetricData",
        status=403,
        body=b'{"__type": "AccessDenied", "message": "not allowed"}',
        headers={"Content-Type": "application/x-amz-json-1.0"},
        times=1,
    )
    with pytest.raises(aws.AwsError) as denied:
        DELETE.recheck(h.ctx(), item)

    asked = h.recorder.calls(service="cloudwatch", operation="GetMetricData")[0]
    dims = [{"Name": "NatGatewayId", "Value": nat}]
    assert asked.params["MetricDataQueries"] == [
        {
            "Id": f"m{i}",
            "MetricStat": {
                "Metric": {"Namespace": "AWS/NATGateway", "MetricName": name, "Dimensions": dims},
                "Period": 3600,
                "Stat": "Sum",
            },
        }
        for i, name in enumerate(("BytesInFromSource", "BytesInFromDestination"))
    ]
    assert asked.params["EndTime"] - asked.params["StartTime"] == timedelta(days=1)
    assert str(denied.value).startswith(
        f"cloudwatch:GetMetricData in {REGION} failed (access-denied, AccessDenied)"
    )


# --- dry run, prepare and execute: what they record and say -------------------------------------


def test_dry_run_says_what_it_would_do_or_why_not(h: Harness):
    nat, *_ = _nat(h, routes=2)
    item = h.item("nat-gateway", nat)
    calls = ("ec2:DescribeNatGateways", "ec2:DescribeRouteTables", "ec2:DeleteNatGateway")

    would = DELETE.dry_run(h.ctx(), item, h.params(DELETE))
    missing = DELETE.dry_run(
        h.ctx(), dataclasses.replace(item, resource_id="nat-0123456789abcdef0"), h.params(DELETE)
    )
    _nat_seen_as(h, State="pending")
    pending = DELETE.dry_run(h.ctx(), item, h.params(DELETE))

    assert would == DryRunResult(True, f"would record 2 route(s) and delete {nat}", calls)
    assert missing == DryRunResult(False, "DeleteNatGateway would fail: it is missing", calls)
    assert pending == DryRunResult(False, "DeleteNatGateway would fail: it is pending", calls)
    assert not h.mutating()


def test_prepare_records_the_gateway_and_every_route_to_it(h: Harness):
    nat, subnet, allocation, vpc, tables = _nat(h, routes=2, tags={"team": "net"})
    item = h.item("nat-gateway", nat)
    (live,) = h.ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"]
    (address,) = live["NatGatewayAddresses"]

    data = DELETE.prepare(h.ctx(), item, h.params(DELETE), {})

    assert data == {
        "nat_gateway_id": nat,
        "subnet_id": subnet,
        "vpc_id": vpc,
        "allocation_id": allocation,
        "public_ip": address["PublicIp"],
        "private_ip_address": address["PrivateIp"],
        "connectivity_type": "public",
        "tags": {"team": "net"},
        "routes": [
            {"route_table_id": table, "DestinationCidrBlock": f"10.{n + 50}.0.0/16"}
            for n, table in enumerate(tables)
        ],
    }
    assert h.checkpoints == data


def test_a_private_gateway_is_recorded_kept_and_recreated_private(h: Harness):
    """A private NAT gateway has no Elastic IP: its record (subnet, no allocation) is complete,
    a rerun of prepare keeps it without asking AWS again, and the rollback makes it private."""
    vpc = h.ec2.create_vpc(CidrBlock="10.60.0.0/16")["Vpc"]["VpcId"]
    subnet = h.ec2.create_subnet(VpcId=vpc, CidrBlock="10.60.1.0/24")["Subnet"]["SubnetId"]
    nat = h.ec2.create_nat_gateway(SubnetId=subnet, ConnectivityType="private")["NatGateway"][
        "NatGatewayId"
    ]
    item = h.item("nat-gateway", nat)
    ctx, params = h.ctx(), h.params(DELETE)

    data = DELETE.prepare(ctx, item, params, {})
    described = h.recorder.count(service="ec2", operation="DescribeNatGateways")
    again = DELETE.prepare(ctx, item, params, data)
    described_again = h.recorder.count(service="ec2", operation="DescribeNatGateways")
    DELETE.execute(ctx, item, params, data)
    undo = DELETE.rollback(h.ctx(), data, params)

    assert (data["connectivity_type"], data["allocation_id"], data["subnet_id"]) == (
        "private",
        None,
        subnet,
    )
    assert again == data and described_again == described
    (restored,) = h.ec2.describe_nat_gateways(NatGatewayIds=[undo.response["NatGatewayId"]])[
        "NatGateways"
    ]
    assert restored["ConnectivityType"] == "private" and restored["SubnetId"] == subnet


def test_execute_says_what_it_deleted_refused_or_found_done(h: Harness):
    nat, *_ = _nat(h, routes=2)
    item = h.item("nat-gateway", nat)
    ctx, params = h.ctx(), h.params(DELETE)
    data = DELETE.prepare(ctx, item, params, {})

    with pytest.raises(aws.AwsError) as refused:
        DELETE.execute(ctx, item, params, {"routes": data["routes"]})
    outcome = DELETE.execute(ctx, item, params, data)
    # AWS's answer for a gateway an earlier attempt deleted (moto answers an unknown ID with a
    # server error instead).
    faults.fail_with(
        h.events,
        "before-send.ec2.DeleteNatGateway",
        status=400,
        body=faults.ec2_error_body("NatGatewayNotFound", "not found"),
    )
    vanished = DELETE.execute(ctx, item, params, data)

    assert str(refused.value) == (
        f"ec2:DeleteNatGateway in {REGION} failed (terminal, MissingRollbackData): refusing to "
        f"delete {nat}: its subnet and routes were not recorded; run prepare again"
    )
    assert outcome.note == f"deleted {nat}; 2 route(s) to it recorded for rollback"
    assert outcome.response["NatGatewayId"] == nat and not outcome.already_done
    assert vanished == Outcome(
        {"NatGatewayId": nat, "Error": "NatGatewayNotFound"},
        already_done=True,
        note=f"{nat} was already deleted (an earlier attempt)",
    )


# --- rollback ------------------------------------------------------------------------------------


def test_rollback_says_what_it_recreated_and_records_it(h: Harness):
    nat, _, allocation, *_ = _nat(h, routes=2)
    item = h.item("nat-gateway", nat)
    ctx, params = h.ctx(), h.params(DELETE)
    data = DELETE.prepare(ctx, item, params, {})
    DELETE.execute(ctx, item, params, data)
    _free_address_as_aws_does(h, allocation)

    undo = DELETE.rollback(h.ctx(), data, params)

    new = undo.response["NatGatewayId"]
    assert undo == Outcome(
        {
            "NatGatewayId": new,
            "Routes": [{**route, "nat_gateway_id": new} for route in data["routes"]],
        },
        already_done=False,
        note=f"NAT gateway {new} recreated on {allocation} (was {nat}); 2 route(s) point at it "
        "again",
    )
    assert h.checkpoints["restored_nat_gateway_id"] == new


def test_rollback_waits_for_the_old_gateway_to_be_deleted_first(h: Harness):
    """Its Elastic IP is free only then: while it is still deleting, the rollback waits, runs
    out of attempts (recoverable) and creates nothing."""
    nat, *_ = _nat(h)
    item = h.item("nat-gateway", nat)
    ctx, params = h.ctx(), h.params(DELETE)
    data = DELETE.prepare(ctx, item, params, {})
    _nat_seen_as(h, State="deleting")

    with pytest.raises(aws.AwsError) as waited:
        DELETE.rollback(h.ctx(), data, params)

    assert (waited.value.kind, waited.value.code) == (aws.ErrorKind.RECOVERABLE, "WaiterTimedOut")
    assert str(waited.value).startswith(
        f"ec2:DescribeNatGateways in {REGION} failed (recoverable, WaiterTimedOut): "
        "nat_gateway_deleted: "
    )
    assert h.recorder.count(service="ec2", operation="CreateNatGateway") == 0


def test_rollback_does_not_wait_for_a_failed_gateway(h: Harness):
    """A gateway that failed holds no address: the rollback recreates at once."""
    nat, _, allocation, *_ = _nat(h)
    item = h.item("nat-gateway", nat)
    ctx, params = h.ctx(), h.params(DELETE)
    data = DELETE.prepare(ctx, item, params, {})
    DELETE.execute(ctx, item, params, data)
    _free_address_as_aws_does(h, allocation)
    _nat_seen_as(h, only=nat, State="failed")

    undo = DELETE.rollback(h.ctx(), data, params)

    assert not undo.already_done
    assert h.recorder.count(service="ec2", operation="CreateNatGateway") == 1


def test_prepare_of_a_deleted_gateway_says_so_in_full(h: Harness):
    nat, *_ = _nat(h)
    item = h.item("nat-gateway", nat)
    h.ec2.delete_nat_gateway(NatGatewayId=nat)

    with pytest.raises(aws.AwsError) as raised:
        DELETE.prepare(h.ctx(), item, h.params(DELETE), {})

    assert str(raised.value) == (
        f"ec2:DeleteNatGateway in {REGION} failed (not-found, NatGatewayNotFound): {nat} is gone "
        "before its configuration was recorded"
    )


def test_prepare_records_the_primary_address_wherever_aws_lists_it(h: Harness):
    """A gateway with secondary addresses: the rollback needs the primary one's allocation,
    first in the list or not."""
    nat, _, allocation, *_ = _nat(h)
    item = h.item("nat-gateway", nat)
    (live,) = h.ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"]
    (primary,) = live["NatGatewayAddresses"]
    secondary = {
        "AllocationId": "eipalloc-0123456789abcdef0",
        "PublicIp": "198.51.100.7",
        "PrivateIp": "10.40.1.200",
        "IsPrimary": False,
    }
    _nat_seen_as(h, NatGatewayAddresses=[secondary, {**primary, "IsPrimary": True}])

    data = DELETE.prepare(h.ctx(), item, h.params(DELETE), {})

    assert (data["allocation_id"], data["public_ip"]) == (allocation, primary["PublicIp"])


# --- stop 23: what the rollback asks AWS for, and what it waits on -------------------------------

RESTORED_FROM = "cloudsweep.io/restored-from-nat-gateway"


def _deleted_and_recorded(h: Harness, routes: int = 1):
    """A gateway recorded and deleted, its address freed as AWS would: ready for a rollback."""
    nat, _, allocation, vpc, tables = _nat(h, routes=routes, tags={"team": "net"})
    item = h.item("nat-gateway", nat)
    ctx, params = h.ctx(), h.params(DELETE)
    data = DELETE.prepare(ctx, item, params, {})
    DELETE.execute(ctx, item, params, data)
    _free_address_as_aws_does(h, allocation)
    return nat, vpc, tables, data, params


def test_rollback_tags_the_new_gateway_with_the_one_it_restores(h: Harness):
    """CreateNatGateway carries a ``natgateway`` tag specification with the recorded tags, the
    rollback's action ID and the deleted gateway's ID (moto accepts any ResourceType, so the
    request as moto received it is checked as well as the new gateway's tags)."""
    nat, _, _, data, params = _deleted_and_recorded(h)
    rollback_ctx = h.ctx()

    undo = DELETE.rollback(rollback_ctx, data, params)

    (asked,) = h.recorder.calls(service="ec2", operation="CreateNatGateway")
    expected = {"team": "net", ACTION_TAG: str(rollback_ctx.action_id), RESTORED_FROM: nat}
    assert asked.params["TagSpecifications"] == [
        {
            "ResourceType": "natgateway",
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(expected.items())],
        }
    ]
    (restored,) = h.ec2.describe_nat_gateways(NatGatewayIds=[undo.response["NatGatewayId"]])[
        "NatGateways"
    ]
    assert tag_dict(restored["Tags"]) == expected


def test_rollback_does_not_wait_for_an_old_gateway_already_deleted(h: Harness):
    """moto shows the deleted gateway as ``deleted``: the rollback asks about it once, looks
    for an earlier run, creates, and waits on the new gateway only."""
    nat, _, (table,), data, params = _deleted_and_recorded(h)
    before = len(h.recorder.calls())

    undo = DELETE.rollback(h.ctx(), data, params)

    new = undo.response["NatGatewayId"]
    described = [
        c.params.get("NatGatewayIds")
        for c in h.recorder.calls()[before:]
        if c.operation == "DescribeNatGateways"
    ]
    assert described == [[nat], None, [new]]
    assert _routes_to(h, table) == {"10.50.0.0/16": new}


def test_rollback_waits_only_on_the_old_gateway_while_another_is_live(h: Harness):
    """The old gateway, seen deleting once, is waited on by its ID: another available gateway
    of the region must not hold the rollback up."""
    nat, _, (table,), data, params = _deleted_and_recorded(h)
    _nat(h, routes=0)
    seen: list[str] = []

    def deleting_once(parsed, **_):
        for gateway in parsed.get("NatGateways", []):
            if gateway.get("NatGatewayId") == nat and not seen:
                seen.append(nat)
                gateway["State"] = "deleting"

    h.events.register("after-call.ec2.DescribeNatGateways", deleting_once)

    undo = DELETE.rollback(h.ctx(), data, params)

    assert seen == [nat]
    described = h.recorder.calls(service="ec2", operation="DescribeNatGateways")
    assert [c.params.get("NatGatewayIds") for c in described[-4:-2]] == [[nat], [nat]]
    assert _routes_to(h, table) == {"10.50.0.0/16": undo.response["NatGatewayId"]}
    assert h.recorder.count(service="ec2", operation="CreateNatGateway") == 1


def test_rerun_rollback_does_not_adopt_its_earlier_gateway_once_deleted(h: Harness):
    """An earlier run's gateway (tagged with this rollback's action ID) that was deleted since
    is not the restored one: the rerun asks AWS for live gateways only and creates anew."""
    _, _, (table,), data, params = _deleted_and_recorded(h)
    rollback_ctx = h.ctx()
    first = DELETE.rollback(rollback_ctx, data, params).response["NatGatewayId"]
    h.ec2.delete_nat_gateway(NatGatewayId=first)
    _free_address_as_aws_does(h, data["allocation_id"])

    again = DELETE.rollback(rollback_ctx, data, params)

    lookups = [
        c.params["Filter"]  # DescribeNatGateways names it in the singular
        for c in h.recorder.calls(service="ec2", operation="DescribeNatGateways")
        if c.params.get("Filter")
    ]
    assert lookups[-1] == [
        {"Name": f"tag:{ACTION_TAG}", "Values": [str(rollback_ctx.action_id)]},
        {"Name": "state", "Values": ["pending", "available"]},
    ]
    assert not again.already_done
    assert h.recorder.count(service="ec2", operation="CreateNatGateway") == 2
    new = again.response["NatGatewayId"]
    assert _nat_state(h, new) == "available"
    assert _routes_to(h, table) == {"10.50.0.0/16": new}


def test_rollback_names_the_call_when_the_new_gateway_fails(h: Harness):
    """The new gateway failing is terminal, and the error names the Describe call waited on."""
    nat, _, _, data, params = _deleted_and_recorded(h)

    def new_one_failed(parsed, **_):
        for gateway in parsed.get("NatGateways", []):
            if gateway.get("NatGatewayId") != nat:
                gateway["State"] = "failed"

    h.events.register("after-call.ec2.DescribeNatGateways", new_one_failed)

    with pytest.raises(aws.AwsError) as failed:
        DELETE.rollback(h.ctx(), data, params)

    assert str(failed.value) == (
        f"ec2:DescribeNatGateways in {REGION} failed (terminal, WaiterFailed): "
        "nat_gateway_available: Waiter NatGatewayAvailable failed: Waiter encountered a terminal "
        'failure state: For expression "NatGateways[].State" we matched expected path: "failed" '
        "at least once"
    )


def test_rollback_creates_a_route_another_table_still_has(h: Harness):
    """The route removed since from the recorded table is created there again, though another
    table of the VPC has a route to the same destination: each table is read by its ID."""
    _, vpc, (table,), data, params = _deleted_and_recorded(h)
    h.ec2.delete_route(RouteTableId=table, DestinationCidrBlock="10.50.0.0/16")
    other_nat, *_ = _nat(h, routes=0)
    other = h.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    h.ec2.create_route(
        RouteTableId=other, DestinationCidrBlock="10.50.0.0/16", NatGatewayId=other_nat
    )

    undo = DELETE.rollback(h.ctx(), data, params)

    new = undo.response["NatGatewayId"]
    assert _routes_to(h, table) == {"10.50.0.0/16": new}
    assert _routes_to(h, other) == {"10.50.0.0/16": other_nat}
    (read,) = h.recorder.calls(service="ec2", operation="DescribeRouteTables")[-1:]
    assert read.params == {"RouteTableIds": [table]}
    assert h.recorder.count(service="ec2", operation="ReplaceRoute") == 0


def test_recheck_names_every_new_route_table_and_reports_its_facts(h: Harness):
    nat, subnet, _, vpc, _ = _nat(h, routes=0, tags={"team": "net"})
    item = h.item("nat-gateway", nat)
    tables = sorted(
        h.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"] for _ in range(2)
    )
    for n, table in enumerate(tables):
        h.ec2.create_route(
            RouteTableId=table, DestinationCidrBlock=f"10.{n + 60}.0.0/16", NatGatewayId=nat
        )

    refused = DELETE.recheck(h.ctx(), item)

    assert refused == Recheck(
        False,
        f"route tables {tables[0]}, {tables[1]} route to it since the scan",
        {
            "state": "available",
            "subnet_id": subnet,
            "tags": {"team": "net"},
            "route_tables": tables,
        },
    )


def test_rerun_rollback_never_takes_a_deleted_gateway_listed_by_its_lookup(h: Harness):
    """AWS lists a deleted gateway for about an hour, and an endpoint may ignore the state
    filter: the earlier run's gateway, listed ``deleted`` in the lookup's answer, is not taken
    for the restored one; the routes go to a gateway moto has available."""
    _, _, (table,), data, params = _deleted_and_recorded(h)
    rollback_ctx = h.ctx()
    first = DELETE.rollback(rollback_ctx, data, params).response["NatGatewayId"]
    (listed,) = h.ec2.describe_nat_gateways(NatGatewayIds=[first])["NatGateways"]
    h.ec2.delete_nat_gateway(NatGatewayId=first)
    _free_address_as_aws_does(h, data["allocation_id"])

    def still_listed(parsed, **_):
        asked = h.recorder.calls(service="ec2", operation="DescribeNatGateways")[-1]
        if asked.params.get("Filter"):
            parsed.setdefault("NatGateways", []).insert(0, {**listed, "State": "deleted"})

    h.events.register("after-call.ec2.DescribeNatGateways", still_listed)

    again = DELETE.rollback(rollback_ctx, data, params)

    new = again.response["NatGatewayId"]
    assert new != first and not again.already_done
    assert h.recorder.count(service="ec2", operation="CreateNatGateway") == 2
    assert _nat_state(h, new) == "available"
    assert _routes_to(h, table) == {"10.50.0.0/16": new}
