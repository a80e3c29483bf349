"""The nat-gateway detector against moto over HTTP, with traffic put into moto's CloudWatch."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from cloudsweep.detectors import nat_gateway
from cloudsweep.domain import RiskLevel, utcnow

from .conftest import LATER, by_id, check

DETECTOR = nat_gateway.NatGatewayDetector()


def make_nat(ec2, routed=True, tags=None):
    """A NAT gateway in a fresh VPC's subnet; ``routed``: a route table sends 0.0.0.0/0 to it."""
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    spec = (
        {
            "TagSpecifications": [
                {
                    "ResourceType": "natgateway",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ]
        }
        if tags
        else {}
    )
    nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation, **spec)["NatGateway"][
        "NatGatewayId"
    ]
    table = None
    if routed:
        table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    return nat, table


def put_bytes(cloudwatch, nat, now, per_day, days=14):
    dims = [{"Name": "NatGatewayId", "Value": nat}]
    cloudwatch.put_metric_data(
        Namespace="AWS/NATGateway",
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": dims,
                "Value": per_day,
                "Timestamp": now - timedelta(days=day, hours=3),
            }
            for day in range(days)
            for metric in ("BytesInFromSource", "BytesInFromDestination")
        ],
    )


def test_idle_unrouted_busy_and_unmeasured(seed, make_context):
    ec2, cloudwatch = seed("ec2"), seed("cloudwatch")
    now = utcnow() + LATER
    idle, idle_table = make_nat(ec2)
    put_bytes(cloudwatch, idle, now, 0)
    unrouted, _ = make_nat(ec2, routed=False)
    busy, _ = make_nat(ec2)
    put_bytes(cloudwatch, busy, now, 2_000_000)
    unmeasured, _ = make_nat(ec2)

    findings = by_id(list(DETECTOR.detect(make_context(now=now), DETECTOR.parameters())))

    assert set(findings) == {idle, unrouted, unmeasured}
    quiet = findings[idle]
    assert quiet.confidence == 85 and quiet.risk is RiskLevel.MEDIUM
    assert check(quiet, "metrics-present")
    assert quiet.monthly_cost == Decimal("32.85")  # 0.045 USD/hour x 730, no GB processed
    assert quiet.details["route_tables"] == [idle_table]
    assert any("0 bytes processed in 14 days (14 of 14 days" in e for e in quiet.evidence)
    lonely = findings[unrouted]
    assert lonely.confidence == 95 and lonely.risk is RiskLevel.LOW
    assert any("no route table routes to it" in e for e in lonely.evidence)
    assert findings[unmeasured].confidence == 40
    assert not check(findings[unmeasured], "metrics-present")


def test_threshold_prices_the_processed_gb(seed, make_context):
    ec2, cloudwatch = seed("ec2"), seed("cloudwatch")
    now = utcnow() + LATER
    nat, _ = make_nat(ec2)
    put_bytes(cloudwatch, nat, now, 500_000_000)  # 1 GB a day in all: 14 GB in 14 days
    params = DETECTOR.parameters({"max_bytes": 20_000_000_000})

    (finding,) = DETECTOR.detect(make_context(now=now), params)

    # 32.85 + 30.4167 GB a month x 0.045 USD = 32.85 + 1.37
    assert finding.monthly_cost == Decimal("34.22")
    assert finding.details["pricing"]["gb_processed_per_month"] == "30.417"
    assert list(DETECTOR.detect(make_context(now=now), DETECTOR.parameters())) == []


def test_protection_tag_and_one_metrics_call_for_all(seed, make_context, recorder):
    ec2 = seed("ec2")
    kept, _ = make_nat(ec2, tags={"do-not-delete": "true"})
    for _ in range(3):
        make_nat(ec2)

    findings = by_id(list(DETECTOR.detect(make_context(), DETECTOR.parameters())))

    assert len(findings) == 4
    assert findings[kept].risk is RiskLevel.HIGH and not check(findings[kept], "protection-tag")
    (call,) = recorder.calls(operation="GetMetricData")
    assert len(call.params["MetricDataQueries"]) == 8
    assert recorder.count(operation="DescribeRouteTables") == 1
