"""The seeded worlds hold what they promise, in the declared account only, as AWS describes them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from cloudsweep.aws import emulator
from cloudsweep.demo import world as demo_world
from cloudsweep.demo.world import Verdict

ACCOUNT = "210987654321"
OTHER_ACCOUNT = "999999999999"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Clients:
    """boto3 clients of one account, through the demo's scanner role (with its external ID)."""

    def __init__(self, endpoint_url: str, account_id: str, role: str = "CloudSweepScanner"):
        sts = boto3.client(
            "sts",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=emulator.ACCESS_KEY_ID,
            aws_secret_access_key=emulator.SECRET_ACCESS_KEY,
        )
        credentials = sts.assume_role(
            RoleArn=f"arn:aws:iam::{account_id}:role/{role}",
            RoleSessionName="cloudsweep-test",
            ExternalId=demo_world.DEMO_EXTERNAL_ID,
        )["Credentials"]
        self._session = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        self._endpoint_url = endpoint_url

    def __call__(self, service: str, region: str = "us-east-1") -> Any:
        return self._session.client(service, region_name=region, endpoint_url=self._endpoint_url)


@pytest.fixture
def world(moto_endpoint: str) -> demo_world.DemoWorld:
    return demo_world.seed_demo_world(moto_endpoint, account_id=ACCOUNT, now=NOW)


@pytest.fixture
def aws(moto_endpoint: str, world: demo_world.DemoWorld) -> Clients:
    return Clients(moto_endpoint, ACCOUNT)


def test_world_covers_two_regions_with_each_kind_and_verdict(world: demo_world.DemoWorld) -> None:
    assert world.account_id == ACCOUNT
    assert world.regions == ("us-east-1", "eu-west-1")
    assert world.backdated  # the fixture's server runs in this process
    assert world.scanner_role_arn == f"arn:aws:iam::{ACCOUNT}:role/CloudSweepScanner"
    for region in world.regions:
        for kind, categories in {
            "ebs-volume": {"unattached", "attached", "protected", "recent"},
            "ebs-snapshot": {"orphaned", "ami-referenced", "source-exists"},
            "elastic-ip": {
                "unassociated",
                "associated",
                "protected",
                "stopped-instance",
                "nat-gateway",
            },
            "load-balancer": {"no-targets", "serving", "no-target-groups"},
            "classic-load-balancer": {"no-instances", "serving"},
            "rds-instance": {"stopped", "idle", "busy"},
            "ebs-gp3-candidate": {"gp2-attached", "io1-attached", "protected"},
            "ami": {"registered", "unused", "launch-template", "launch-configuration", "recent"},
            "ec2-instance": {"running", "idle", "idle-in-asg"},
            "ec2-stopped-instance": {"stopped-90-days", "stopped-3-days"},
            "nat-gateway": {"idle", "unrouted", "busy"},
        }.items():
            found = {r.category for r in world.select(kind=kind, region=region)}
            assert found == categories, (region, kind)
        assert {r.verdict for r in world.select(region=region)} == set(Verdict)
    ids = [r.resource_id for r in world.resources]
    assert len(ids) == len(set(ids))


def test_volumes_are_as_declared(world: demo_world.DemoWorld, aws: Clients) -> None:
    for region in world.regions:
        volumes = {v["VolumeId"]: v for v in aws("ec2", region).describe_volumes()["Volumes"]}
        assert set(volumes) == world.ids(kind="ebs-volume", region=region) | world.ids(
            kind="ebs-gp3-candidate", region=region
        )
        categories = world.categories("ebs-volume")
        for volume_id in world.ids(kind="ebs-volume", region=region, category="unattached"):
            assert volumes[volume_id]["State"] == "available"
            assert not volumes[volume_id]["Attachments"]
        for volume_id in world.ids(kind="ebs-volume", region=region, category="attached"):
            assert volumes[volume_id]["State"] == "in-use"
            assert volumes[volume_id]["Attachments"][0]["InstanceId"].startswith("i-")
        (protected,) = world.ids(kind="ebs-volume", region=region, category="protected")
        assert {"Key": "cloudsweep.io/protect", "Value": "true"} in volumes[protected]["Tags"]
        assert not volumes[protected]["Attachments"]
        assert categories["recent"] & set(volumes)

        unattached = [volumes[i] for i in categories["unattached"] if i in volumes]
        assert {v["VolumeType"] for v in unattached} >= {"gp2", "gp3", "io1", "io2", "st1"}
        gp3 = next(v for v in unattached if v["VolumeType"] == "gp3")
        assert gp3["Iops"] > 3000 and gp3["Throughput"] > 125
        assert len({v["Size"] for v in unattached}) > 3

        # Ages are real in AWS's answers, not only in the world's record.
        for record in world.select(kind="ebs-volume", region=region):
            assert volumes[record.resource_id]["CreateTime"] == record.created_at
            tags = {t["Key"]: t["Value"] for t in volumes[record.resource_id]["Tags"]}
            assert {"Name", "team", "env"} <= set(tags)
        (recent,) = world.select(kind="ebs-volume", region=region, category="recent")
        assert NOW - recent.created_at < timedelta(days=1)
        for old in world.select(kind="ebs-volume", region=region, verdict=Verdict.WASTE):
            assert NOW - old.created_at >= timedelta(days=30)


def test_snapshots_are_orphaned_ami_referenced_or_of_live_volumes(
    world: demo_world.DemoWorld, aws: Clients
) -> None:
    for region in world.regions:
        ec2 = aws("ec2", region)
        snapshots = {
            s["SnapshotId"]: s for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
        }
        assert set(snapshots) == world.ids(kind="ebs-snapshot", region=region)
        volumes = {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
        images = ec2.describe_images(Owners=["self"])["Images"]
        ami_snapshots = {
            m["Ebs"]["SnapshotId"] for image in images for m in image["BlockDeviceMappings"]
        }
        assert world.ids(kind="ebs-snapshot", region=region, category="ami-referenced") == (
            ami_snapshots
        )
        orphaned = world.ids(kind="ebs-snapshot", region=region, category="orphaned")
        assert len(orphaned) == 2
        for snapshot_id in orphaned:
            assert snapshots[snapshot_id]["VolumeId"] not in volumes
            assert snapshot_id not in ami_snapshots
        for snapshot_id in world.ids(kind="ebs-snapshot", region=region, category="source-exists"):
            assert snapshots[snapshot_id]["VolumeId"] in volumes
        for record in world.select(kind="ebs-snapshot", region=region, category="orphaned"):
            assert snapshots[record.resource_id]["StartTime"] == record.created_at
            assert NOW - record.created_at > timedelta(days=90)


def test_elastic_ips_are_as_declared(world: demo_world.DemoWorld, aws: Clients) -> None:
    for region in world.regions:
        addresses = {
            a["AllocationId"]: a for a in aws("ec2", region).describe_addresses()["Addresses"]
        }
        assert set(addresses) == world.ids(kind="elastic-ip", region=region)
        for allocation in world.ids(kind="elastic-ip", region=region, category="unassociated"):
            assert "AssociationId" not in addresses[allocation]
        (associated,) = world.ids(kind="elastic-ip", region=region, category="associated")
        assert addresses[associated]["InstanceId"].startswith("i-")
        (protected,) = world.ids(kind="elastic-ip", region=region, category="protected")
        assert {"Key": "do-not-delete", "Value": "true"} in addresses[protected]["Tags"]
        assert "AssociationId" not in addresses[protected]
        # The compute seeds' addresses: a stopped instance's, and one per NAT gateway.
        (parked,) = world.ids(kind="ec2-stopped-instance", region=region, verdict=Verdict.WASTE)
        (on_parked,) = world.ids(kind="elastic-ip", region=region, category="stopped-instance")
        assert addresses[on_parked]["InstanceId"] == parked
        gateways = aws("ec2", region).describe_nat_gateways()["NatGateways"]
        interfaces = {
            a["AllocationId"]: a["NetworkInterfaceId"]
            for g in gateways
            for a in g["NatGatewayAddresses"]
        }
        assert world.ids(kind="elastic-ip", region=region, category="nat-gateway") == set(
            interfaces
        )
        for allocation, interface in interfaces.items():
            assert addresses[allocation]["AssociationId"]
            assert addresses[allocation]["NetworkInterfaceId"] == interface


def test_load_balancers_are_idle_or_serving(world: demo_world.DemoWorld, aws: Clients) -> None:
    for region in world.regions:
        elbv2 = aws("elbv2", region)
        balancers = {
            b["LoadBalancerArn"]: b for b in elbv2.describe_load_balancers()["LoadBalancers"]
        }
        assert set(balancers) == world.ids(kind="load-balancer", region=region)

        def groups_of(arn: str, elbv2: Any = elbv2) -> list[Any]:
            # moto answers TargetGroupNotFound for a balancer without target groups, where AWS
            # answers an empty list; both mean "none".
            try:
                return list(elbv2.describe_target_groups(LoadBalancerArn=arn)["TargetGroups"])
            except elbv2.exceptions.TargetGroupNotFoundException:
                return []

        def registered(arn: str, elbv2: Any = elbv2) -> list[str]:
            groups = groups_of(arn, elbv2)
            return [
                d["Target"]["Id"]
                for g in groups
                for d in elbv2.describe_target_health(TargetGroupArn=g["TargetGroupArn"])[
                    "TargetHealthDescriptions"
                ]
            ]

        (idle,) = world.ids(kind="load-balancer", region=region, category="no-targets")
        assert balancers[idle]["Type"] == "application"
        assert groups_of(idle)
        assert registered(idle) == []
        (busy,) = world.ids(kind="load-balancer", region=region, category="serving")
        assert len(registered(busy)) == 1
        (nlb,) = world.ids(kind="load-balancer", region=region, category="no-target-groups")
        assert balancers[nlb]["Type"] == "network"
        assert groups_of(nlb) == []

        classic = {
            d["LoadBalancerName"]: d
            for d in aws("elb", region).describe_load_balancers()["LoadBalancerDescriptions"]
        }
        assert set(classic) == world.ids(kind="classic-load-balancer", region=region)
        (empty,) = world.ids(kind="classic-load-balancer", region=region, category="no-instances")
        assert classic[empty]["Instances"] == []
        (serving,) = world.ids(kind="classic-load-balancer", region=region, category="serving")
        assert len(classic[serving]["Instances"]) == 1


def test_databases_are_stopped_idle_or_busy(world: demo_world.DemoWorld, aws: Clients) -> None:
    for region in world.regions:
        instances = {
            d["DBInstanceIdentifier"]: d
            for d in aws("rds", region).describe_db_instances()["DBInstances"]
        }
        assert set(instances) == world.ids(kind="rds-instance", region=region)
        (stopped,) = world.ids(kind="rds-instance", region=region, category="stopped")
        assert instances[stopped]["DBInstanceStatus"] == "stopped"
        cloudwatch = aws("cloudwatch", region)
        for category, busy in (("idle", False), ("busy", True)):
            (identifier,) = world.ids(kind="rds-instance", region=region, category=category)
            assert instances[identifier]["DBInstanceStatus"] == "available"
            points = cloudwatch.get_metric_statistics(
                Namespace="AWS/RDS",
                MetricName="DatabaseConnections",
                Dimensions=[{"Name": "DBInstanceIdentifier", "Value": identifier}],
                StartTime=NOW - timedelta(days=14),
                EndTime=NOW,
                Period=86400,
                Statistics=["Maximum"],
            )["Datapoints"]
            assert len(points) >= 13
            assert (max(p["Maximum"] for p in points) > 0) is busy


def _daily_peak(
    cloudwatch: Any, namespace: str, metric: str, dimension: str, value: str
) -> list[float]:
    points = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": dimension, "Value": value}],
        StartTime=NOW - timedelta(days=14),
        EndTime=NOW,
        Period=86400,
        Statistics=["Maximum"],
    )["Datapoints"]
    return [p["Maximum"] for p in points]


def test_compute_seeds_are_as_declared(world: demo_world.DemoWorld, aws: Clients) -> None:
    for region in world.regions:
        ec2, cloudwatch = aws("ec2", region), aws("cloudwatch", region)
        instances = {
            i["InstanceId"]: i
            for r in ec2.describe_instances()["Reservations"]
            for i in r["Instances"]
        }
        running = world.ids(kind="ec2-instance", region=region)
        stopped = world.ids(kind="ec2-stopped-instance", region=region)
        assert set(instances) == running | stopped
        # Every instance runs core's AMI: no base image (and snapshot) only to launch from.
        (base_image,) = world.ids(kind="ami", region=region, category="registered")
        assert {i["ImageId"] for i in instances.values()} == {base_image}
        assert {instances[i]["State"]["Name"] for i in running} == {"running"}
        assert {instances[i]["State"]["Name"] for i in stopped} == {"stopped"}

        # Every attached volume is on record: root volumes and data volumes as in use, the
        # attached gp2 and io1 volumes as gp3 candidates.
        attached = {
            r.resource_id: r.attributes["attached_to"]
            for r in world.select(kind="ebs-volume", region=region, category="attached")
            + world.select(kind="ebs-gp3-candidate", region=region)
        }
        for instance_id, instance in instances.items():
            for mapping in instance["BlockDeviceMappings"]:
                assert attached[mapping["Ebs"]["VolumeId"]] == instance_id

        for record in world.select(kind="ec2-instance", region=region):
            instance = instances[record.resource_id]
            tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
            assert ("aws:autoscaling:groupName" in tags) == (record.category == "idle-in-asg")
            cpu = _daily_peak(
                cloudwatch, "AWS/EC2", "CPUUtilization", "InstanceId", instance["InstanceId"]
            )
            assert len(cpu) >= 13, record.name
            if record.category == "running":  # core's, busy: traffic from seed_region_usage
                assert min(cpu) > 5
            else:
                assert max(cpu) <= 5
                assert instance["LaunchTime"] == record.created_at
                assert NOW - record.created_at > timedelta(days=30)
        for record, days in (
            (
                world.select(
                    kind="ec2-stopped-instance", region=region, category="stopped-90-days"
                ),
                90,
            ),
            (
                world.select(kind="ec2-stopped-instance", region=region, category="stopped-3-days"),
                3,
            ),
        ):
            (seeded,) = record
            reason = instances[seeded.resource_id]["StateTransitionReason"]
            assert f"({NOW - timedelta(days=days):%Y-%m-%d %H:%M:%S} GMT)" in reason

        gateways = {g["NatGatewayId"]: g for g in ec2.describe_nat_gateways()["NatGateways"]}
        assert set(gateways) == world.ids(kind="nat-gateway", region=region)
        routed: dict[str, int] = {}
        for table in ec2.describe_route_tables()["RouteTables"]:
            for route in table["Routes"]:
                if route.get("NatGatewayId"):
                    routed[route["NatGatewayId"]] = routed.get(route["NatGatewayId"], 0) + 1
        for record in world.select(kind="nat-gateway", region=region):
            nat_id = record.resource_id
            assert gateways[nat_id]["State"] == "available"
            assert gateways[nat_id]["CreateTime"] == record.created_at
            assert routed.get(nat_id, 0) == (0 if record.category == "unrouted" else 1)
            traffic = _daily_peak(
                cloudwatch, "AWS/NATGateway", "BytesInFromSource", "NatGatewayId", nat_id
            )
            expected = {"idle": (14, 0.0), "unrouted": (0, None), "busy": (14, 3e9)}
            days, peak = expected[record.category]
            assert len(traffic) >= days - 1 and len(traffic) <= days, record.category
            assert (max(traffic) if traffic else None) == peak, record.category


def test_only_the_declared_account_is_touched(
    moto_endpoint: str, world: demo_world.DemoWorld
) -> None:
    default = {
        "endpoint_url": moto_endpoint,
        "aws_access_key_id": emulator.ACCESS_KEY_ID,
        "aws_secret_access_key": emulator.SECRET_ACCESS_KEY,
    }
    other = Clients(moto_endpoint, OTHER_ACCOUNT)
    for region in world.regions:
        for ec2 in (boto3.client("ec2", region_name=region, **default), other("ec2", region)):
            assert ec2.describe_volumes()["Volumes"] == []
            assert ec2.describe_addresses()["Addresses"] == []
            assert ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
        rds = other("rds", region)
        assert rds.describe_db_instances()["DBInstances"] == []
        assert other("elbv2", region).describe_load_balancers()["LoadBalancers"] == []
    assert world.select(region="us-west-2") == ()


def test_seeding_the_default_account_and_custom_regions(moto_endpoint: str) -> None:
    world = demo_world.seed_demo_world(
        moto_endpoint, regions=("us-west-2", "ap-southeast-2", "eu-central-1")
    )
    assert world.account_id == "123456789012"
    assert {r.region for r in world.resources} == {"us-west-2", "ap-southeast-2", "eu-central-1"}
    aws = Clients(moto_endpoint, "123456789012")
    assert len(aws("ec2", "ap-southeast-2").describe_volumes()["Volumes"]) == len(
        world.ids(kind="ebs-volume", region="ap-southeast-2")
        | world.ids(kind="ebs-gp3-candidate", region="ap-southeast-2")
    )
    # A second seeding of the same account (here: a bulk world) reuses the roles.
    summary = demo_world.seed_bulk_world(moto_endpoint, resources=30, regions=("us-west-2",))
    assert summary.total == 30


@pytest.mark.parametrize("resources", [300, 7])
def test_bulk_world_has_the_counts_it_claims(moto_endpoint: str, resources: int) -> None:
    summary = demo_world.seed_bulk_world(moto_endpoint, resources=resources, account_id=ACCOUNT)
    assert summary.total == resources
    assert summary.regions == ("us-east-1", "us-west-2", "eu-west-1")
    assert summary.backdated
    aws = Clients(moto_endpoint, ACCOUNT)
    for region in summary.regions:
        ec2 = aws("ec2", region)
        volumes = ec2.describe_volumes()["Volumes"]
        snapshots = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
        addresses = ec2.describe_addresses()["Addresses"]
        images = ec2.describe_images(Owners=["self"])["Images"]
        running = [
            i
            for r in ec2.describe_instances(
                Filters=[{"Name": "instance-state-name", "Values": ["running", "pending"]}]
            )["Reservations"]
            for i in r["Instances"]
        ]
        actual = {
            "ebs-volume": len(volumes),
            "ebs-snapshot": len(snapshots),
            "elastic-ip": len(addresses),
            "ami": len(images),
            "ec2-instance": len(running),
        }
        claimed = {kind: summary.counts.get((region, kind), 0) for kind in actual}
        assert claimed == actual, region

        volume_ids = {v["VolumeId"] for v in volumes}
        ami_snapshots = {m["Ebs"]["SnapshotId"] for i in images for m in i["BlockDeviceMappings"]}
        waste = {
            "ebs-volume": sum(1 for v in volumes if v["State"] == "available"),
            "ebs-snapshot": sum(
                1
                for s in snapshots
                if s["VolumeId"] not in volume_ids and s["SnapshotId"] not in ami_snapshots
            ),
            "elastic-ip": sum(1 for a in addresses if "AssociationId" not in a),
        }
        assert waste == {kind: summary.waste.get((region, kind), 0) for kind in waste}, region
        if resources >= 100:
            assert all(n > 0 for n in actual.values())
            assert all(n > 0 for n in waste.values())
            # Ages are spread back in time, so minimum-age rules still find waste.
            oldest = min(v["CreateTime"] for v in volumes if v["State"] == "available")
            assert datetime.now(UTC) - oldest > timedelta(days=100)

    assert summary.count("ebs-volume") == sum(
        summary.count("ebs-volume", region) for region in summary.regions
    )


def test_minimum_list_calls_pages_each_listing_in_each_region(moto_endpoint: str) -> None:
    summary = demo_world.seed_bulk_world(
        moto_endpoint, resources=300, regions=("us-east-1", "eu-west-1")
    )
    sizes: dict[str, int | None] = {"ebs-volume": 10, "elastic-ip": None, "rds-instance": 100}
    expected = sum(
        math.ceil(summary.counts[(region, "ebs-volume")] / 10) + 1 + 1 for region in summary.regions
    )
    assert summary.minimum_list_calls(sizes) == expected
    # With AWS's largest pages, every listing of a 300-resource world fits in one call.
    assert summary.minimum_list_calls() == len(summary.regions) * len(demo_world.MAX_PAGE_SIZES)
    assert summary.api_calls < summary.total  # batched, not one call per resource


def test_bulk_world_refuses_a_negative_size(moto_endpoint: str) -> None:
    with pytest.raises(ValueError, match="zero or more"):
        demo_world.seed_bulk_world(moto_endpoint, resources=-1)


def test_log_groups_and_buckets_are_seeded_where_their_storage_is_priced(
    world: demo_world.DemoWorld,
) -> None:
    from cloudsweep.pricing import load_catalog

    catalog = load_catalog()
    for kind, categories, price in (
        (
            "cloudwatch-log-group",
            {"never-expires", "has-retention", "protected"},
            catalog.cloudwatch_logs_storage_monthly,
        ),
        (
            "s3-incomplete-multipart",
            {"no-lifecycle", "lifecycle-without-abort", "abort-rule"},
            catalog.s3_standard_storage_monthly,
        ),
    ):
        for region in world.regions:
            try:
                price(region, 1024**3)
            except LookupError:
                assert not world.select(kind=kind, region=region)
            else:
                assert {r.category for r in world.select(kind=kind, region=region)} == categories
    assert world.select(kind="cloudwatch-log-group", region="us-east-1")


def test_storage_seeds_are_as_declared(world: demo_world.DemoWorld, moto_endpoint: str) -> None:
    from cloudsweep.demo.seeding import Account

    account = Account(moto_endpoint, ACCOUNT)
    for region in world.regions:
        ec2 = account.ec2(region)
        for seeded in world.select(kind="ebs-gp3-candidate", region=region):
            (volume,) = ec2.describe_volumes(VolumeIds=[seeded.resource_id])["Volumes"]
            assert volume["State"] == "in-use"
            assert volume["VolumeType"] == seeded.attributes["volume_type"]
        groups = {
            g["logGroupName"]: g for g in account.logs(region).describe_log_groups()["logGroups"]
        }
        for seeded in world.select(kind="cloudwatch-log-group", region=region):
            group = groups[seeded.resource_id]
            assert group["storedBytes"] == int(seeded.attributes["stored_gib"]) * 1024**3
            assert ("retentionInDays" in group) == (seeded.category == "has-retention")
        s3 = account.s3(region)
        for seeded in world.select(kind="s3-incomplete-multipart", region=region):
            uploads = s3.list_multipart_uploads(Bucket=seeded.resource_id)["Uploads"]
            parts = sum(
                p["Size"]
                for u in uploads
                for p in s3.list_parts(
                    Bucket=seeded.resource_id, Key=u["Key"], UploadId=u["UploadId"]
                )["Parts"]
            )
            assert parts == int(seeded.attributes["parts_gib"]) * 1024**3
