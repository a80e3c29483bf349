"""The nat-gateway cleanup action (delete) against moto over HTTP.

moto ignores ``DryRun`` on ``DeleteNatGateway`` (it deletes), which is why the action's dry run
is read-only; the dry-run test proves nothing is deleted.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import nat_gateway
from cloudsweep.cleanup.base import ACTION_TAG
from cloudsweep.domain import ActionType, utcnow
from tests import faults

from .compute_helpers import seeder_client
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
