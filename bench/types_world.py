"""The part of ``python -m bench scan`` (world ``all-types``, the default) that the bulk world lacks:
bulk amounts of the types beyond EBS and Elastic IPs, so that one scan exercises all twelve
detectors and every reader of CloudWatch.

Per region, ``n`` of each kind, about half waste and half in use, made with as few calls as moto
allows (instances ``n`` at a time, one ``PutMetricData`` per 500 datapoints):

- ``ec2-instance``: running instances, half idle (CPU 1%, a few KB of network), half busy (and
  each busy one carries an attached 100 GiB gp2 data volume: ``ebs-gp3-candidate`` waste; the
  8 GiB gp2 roots moto gives the other worlds' instances are candidates too, counted but not as
  waste); every instance the bulk and load-balancer worlds left running gets busy traffic too;
- ``ec2-stopped-instance``: half stopped 90 days ago (waste), half 3 days ago;
- ``nat-gateway``: a third busy, a third routed to with zero bytes, a third in no route table;
- ``load-balancer``: :func:`bench.lb_world.seed_load_balancers` (half idle);
- ``rds-instance``: a third busy, a third without connections, a third stopped;
- ``ami``: images no instance or template uses, 200 days old;
- ``cloudwatch-log-group``: half never expire (waste), half with a retention, 50 GiB stored each;
- ``s3-incomplete-multipart``: buckets with an abandoned upload, half with an abort rule.

Launch, stop and creation times are backdated in the in-process moto server (``cloudsweep.aws.
emulator``), as the demo world does. Metric datapoints cover the last ``METRIC_DAYS`` days only:
moto's ``GetMetricData`` walks every stored datapoint for each query and day, and two days tell
busy from idle as well as fourteen do (the findings then say "2 of 14 days").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Final

from bench import lb_world
from cloudsweep.aws import emulator

METRIC_DAYS: Final = 2
DAY: Final = timedelta(days=1)
_GIB: Final = 1024**3
_ROOT: Final = {
    "DeviceName": "/dev/sda1",
    "Ebs": {"VolumeSize": 8, "VolumeType": "gp3", "DeleteOnTermination": True},
}

Client = Callable[[str, str], Any]


def seed_all_types(
    client: Client, account_id: str, regions: Sequence[str], n: int, now: datetime
) -> tuple[Counter[str], Counter[str]]:
    """Seed ``n`` of each kind in every region (regions at once); returns (created, waste) by kind."""
    created: Counter[str] = Counter()
    waste: Counter[str] = Counter()
    balancers = lb_world.seed_load_balancers(client, regions, n, now)
    created["load-balancer"] += balancers["load-balancer"]
    waste["load-balancer"] += balancers["waste"]
    services = ("ec2", "cloudwatch", "rds", "logs", "s3")
    # boto3 sessions are not thread-safe, their clients are: make every client here.
    clients = [{s: client(s, region) for s in services} for region in regions]
    with ThreadPoolExecutor(max_workers=len(regions)) as pool:
        results = list(
            pool.map(
                lambda job: _region(job[1], account_id, job[0], n, now),
                zip(regions, clients, strict=True),
            )
        )
    for region_created, region_waste in results:
        created.update(region_created)
        waste.update(region_waste)
    return created, waste


def _region(
    clients: dict[str, Any], account_id: str, region: str, n: int, now: datetime
) -> tuple[Counter[str], Counter[str]]:
    ec2, cloudwatch = clients["ec2"], clients["cloudwatch"]
    created: Counter[str] = Counter()
    waste: Counter[str] = Counter()
    datapoints = _Datapoints(cloudwatch, now)

    # What the bulk and load-balancer worlds left running is in use: give it traffic. Their
    # instances' root volumes are moto's default gp2 of 8 GiB: gp3 candidates, but not counted
    # as waste, since gp2's 128 MiB/s costs extra on gp3 and the saving (0.04 USD a month) is
    # under the detector's 5% in some regions (eu-west-1).
    for instance_id in _running(ec2):
        datapoints.instance(instance_id, cpu=40.0, network=900_000_000)
    gp2_roots = len(
        ec2.describe_volumes(
            Filters=[
                {"Name": "volume-type", "Values": ["gp2"]},
                {"Name": "attachment.status", "Values": ["attached"]},
            ]
        )["Volumes"]
    )
    created["ebs-gp3-candidate"] += gp2_roots

    vpc = ec2.create_vpc(CidrBlock="10.70.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.70.1.0/24", AvailabilityZone=f"{region}a")[
        "Subnet"
    ]["SubnetId"]
    image = ec2.register_image(Name=f"bench-types-{region}", Architecture="x86_64")["ImageId"]

    def launch(count: int, *, gp2_data: bool = False) -> list[str]:
        if count == 0:
            return []
        mappings: list[dict[str, Any]] = [_ROOT]
        if gp2_data:
            mappings.append(
                {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 100, "VolumeType": "gp2"}}
            )
        reply = ec2.run_instances(
            ImageId=image,
            InstanceType="t3.small",
            MinCount=count,
            MaxCount=count,
            SubnetId=subnet,
            BlockDeviceMappings=mappings,
        )
        return [i["InstanceId"] for i in reply["Instances"]]

    idle = launch(n - n // 2)
    busy = launch(n // 2, gp2_data=True)
    for instance_id in idle:
        datapoints.instance(instance_id, cpu=1.0, network=20_000)
    for instance_id in busy:
        datapoints.instance(instance_id, cpu=40.0, network=900_000_000)
    created["ec2-instance"] += n
    waste["ec2-instance"] += len(idle)
    created["ebs-gp3-candidate"] += len(busy)
    waste["ebs-gp3-candidate"] += len(busy)

    parked = launch(n - n // 2)
    paused = launch(n // 2)
    if parked or paused:
        ec2.stop_instances(InstanceIds=parked + paused)
    created["ec2-stopped-instance"] += n
    waste["ec2-stopped-instance"] += len(parked)

    nat_created: dict[str, datetime] = {}
    for i in range(n):
        allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
        nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation)["NatGateway"][
            "NatGatewayId"
        ]
        nat_created[nat] = now - 200 * DAY
        kind = i % 3  # 0 busy, 1 routed and idle, 2 in no route table
        if kind < 2:
            table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
            ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
            datapoints.nat(nat, 3_000_000_000 if kind == 0 else 0)
        waste["nat-gateway"] += kind > 0
    created["nat-gateway"] += n
    emulator.backdate_compute(
        account_id,
        region,
        launched={i: now - 200 * DAY for i in idle + busy + parked + paused},
        stopped={**{i: now - 90 * DAY for i in parked}, **{i: now - 3 * DAY for i in paused}},
        nat_created=nat_created,
    )

    _databases(clients["rds"], datapoints, account_id, region, n, now, created, waste)

    images = {
        ec2.register_image(Name=f"bench-unused-{region}-{i}", Architecture="x86_64")["ImageId"]: now
        - 200 * DAY
        for i in range(n)
    }
    emulator.backdate(account_id, region, "ami", images)
    created["ami"] += n
    waste["ami"] += n

    _log_groups(clients["logs"], account_id, region, n, now, created, waste)
    _buckets(clients["s3"], account_id, region, n, created, waste)
    datapoints.flush()
    return created, waste


def _running(ec2: Any) -> list[str]:
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["running"]}]
    )
    return [i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]]


def _databases(
    rds: Any,
    datapoints: _Datapoints,
    account_id: str,
    region: str,
    n: int,
    now: datetime,
    created: Counter[str],
    waste: Counter[str],
) -> None:
    ages: dict[str, datetime] = {}
    for i in range(n):
        identifier = f"bench-db-{i}"
        rds.create_db_instance(
            DBInstanceIdentifier=identifier,
            DBInstanceClass="db.t3.medium",
            Engine="postgres",
            AllocatedStorage=20,
            MasterUsername="bench",
            MasterUserPassword="not-a-real-password",
        )
        ages[identifier] = now - 200 * DAY
        kind = i % 3  # 0 busy, 1 no connections, 2 stopped
        if kind == 2:
            rds.stop_db_instance(DBInstanceIdentifier=identifier)
        else:
            datapoints.put(
                "AWS/RDS",
                "DatabaseConnections",
                "DBInstanceIdentifier",
                identifier,
                25.0 if kind == 0 else 0.0,
            )
        waste["rds-instance"] += kind > 0
    created["rds-instance"] += n
    emulator.backdate(account_id, region, "rds-instance", ages)


def _log_groups(
    logs: Any,
    account_id: str,
    region: str,
    n: int,
    now: datetime,
    created: Counter[str],
    waste: Counter[str],
) -> None:
    stored: dict[str, int] = {}
    for i in range(n):
        group = f"/bench/{region}/service-{i}"
        logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName="main")  # holds the stored bytes
        if i % 2:
            logs.put_retention_policy(logGroupName=group, retentionInDays=30)
        else:
            waste["cloudwatch-log-group"] += 1
        stored[group] = 50 * _GIB
    emulator.set_stored_bytes(account_id, region, "cloudwatch-log-group", stored)
    emulator.backdate(
        account_id, region, "cloudwatch-log-group", {g: now - 200 * DAY for g in stored}
    )
    created["cloudwatch-log-group"] += n


def _buckets(
    s3: Any, account_id: str, region: str, n: int, created: Counter[str], waste: Counter[str]
) -> None:
    location = (
        {}
        if region == "us-east-1"
        else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    )
    sizes: dict[str, int] = {}
    for i in range(n):
        bucket = f"bench-{account_id}-{region}-{i}"
        s3.create_bucket(Bucket=bucket, **location)
        upload = s3.create_multipart_upload(Bucket=bucket, Key="export.parquet")["UploadId"]
        s3.upload_part(
            Bucket=bucket, Key="export.parquet", UploadId=upload, PartNumber=1, Body=b"part"
        )
        sizes[f"{bucket}/{upload}"] = 10 * _GIB
        if i % 2:
            s3.put_bucket_lifecycle_configuration(
                Bucket=bucket,
                LifecycleConfiguration={
                    "Rules": [
                        {
                            "ID": "abort-uploads",
                            "Status": "Enabled",
                            "Filter": {"Prefix": ""},
                            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3},
                        }
                    ]
                },
            )
        else:
            waste["s3-incomplete-multipart"] += 1
    emulator.set_stored_bytes(account_id, region, "s3-multipart-upload", sizes)
    created["s3-incomplete-multipart"] += n


class _Datapoints:
    """CloudWatch datapoints of one region, sent 500 a ``PutMetricData`` call per namespace."""

    def __init__(self, cloudwatch: Any, now: datetime) -> None:
        self._cloudwatch = cloudwatch
        self._now = now
        self._pending: dict[str, list[dict[str, Any]]] = {}

    def put(self, namespace: str, metric: str, dimension: str, value: str, amount: float) -> None:
        batch = self._pending.setdefault(namespace, [])
        batch.extend(
            {
                "MetricName": metric,
                "Dimensions": [{"Name": dimension, "Value": value}],
                "Value": amount,
                "Timestamp": self._now - day * DAY - timedelta(hours=1),
            }
            for day in range(METRIC_DAYS)
        )
        if len(batch) >= 500:
            self._send(namespace)

    def instance(self, instance_id: str, *, cpu: float, network: int) -> None:
        self.put("AWS/EC2", "CPUUtilization", "InstanceId", instance_id, cpu)
        self.put("AWS/EC2", "NetworkIn", "InstanceId", instance_id, network)
        self.put("AWS/EC2", "NetworkOut", "InstanceId", instance_id, network)

    def nat(self, nat_id: str, per_day: int) -> None:
        for metric in ("BytesInFromSource", "BytesInFromDestination"):
            self.put("AWS/NATGateway", metric, "NatGatewayId", nat_id, per_day)

    def flush(self) -> None:
        for namespace in list(self._pending):
            self._send(namespace)

    def _send(self, namespace: str) -> None:
        data = self._pending.pop(namespace, [])
        for start in range(0, len(data), 500):
            self._cloudwatch.put_metric_data(
                Namespace=namespace, MetricData=data[start : start + 500]
            )
