"""Demo seeds for the first five resource types: EC2 (volumes, snapshots, AMIs, Elastic IPs),
load balancers and DB instances.

Called by :mod:`cloudsweep.demo.world`, once per region, in the order of its ``REGION_SEEDERS``:
:func:`seed_ec2` runs first, since the load balancers serve its instances.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Final

from cloudsweep.demo.seeding import DAY, PROTECT_TAG, RegionSeed, Verdict, spec, tags_of

# (name, type, size GiB, extra create_volume arguments, team, env, age in days)
_UNATTACHED_VOLUMES: Final[tuple[tuple[str, str, int, Mapping[str, int], str, str, int], ...]] = (
    ("ci-build-cache-old", "gp2", 100, {}, "ci", "dev", 45),
    ("search-index-restore", "gp3", 500, {"Iops": 6000, "Throughput": 500}, "search", "prod", 60),
    ("payments-db-data-old", "io1", 200, {"Iops": 5000}, "payments", "prod", 120),
    ("ledger-db-wal-2023", "io2", 100, {"Iops": 10000}, "payments", "prod", 95),
    ("logs-archive-migration", "st1", 1000, {}, "platform", "prod", 200),
    ("cold-archive-copy", "sc1", 500, {}, "data", "staging", 300),
)


def seed_ec2(demo: RegionSeed) -> None:
    """EC2: an AMI, instances, volumes, snapshots and Elastic IPs."""
    region, labels = demo.region, demo.labels
    ec2 = demo.account.ec2(region)
    zones = (f"{region}a", f"{region}b")

    # An AMI baked 90 days ago; moto gives it a snapshot of its own (its BlockDeviceMappings
    # argument is ignored), which is the AMI-referenced snapshot: not waste.
    ami_tags = labels("web-base-2024.06", "platform", "prod")
    ami_id = ec2.register_image(
        Name=ami_tags["Name"], Description="Golden image for web hosts", Architecture="x86_64"
    )["ImageId"]
    image = ec2.describe_images(ImageIds=[ami_id])["Images"][0]
    ami_snapshot = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    ec2.create_tags(Resources=[ami_id, ami_snapshot], Tags=tags_of(ami_tags))
    demo.base_image = ami_id
    demo.add("ami", ami_id, ami_tags, "registered", Verdict.IN_USE, 90 * DAY)
    demo.add("ebs-snapshot", ami_snapshot, ami_tags, "ami-referenced", Verdict.IN_USE, 90 * DAY)

    subnet = ec2.describe_subnets(
        Filters=[
            {"Name": "default-for-az", "Values": ["true"]},
            {"Name": "availability-zone", "Values": list(zones)},
        ]
    )["Subnets"]
    subnets = demo.subnets = sorted(subnet, key=lambda s: s["AvailabilityZone"])
    instances = demo.instances
    for host, team in (("web-1", "storefront"), ("web-2", "storefront"), ("batch-1", "data")):
        tags = labels(host, team, "prod")
        reply = ec2.run_instances(
            ImageId=ami_id,
            InstanceType="t3.medium",
            MinCount=1,
            MaxCount=1,
            SubnetId=subnets[0]["SubnetId"],
            # gp3 root volumes, as current AMIs have: the gp2 volumes of the demo are the
            # ebs-gp3-candidate seeds (demo.storage), which name their verdict explicitly.
            BlockDeviceMappings=[
                {
                    "DeviceName": "/dev/sda1",
                    "Ebs": {"VolumeSize": 8, "VolumeType": "gp3", "DeleteOnTermination": True},
                }
            ],
            TagSpecifications=spec("instance", tags) + spec("volume", tags),
        )
        instance = reply["Instances"][0]
        instances[host] = instance["InstanceId"]
        demo.add("ec2-instance", instance["InstanceId"], tags, "running", Verdict.IN_USE, 30 * DAY)
        for mapping in instance.get("BlockDeviceMappings", []):
            demo.add(
                "ebs-volume",
                mapping["Ebs"]["VolumeId"],
                tags,
                "attached",
                Verdict.IN_USE,
                30 * DAY,
                attached_to=instance["InstanceId"],
            )

    def volume(
        volume_type: str, size: int, extra: Mapping[str, int], tags: Mapping[str, str]
    ) -> str:
        return ec2.create_volume(
            AvailabilityZone=zones[0],
            Size=size,
            VolumeType=volume_type,  # type: ignore[arg-type]
            TagSpecifications=spec("volume", tags),
            **extra,  # type: ignore[arg-type]
        )["VolumeId"]

    # A data volume attached to the batch host, and its nightly backup: both in use.
    data_tags = labels("batch-1-data", "data", "prod")
    data_volume = volume("gp3", 200, {}, data_tags)
    ec2.attach_volume(VolumeId=data_volume, InstanceId=instances["batch-1"], Device="/dev/sdf")
    demo.add(
        "ebs-volume",
        data_volume,
        data_tags,
        "attached",
        Verdict.IN_USE,
        30 * DAY,
        volume_type="gp3",
        size="200",
        attached_to=instances["batch-1"],
    )
    backup_tags = labels("batch-1-data-nightly", "data", "prod")
    backup = ec2.create_snapshot(
        VolumeId=data_volume,
        Description="nightly backup of batch-1-data",
        TagSpecifications=spec("snapshot", backup_tags),
    )["SnapshotId"]
    demo.add(
        "ebs-snapshot",
        backup,
        backup_tags,
        "source-exists",
        Verdict.IN_USE,
        1 * DAY,
        source_volume=data_volume,
    )

    unattached: list[str] = []
    for name, volume_type, size, extra, team, env, age in _UNATTACHED_VOLUMES:
        tags = labels(name, team, env)
        volume_id = volume(volume_type, size, extra, tags)
        unattached.append(volume_id)
        demo.add(
            "ebs-volume",
            volume_id,
            tags,
            "unattached",
            Verdict.WASTE,
            timedelta(days=age),
            volume_type=volume_type,
            size=str(size),
        )

    # A snapshot of a volume that still exists (even though that volume is waste itself).
    pre_tags = labels("search-index-pre-reindex", "search", "prod")
    pre = ec2.create_snapshot(VolumeId=unattached[1], TagSpecifications=spec("snapshot", pre_tags))[
        "SnapshotId"
    ]
    demo.add(
        "ebs-snapshot",
        pre,
        pre_tags,
        "source-exists",
        Verdict.IN_USE,
        55 * DAY,
        source_volume=unattached[1],
    )

    protected_tags = labels("dr-restore-point", "platform", "prod", **{PROTECT_TAG: "true"})
    protected = volume("gp3", 50, {}, protected_tags)
    demo.add(
        "ebs-volume",
        protected,
        protected_tags,
        "protected",
        Verdict.PROTECTED,
        150 * DAY,
        volume_type="gp3",
        size="50",
    )
    recent_tags = labels("scratch-new-migration", "data", "dev")
    recent = volume("gp3", 20, {}, recent_tags)
    demo.add(
        "ebs-volume",
        recent,
        recent_tags,
        "recent",
        Verdict.TOO_RECENT,
        timedelta(hours=2),
        volume_type="gp3",
        size="20",
    )

    # Snapshots whose volume was deleted long ago: orphaned.
    for name, team, age in (("jenkins-home-2023", "ci", 400), ("reports-db-final", "data", 200)):
        tags = labels(name, team, "prod")
        source = volume("gp2", 80, {}, tags)
        snapshot = ec2.create_snapshot(
            VolumeId=source,
            Description=f"final snapshot of {name}",
            TagSpecifications=spec("snapshot", tags),
        )["SnapshotId"]
        ec2.delete_volume(VolumeId=source)
        demo.add(
            "ebs-snapshot",
            snapshot,
            tags,
            "orphaned",
            Verdict.WASTE,
            timedelta(days=age),
            source_volume=source,
        )

    # Elastic IPs: two forgotten, one in use, one kept on purpose.
    for name, team, category, verdict, extra_tags in (
        ("old-nat-egress", "platform", "unassociated", Verdict.WASTE, {}),
        ("partner-sftp-old", "payments", "unassociated", Verdict.WASTE, {}),
        ("batch-1-public", "data", "associated", Verdict.IN_USE, {}),
        (
            "partner-allowlisted",
            "payments",
            "protected",
            Verdict.PROTECTED,
            {"do-not-delete": "true"},
        ),
    ):
        tags = labels(name, team, "prod", **extra_tags)
        address = ec2.allocate_address(Domain="vpc", TagSpecifications=spec("elastic-ip", tags))
        if category == "associated":
            ec2.associate_address(
                AllocationId=address["AllocationId"], InstanceId=instances["batch-1"]
            )
        demo.add(
            "elastic-ip",
            address["AllocationId"],
            tags,
            category,
            verdict,
            60 * DAY,
            public_ip=address["PublicIp"],
        )


def seed_load_balancers(demo: RegionSeed) -> None:
    """ELBv2 and classic load balancers, idle and serving, and the busy ones' CloudWatch traffic."""
    region, suffix, labels, now = demo.region, demo.suffix, demo.labels, demo.now
    account, subnets, instances = demo.account, demo.subnets, demo.instances
    vpc_id = subnets[0]["VpcId"]
    elbv2 = account.elbv2(region)
    subnet_ids = [s["SubnetId"] for s in subnets]

    def target_group(name: str, tags: Mapping[str, str]) -> str:
        return elbv2.create_target_group(
            Name=name + suffix,
            Protocol="HTTP",
            Port=80,
            VpcId=vpc_id,
            TargetType="instance",
            Tags=tags_of(tags),
        )["TargetGroups"][0]["TargetGroupArn"]

    def load_balancer(name: str, kind: str, tags: Mapping[str, str]) -> str:
        return elbv2.create_load_balancer(
            Name=name + suffix,
            Subnets=subnet_ids,
            Type=kind,  # type: ignore[arg-type]
            Scheme="internet-facing",
            Tags=tags_of(tags),
        )["LoadBalancers"][0]["LoadBalancerArn"]

    def forward(lb_arn: str, tg_arn: str) -> None:
        elbv2.create_listener(
            LoadBalancerArn=lb_arn,
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
        )

    idle_tags = labels("promo-2023-alb", "marketing", "prod")
    idle_tg = target_group("promo-2023-web", idle_tags)
    idle_alb = load_balancer("promo-2023-alb", "application", idle_tags)
    forward(idle_alb, idle_tg)
    demo.add(
        "load-balancer",
        idle_alb,
        idle_tags,
        "no-targets",
        Verdict.WASTE,
        240 * DAY,
        type="application",
        target_group=idle_tg,
    )

    busy_tags = labels("storefront-alb", "storefront", "prod")
    busy_tg = target_group("storefront-web", busy_tags)
    busy_alb = load_balancer("storefront-alb", "application", busy_tags)
    forward(busy_alb, busy_tg)
    elbv2.register_targets(TargetGroupArn=busy_tg, Targets=[{"Id": instances["web-1"]}])
    demo.add(
        "load-balancer",
        busy_alb,
        busy_tags,
        "serving",
        Verdict.IN_USE,
        300 * DAY,
        type="application",
        target_group=busy_tg,
    )

    nlb_tags = labels("legacy-mqtt-nlb", "iot", "staging")
    nlb = load_balancer("legacy-mqtt-nlb", "network", nlb_tags)
    demo.add(
        "load-balancer", nlb, nlb_tags, "no-target-groups", Verdict.WASTE, 180 * DAY, type="network"
    )

    elb = account.elb(region)
    for name, team, host in (
        ("legacy-api-elb", "api", None),
        ("legacy-web-elb", "storefront", "web-2"),
    ):
        tags = labels(name, team, "prod")
        lb_name = name + suffix
        elb.create_load_balancer(
            LoadBalancerName=lb_name,
            Listeners=[
                {
                    "Protocol": "HTTP",
                    "LoadBalancerPort": 80,
                    "InstancePort": 80,
                    "InstanceProtocol": "HTTP",
                }
            ],
            AvailabilityZones=[subnets[0]["AvailabilityZone"]],
            Tags=tags_of(tags),
        )
        if host is not None:
            elb.register_instances_with_load_balancer(
                LoadBalancerName=lb_name, Instances=[{"InstanceId": instances[host]}]
            )
        category, verdict = ("serving", Verdict.IN_USE) if host else ("no-instances", Verdict.WASTE)
        demo.add("classic-load-balancer", lb_name, tags, category, verdict, 700 * DAY)

    # Traffic for the busy balancers, as CloudWatch would have it; idle ones have no datapoints.
    cloudwatch = account.cloudwatch(region)
    hours = [now - timedelta(hours=h) for h in range(1, 14 * 24 + 1)]
    dimension = busy_alb.split(":loadbalancer/", 1)[1]
    cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {
                "MetricName": "RequestCount",
                "Dimensions": [{"Name": "LoadBalancer", "Value": dimension}],
                "Timestamp": t,
                "Value": 900.0 + 40 * (t.hour % 12),
                "Unit": "Count",
            }
            for t in hours
        ],
    )
    cloudwatch.put_metric_data(
        Namespace="AWS/ELB",
        MetricData=[
            {
                "MetricName": "RequestCount",
                "Dimensions": [{"Name": "LoadBalancerName", "Value": "legacy-web-elb" + suffix}],
                "Timestamp": t,
                "Value": 120.0 + t.hour,
                "Unit": "Count",
            }
            for t in hours
        ],
    )


def seed_databases(demo: RegionSeed) -> None:
    """DB instances stopped, idle and busy, with the connection counts CloudWatch would hold."""
    region, suffix, labels, now, account = (
        demo.region,
        demo.suffix,
        demo.labels,
        demo.now,
        demo.account,
    )
    rds = account.rds(region)
    cloudwatch = account.cloudwatch(region)
    hours = [now - timedelta(hours=h) for h in range(1, 14 * 24 + 1)]
    for name, team, env, instance_class, storage, category, verdict, connections in (
        ("reports-staging", "data", "staging", "db.m5.large", 200, "stopped", Verdict.WASTE, None),
        ("analytics-dev", "data", "dev", "db.r5.large", 100, "idle", Verdict.WASTE, 0),
        ("orders-prod", "storefront", "prod", "db.m5.xlarge", 500, "busy", Verdict.IN_USE, 25),
    ):
        tags = labels(name, team, env)
        identifier = name + suffix
        rds.create_db_instance(
            DBInstanceIdentifier=identifier,
            DBInstanceClass=instance_class,
            Engine="postgres",
            EngineVersion="16.3",
            AllocatedStorage=storage,
            StorageType="gp3",
            MasterUsername="cloudsweep",
            MasterUserPassword="not-a-real-password",
            Tags=tags_of(tags),
        )
        if connections is None:
            rds.stop_db_instance(DBInstanceIdentifier=identifier)
        else:
            # One datapoint an hour for 14 days: what a connection-based idleness check reads.
            cloudwatch.put_metric_data(
                Namespace="AWS/RDS",
                MetricData=[
                    {
                        "MetricName": "DatabaseConnections",
                        "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": identifier}],
                        "Timestamp": t,
                        "Value": float(connections + (t.hour % 6) if connections else 0),
                        "Unit": "Count",
                    }
                    for t in hours
                ],
            )
        demo.add(
            "rds-instance",
            identifier,
            tags,
            category,
            verdict,
            400 * DAY,
            instance_class=instance_class,
            allocated_storage=str(storage),
        )
