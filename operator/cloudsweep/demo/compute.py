"""Demo seeds for the compute types: idle and long-stopped EC2 instances and idle NAT gateways,
each beside look-alikes in use, with the CloudWatch datapoints that tell them apart.

Called by the demo world (once per region, with boto3 clients of the demo account) and by
``tests/demo/test_compute.py``. Launch, stop and creation times are backdated in a moto server of
this process (:func:`cloudsweep.aws.emulator.backdate_compute`); on a server in another process
the instances stay young and the stopped one is not yet "long stopped".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from cloudsweep.aws import emulator
from cloudsweep.demo.seeding import RegionSeed, Verdict

DAY: Final = timedelta(days=1)
LOOKBACK_DAYS: Final = 14
ASG_TAG: Final = "aws:autoscaling:groupName"


@dataclass
class ComputeSeeds:
    """What was seeded: resource ID -> a short category, split by what a scan should say."""

    waste: dict[str, str] = field(default_factory=dict)
    in_use: dict[str, str] = field(default_factory=dict)


def _tags(resource_type: str, **tags: str) -> list[dict[str, Any]]:
    return [
        {"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
    ]


def seed_compute(
    ec2: Any, cloudwatch: Any, *, account_id: str, region: str, now: datetime
) -> ComputeSeeds:
    """Seed one region: 3 idle-looking instances (one in an Auto Scaling group, which the stop
    action refuses), a busy one, an instance stopped 90 days ago with a data volume and an Elastic
    IP, one stopped 3 days ago, and NAT gateways: idle, routed to by nothing, and busy.

    Example (the demo world, per region)::

        seeds = compute.seed_compute(
            account.ec2(region), account.client("cloudwatch", region),
            account_id=account.account_id, region=region, now=now,
        )
    """
    seeds = ComputeSeeds()
    vpc = ec2.create_vpc(CidrBlock="10.90.0.0/16", TagSpecifications=_tags("vpc", Name="compute"))
    vpc_id = vpc["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.90.1.0/24")["Subnet"]
    image = ec2.register_image(Name=f"demo-compute-base-{region}", Architecture="x86_64")["ImageId"]

    def launch(name: str, instance_type: str, **tags: str) -> str:
        return str(
            ec2.run_instances(
                ImageId=image,
                InstanceType=instance_type,
                MinCount=1,
                MaxCount=1,
                SubnetId=subnet["SubnetId"],
                TagSpecifications=_tags("instance", Name=name, team="compute", **tags),
            )["Instances"][0]["InstanceId"]
        )

    idle = launch("reporting-old", "m5.large")
    grouped = launch("web-asg-spare", "t3.medium", **{ASG_TAG: "web-asg"})
    busy = launch("api-1", "m5.large")
    _usage(cloudwatch, idle, now, cpu=1.2, network_bytes=200_000)
    _usage(cloudwatch, grouped, now, cpu=0.8, network_bytes=50_000)
    _usage(cloudwatch, busy, now, cpu=46.0, network_bytes=900_000_000)
    seeds.waste.update({idle: "idle-instance", grouped: "idle-instance-in-asg"})
    seeds.in_use[busy] = "busy-instance"

    parked = launch("batch-2023", "t3.large")
    data = ec2.create_volume(
        AvailabilityZone=subnet["AvailabilityZone"],
        Size=200,
        VolumeType="gp3",
        TagSpecifications=_tags("volume", Name="batch-2023-data", team="compute"),
    )["VolumeId"]
    ec2.attach_volume(VolumeId=data, InstanceId=parked, Device="/dev/sdf")
    address = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(AllocationId=address, InstanceId=parked)
    paused = launch("etl-paused", "t3.small")
    ec2.stop_instances(InstanceIds=[parked, paused])
    seeds.waste[parked] = "stopped-90-days"
    seeds.in_use[paused] = "stopped-3-days"

    nats = {}
    for name, routed, bytes_per_day in (
        ("nat-legacy", True, 0),
        ("nat-orphan", False, None),
        ("nat-main", True, 3_000_000_000),
    ):
        allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
        nat = ec2.create_nat_gateway(
            SubnetId=subnet["SubnetId"],
            AllocationId=allocation,
            TagSpecifications=_tags("natgateway", Name=name, team="network"),
        )["NatGateway"]["NatGatewayId"]
        nats[nat] = now - 200 * DAY
        if routed:
            table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
            ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
        if bytes_per_day is not None:
            _nat_bytes(cloudwatch, nat, now, bytes_per_day)
        if bytes_per_day:
            seeds.in_use[nat] = "busy-nat-gateway"
        else:
            seeds.waste[nat] = "idle-nat-gateway" if routed else "unrouted-nat-gateway"

    emulator.backdate_compute(
        account_id,
        region,
        launched={i: now - 300 * DAY for i in (idle, grouped, busy, parked, paused)},
        stopped={parked: now - 90 * DAY, paused: now - 3 * DAY},
        nat_created=nats,
    )
    return seeds


def _put(cloudwatch: Any, namespace: str, data: list[dict[str, Any]]) -> None:
    for start in range(0, len(data), 500):  # PutMetricData takes at most 1,000 values a call
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + 500])


def _usage(
    cloudwatch: Any, instance_id: str, now: datetime, *, cpu: float, network_bytes: int
) -> None:
    """A datapoint a day over the lookback: CPU maximum and network in and out."""
    dims = [{"Name": "InstanceId", "Value": instance_id}]
    data = []
    for day in range(LOOKBACK_DAYS):
        stamp = now - day * DAY - timedelta(hours=1)
        data += [
            {"MetricName": "CPUUtilization", "Dimensions": dims, "Value": cpu, "Timestamp": stamp},
            {
                "MetricName": "NetworkIn",
                "Dimensions": dims,
                "Value": network_bytes,
                "Timestamp": stamp,
            },
            {
                "MetricName": "NetworkOut",
                "Dimensions": dims,
                "Value": network_bytes,
                "Timestamp": stamp,
            },
        ]
    _put(cloudwatch, "AWS/EC2", data)


def _nat_bytes(cloudwatch: Any, nat_id: str, now: datetime, per_day: int) -> None:
    dims = [{"Name": "NatGatewayId", "Value": nat_id}]
    _put(
        cloudwatch,
        "AWS/NATGateway",
        [
            {
                "MetricName": metric,
                "Dimensions": dims,
                "Value": per_day,
                "Timestamp": now - day * DAY - timedelta(hours=1),
            }
            for day in range(LOOKBACK_DAYS)
            for metric in ("BytesInFromSource", "BytesInFromDestination")
        ],
    )


# What a resource in use shows in CloudWatch, per kind: (namespace, dimension, metrics).
_IN_USE_TRAFFIC = {
    "application": ("AWS/ApplicationELB", "LoadBalancer", (("RequestCount", 12_000),)),
    "network": ("AWS/NetworkELB", "LoadBalancer", (("ProcessedBytes", 4_000_000_000),)),
    "gateway": ("AWS/GatewayELB", "LoadBalancer", (("ProcessedBytes", 4_000_000_000),)),
    "classic": ("AWS/ELB", "LoadBalancerName", (("RequestCount", 9_000),)),
}


def seed_usage(
    cloudwatch_for: Callable[[str], Any],
    in_use: Iterable[tuple[str, str, str, str | None]],
    now: datetime,
) -> int:
    """Give resources the demo world marks in use the CloudWatch history that says so, since the
    idleness detectors read traffic: ``in_use`` holds ``(region, kind, resource_id, lb_type)`` with
    kind ``ec2-instance`` (CPU 35%, network), ``load-balancer`` (an ARN or ``app/name/id``, with
    ``lb_type`` application, network or gateway) or ``classic-load-balancer`` (a name). Returns
    how many resources got datapoints.

    Example (the demo world, after seeding)::

        compute.seed_usage(
            lambda region: account.client("cloudwatch", region),
            [(r.region, r.kind, r.resource_id, r.attributes.get("type"))
             for r in world.select(verdict=Verdict.IN_USE)],
            now,
        )
    """
    seeded = 0
    for region, kind, resource_id, lb_type in in_use:
        cloudwatch = cloudwatch_for(region)
        if kind == "ec2-instance":
            _usage(cloudwatch, resource_id, now, cpu=35.0, network_bytes=800_000_000)
        elif kind in ("load-balancer", "classic-load-balancer"):
            key = "classic" if kind == "classic-load-balancer" else (lb_type or "application")
            namespace, dimension, metrics = _IN_USE_TRAFFIC[key]
            value = resource_id.split(":loadbalancer/", 1)[-1]
            _put(
                cloudwatch,
                namespace,
                [
                    {
                        "MetricName": metric,
                        "Dimensions": [{"Name": dimension, "Value": value}],
                        "Value": per_day,
                        "Timestamp": now - day * DAY - timedelta(hours=1),
                    }
                    for day in range(LOOKBACK_DAYS)
                    for metric, per_day in metrics
                ],
            )
        else:
            continue
        seeded += 1
    return seeded


def seed_region_usage(seed: RegionSeed) -> None:
    """The demo world's last seeder (``world.REGION_SEEDERS``): CloudWatch history for what the
    earlier seeders made in use, so the idleness detectors see those instances and load balancers
    busy instead of reporting them for missing metrics."""
    cloudwatch = seed.account.cloudwatch(seed.region)
    seed_usage(
        lambda _region: cloudwatch,
        [
            (r.region, r.kind, r.resource_id, r.attributes.get("type"))
            for r in seed.resources
            if r.verdict is Verdict.IN_USE
        ],
        seed.now,
    )
