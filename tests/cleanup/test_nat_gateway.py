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
from cloudsweep.cleanup.base import ACTION_TAG
from cloudsweep.domain import ActionType, utcnow
from tests import faults

from .compute_helpers import datapoint, seeder_client
from .ebs_helpers import Harness, tag_dict, tags_spec

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
    nat, *_ = _nat(h)
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
