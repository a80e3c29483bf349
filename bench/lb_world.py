"""The load-balancer-heavy part of ``python -m bench scan --world lb-heavy``.

Per region: ``per_region`` load balancers, half application (ELBv2) and half classic; half of
each have a target group (classic: registered instances) with one running instance, and those
also get 14 days of ``RequestCount`` in CloudWatch, as load balancers in use do. The other half
have nothing behind them and no traffic: the waste. Called by ``bench/scan.py`` with boto3 clients
of the seeded account.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

LOOKBACK_DAYS = 14


def seed_load_balancers(
    client: Callable[[str, str], Any], regions: Sequence[str], per_region: int, now: datetime
) -> dict[str, int]:
    """Seed every region at once; returns counts by kind (``load-balancer``, ``waste``...)."""
    with ThreadPoolExecutor(max_workers=len(regions)) as pool:
        results = list(pool.map(lambda r: _region(client, r, per_region, now), regions))
    total: dict[str, int] = {}
    for counts in results:
        for kind, n in counts.items():
            total[kind] = total.get(kind, 0) + n
    return total


def _region(
    client: Callable[[str, str], Any], region: str, n: int, now: datetime
) -> dict[str, int]:
    ec2, elbv2, elb, cloudwatch = (client(s, region) for s in ("ec2", "elbv2", "elb", "cloudwatch"))
    vpc = ec2.create_vpc(CidrBlock="10.60.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.60.{i}.0/24", AvailabilityZone=f"{region}{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in enumerate("ab")
    ]
    image = ec2.register_image(Name=f"bench-lb-{region}", Architecture="x86_64")["ImageId"]
    counts = {"load-balancer": 0, "target-group": 0, "instance": 0, "waste": 0}
    busy: list[tuple[str, str, str]] = []  # (namespace, dimension name, value)
    applications = n // 2
    for i in range(n):
        served = i % 4 < 2  # half of each kind has something behind it
        if i < applications:
            lb = elbv2.create_load_balancer(Name=f"alb-{i}", Subnets=subnets)["LoadBalancers"][0]
            arn = lb["LoadBalancerArn"]
            if served:
                group = elbv2.create_target_group(
                    Name=f"tg-{i}", Protocol="HTTP", Port=80, VpcId=vpc
                )["TargetGroups"][0]["TargetGroupArn"]
                elbv2.create_listener(
                    LoadBalancerArn=arn,
                    Protocol="HTTP",
                    Port=80,
                    DefaultActions=[{"Type": "forward", "TargetGroupArn": group}],
                )
                instance = _instance(ec2, image, subnets[0])
                elbv2.register_targets(TargetGroupArn=group, Targets=[{"Id": instance}])
                busy.append(("AWS/ApplicationELB", "LoadBalancer", arn.split(":loadbalancer/")[1]))
                counts["target-group"] += 1
                counts["instance"] += 1
        else:
            name = f"clb-{i}"
            elb.create_load_balancer(
                LoadBalancerName=name,
                Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}],
                AvailabilityZones=[f"{region}a"],
            )
            if served:
                instance = _instance(ec2, image, subnets[0])
                elb.register_instances_with_load_balancer(
                    LoadBalancerName=name, Instances=[{"InstanceId": instance}]
                )
                busy.append(("AWS/ELB", "LoadBalancerName", name))
                counts["instance"] += 1
        counts["load-balancer"] += 1
        counts["waste"] += not served
    _requests(cloudwatch, busy, now)
    return counts


def _instance(ec2: Any, image: str, subnet: str) -> str:
    reply = ec2.run_instances(
        ImageId=image, InstanceType="t3.small", MinCount=1, MaxCount=1, SubnetId=subnet
    )
    return str(reply["Instances"][0]["InstanceId"])


def _requests(cloudwatch: Any, busy: list[tuple[str, str, str]], now: datetime) -> None:
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for namespace, dimension, value in busy:
        by_namespace.setdefault(namespace, []).extend(
            {
                "MetricName": "RequestCount",
                "Dimensions": [{"Name": dimension, "Value": value}],
                "Value": 5000,
                "Timestamp": now - timedelta(days=day, hours=1),
            }
            for day in range(LOOKBACK_DAYS)
        )
    for namespace, data in by_namespace.items():
        for start in range(0, len(data), 500):
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + 500])
