"""Demo seeds for the compute types: idle and long-stopped EC2 instances and idle NAT gateways,
each beside look-alikes in use, with the CloudWatch datapoints that tell them apart.

Called by :mod:`cloudsweep.demo.world` (``REGION_SEEDERS``: :func:`seed_compute` after core's EC2
step, :func:`seed_region_usage` last) and by tests that give in-use resources traffic
(:func:`seed_usage`). Launch, stop and creation times are backdated in a moto server of
this process (:func:`cloudsweep.aws.emulator.backdate_compute`); on a server in another process
the instances stay young and the stopped one is not yet "long stopped".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Final

from cloudsweep.aws import emulator
from cloudsweep.demo.seeding import RegionSeed, Verdict, spec

DAY: Final = timedelta(days=1)
LOOKBACK_DAYS: Final = 14
ASG_TAG: Final = "aws:autoscaling:groupName"


# gp3 root volumes, as core's instances have: gp2 ones would be ebs-gp3-candidate findings.
_ROOT: Final = (
    {
        "DeviceName": "/dev/sda1",
        "Ebs": {"VolumeSize": 8, "VolumeType": "gp3", "DeleteOnTermination": True},
    },
)


def seed_compute(seed: RegionSeed) -> None:
    """One of the demo world's ``REGION_SEEDERS``, after :func:`cloudsweep.demo.core.seed_ec2`:
    instances launch from its AMI (``seed.base_image``) into its subnet, so the world gets no
    base image of its own. Per region:

    - running instances: one idle for 300 days (waste), one as idle but in an Auto Scaling group
      (protected: the stop action refuses it); the busy ones are core's;
    - stopped instances: one for 90 days with a 200 GiB data volume and an Elastic IP (waste),
      one for 3 days (too recent);
    - NAT gateways: one routed to with no bytes for the lookback (waste), one no route table uses
      (waste), one carrying 3 GB a day (in use, its traffic from :func:`seed_region_usage`).

    Every instance's root volume, the data volume and every Elastic IP (the NAT gateways' too)
    are recorded as in use: their owners are what the detectors judge.
    """
    if seed.base_image is None or not seed.subnets:
        raise RuntimeError("seed_compute needs core.seed_ec2's AMI and subnets: run that first")
    ec2 = seed.account.ec2(seed.region)
    cloudwatch = seed.account.cloudwatch(seed.region)
    subnet = seed.subnets[0]
    launched: dict[str, datetime] = {}
    stopped: dict[str, datetime] = {}
    nat_created: dict[str, datetime] = {}

    def launch(name: str, team: str, instance_type: str, age: timedelta, **extra: str) -> str:
        tags = seed.labels(name, team, "prod", **extra)
        instance = ec2.run_instances(
            ImageId=seed.base_image,  # type: ignore[arg-type]
            InstanceType=instance_type,  # type: ignore[arg-type]
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet["SubnetId"],
            BlockDeviceMappings=list(_ROOT),  # type: ignore[arg-type]
            TagSpecifications=spec("instance", tags) + spec("volume", tags),
        )["Instances"][0]
        instance_id = instance["InstanceId"]
        launched[instance_id] = seed.now - age
        for mapping in instance.get("BlockDeviceMappings", []):
            seed.add(
                "ebs-volume",
                mapping["Ebs"]["VolumeId"],
                tags,
                "attached",
                Verdict.IN_USE,
                age,
                volume_type="gp3",
                size="8",
                attached_to=instance_id,
            )
        return instance_id

    for name, team, instance_type, category, verdict in (
        ("reporting-old", "data", "m5.large", "idle", Verdict.WASTE),
        ("web-asg-spare", "storefront", "t3.medium", "idle-in-asg", Verdict.PROTECTED),
    ):
        asg = {ASG_TAG: "web-asg" + seed.suffix} if category == "idle-in-asg" else {}
        instance_id = launch(name, team, instance_type, 300 * DAY, **asg)
        # Under the detector's 5% CPU peak and 5 MB of network a day, every day.
        _usage(cloudwatch, instance_id, seed.now, cpu=1.2, network_bytes=200_000)
        seed.add(
            "ec2-instance",
            instance_id,
            seed.labels(name, team, "prod", **asg),
            category,
            verdict,
            300 * DAY,
            instance_type=instance_type,
        )

    parked_tags = seed.labels("batch-2023", "data", "prod")
    parked = launch("batch-2023", "data", "t3.large", 400 * DAY)
    data_tags = seed.labels("batch-2023-data", "data", "prod")
    data = ec2.create_volume(
        AvailabilityZone=subnet["AvailabilityZone"],
        Size=200,
        VolumeType="gp3",
        TagSpecifications=spec("volume", data_tags),
    )["VolumeId"]
    ec2.attach_volume(VolumeId=data, InstanceId=parked, Device="/dev/sdf")
    seed.add(
        "ebs-volume",
        data,
        data_tags,
        "attached",
        Verdict.IN_USE,
        400 * DAY,
        volume_type="gp3",
        size="200",
        attached_to=parked,
    )
    address_tags = seed.labels("batch-2023-public", "data", "prod")
    address = ec2.allocate_address(Domain="vpc", TagSpecifications=spec("elastic-ip", address_tags))
    ec2.associate_address(AllocationId=address["AllocationId"], InstanceId=parked)
    seed.add(
        "elastic-ip",
        address["AllocationId"],
        address_tags,
        "stopped-instance",
        Verdict.IN_USE,  # associated: the stopped instance's finding prices it
        400 * DAY,
        public_ip=address["PublicIp"],
    )
    paused_tags = seed.labels("etl-paused", "data", "prod")
    paused = launch("etl-paused", "data", "t3.small", 200 * DAY)
    ec2.stop_instances(InstanceIds=[parked, paused])
    stopped.update({parked: seed.now - 90 * DAY, paused: seed.now - 3 * DAY})
    seed.add(
        "ec2-stopped-instance",
        parked,
        parked_tags,
        "stopped-90-days",
        Verdict.WASTE,
        400 * DAY,
        instance_type="t3.large",
    )
    # Under the detector's 30 days: a pause, not yet waste.
    seed.add(
        "ec2-stopped-instance",
        paused,
        paused_tags,
        "stopped-3-days",
        Verdict.TOO_RECENT,
        200 * DAY,
        instance_type="t3.small",
    )

    for name, routed, category, verdict in (
        ("nat-legacy", True, "idle", Verdict.WASTE),
        ("nat-orphan", False, "unrouted", Verdict.WASTE),
        ("nat-main", True, "busy", Verdict.IN_USE),
    ):
        tags = seed.labels(name, "network", "prod")
        address = ec2.allocate_address(Domain="vpc", TagSpecifications=spec("elastic-ip", tags))
        nat = ec2.create_nat_gateway(
            SubnetId=subnet["SubnetId"],
            AllocationId=address["AllocationId"],
            TagSpecifications=spec("natgateway", tags),
        )["NatGateway"]["NatGatewayId"]
        nat_created[nat] = seed.now - 200 * DAY
        seed.add(
            "elastic-ip",
            address["AllocationId"],
            tags,
            "nat-gateway",
            Verdict.IN_USE,  # associated with the gateway's network interface
            200 * DAY,
            public_ip=address["PublicIp"],
        )
        if routed:
            # A private subnet's way out: its route table sends everything to the gateway.
            table = ec2.create_route_table(
                VpcId=subnet["VpcId"],
                TagSpecifications=spec(
                    "route-table", seed.labels(name + "-private", "network", "prod")
                ),
            )["RouteTable"]["RouteTableId"]
            ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
        if category == "idle":
            # Datapoints of zero bytes: measured idle, not metrics missing.
            _nat_bytes(cloudwatch, nat, seed.now, 0)
        seed.add("nat-gateway", nat, tags, category, verdict, 200 * DAY, routed=str(routed).lower())

    emulator.backdate_compute(
        seed.account.account_id,
        seed.region,
        launched=launched,
        stopped=stopped,
        nat_created=nat_created,
    )


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
    kind ``ec2-instance`` (CPU 35%, network), ``nat-gateway`` (3 GB a day), ``load-balancer`` (an ARN or ``app/name/id``, with
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
        elif kind == "nat-gateway":
            _nat_bytes(cloudwatch, resource_id, now, 3_000_000_000)
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
    earlier seeders made in use, so the idleness detectors see those instances, NAT gateways and
    load balancers busy instead of reporting them for missing metrics."""
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
