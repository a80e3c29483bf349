"""One small world per registered cleanup action, so the crash, database-restart, two-worker and
dry-run scenarios walk the action registry instead of naming two actions.

``WORLDS`` maps each ``(resource_type, action)`` of ``cloudsweep.cleanup`` to an
:class:`ActionWorld`: how to seed eligible waste of that type in a moto account (through a role
assumed in it, so moto files it under the account), which scan finds it, which policy acts on it,
which AWS operation is the destructive effect and which request parameter names its target, and
how to read from moto which seeded resources still await that effect. A contract test
(``test_registry_walk``) fails when an action is registered without a world here: an action added
later is covered by every scenario as soon as its world is written.

:class:`ActionHooks` fires a fault at a step of the first item's cleanup with the same step names
for every action (``GENERIC_STEPS``), from botocore events of the cleanup session.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudsweep import aws, cleanup, scanning
from cloudsweep.settings import Settings
from cloudsweep.store import AccountRecord, Store

from . import helpers

# The tag snapshot-and-terminate puts on its AMI (read from moto, not imported from the action).
SOURCE_INSTANCE_TAG = "cloudsweep.io/source-instance"

# The scan looks at the world long after it was made: nothing is "too recent", history is full.
LATER = timedelta(days=120)

# Steps common to every action. ``after-intent``: the first AWS call of the cleanup session after
# the claim committed the intent (the re-check's first read); ``before-delete`` / ``after-delete``:
# the destructive operation's ``before-call`` (not DryRun) / successful ``after-call``;
# ``before-outcome``: the SQL UPDATE that records ``succeeded`` (see ``helpers.StepHooks``).
GENERIC_STEPS = ("after-intent", "before-delete", "after-delete", "before-outcome")


@dataclass(frozen=True)
class ActionWorld:
    resource_type: str
    action: str
    service: str  # botocore's event name of the service (elbv2: "elastic-load-balancing-v2")
    operation: str  # the destructive operation
    target_param: str  # the request parameter naming the target
    seed: Callable[[str, str], tuple[str, ...]]  # (endpoint, account) -> eligible resource IDs
    awaiting: Callable[[str, str], set[str]]  # resource IDs that do not have the effect yet
    policy: Mapping[str, Any]
    scan_parameters: Mapping[str, Any] = field(default_factory=dict)
    # Scan ``LATER`` (old enough, full metric history); not for types aged from first sight.
    scan_later: bool = True
    # The call that undoes the effect (``cloudsweep rollback``); None where there is no undo.
    restore_operation: str | None = None
    # A state change AWS accepts or refuses harmlessly when already done (StartDBInstance): a
    # resumed rollback may send it again. Calls that create something must be sent once.
    restore_repeatable: bool = False
    # Cleans what moto, unlike AWS, leaves in the way of a rollback (see the world).
    before_rollback: Callable[[str, str], None] | None = None
    # The source resource ID of every undo copy the action made in AWS (an AMI, a snapshot):
    # each eligible resource must have exactly one, however often the action was interrupted.
    copies: Callable[[str, str], list[str]] | None = None
    # How long after the cleanup the rollback runs (its clock, ``CleanupOptions.now``): past a
    # cooldown AWS imposes between the effect and its undo.
    rollback_later: timedelta = timedelta(0)

    @property
    def key(self) -> tuple[str, str]:
        return (self.resource_type, self.action)

    @property
    def id(self) -> str:
        return f"{self.resource_type}/{self.action}"

    def document(self, **overrides: Any) -> dict[str, Any]:
        return {**self.policy, **overrides}

    def resource_id(self, target: str) -> str:
        """The finding's resource ID for a request's target value."""
        if self.target_param == "LoadBalancerArn":
            return target.split(":loadbalancer/", 1)[-1]
        return target


def _policy(name: str, resource_type: str, action: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "resourceType": resource_type,
        "action": action,
        "rules": {"minAgeDays": 0, "minConfidence": 50, "maxRiskLevel": "medium"},
        "requireApprovalAbove": "10000.00",
        "maxItemsPerRun": 50,
        "maxCostPerRun": "100000.00",
        "dryRun": False,
        **extra,
    }


_FAST = {"wait_delay_seconds": 0.2, "wait_max_attempts": 20}


# --- EC2: volumes, addresses, snapshots -----------------------------------------------------


def _seed_volumes(endpoint: str, account: str) -> tuple[str, ...]:
    world = helpers.seed_small_world(endpoint, account, volumes=2, addresses=0, protected=False)
    return world.volumes


def _seed_addresses(endpoint: str, account: str) -> tuple[str, ...]:
    world = helpers.seed_small_world(endpoint, account, volumes=0, addresses=2, protected=False)
    return world.addresses


def _volume_snapshots(endpoint: str, account: str) -> list[str]:
    """The source volume of every snapshot snapshot-and-delete took (by its tag)."""
    ec2 = helpers.account_client(endpoint, account, "ec2")
    return [
        tag["Value"]
        for snapshot in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
        for tag in snapshot.get("Tags", [])
        if tag["Key"] == helpers.SOURCE_VOLUME_TAG
    ]


def _volumes(endpoint: str, account: str) -> set[str]:
    ec2 = helpers.account_client(endpoint, account, "ec2")
    return {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}


def _addresses(endpoint: str, account: str) -> set[str]:
    ec2 = helpers.account_client(endpoint, account, "ec2")
    return {a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]}


def _seed_snapshots(endpoint: str, account: str) -> tuple[str, ...]:
    """Two orphaned snapshots (their volumes deleted): what the ebs-snapshot detector reports."""
    ec2 = helpers.account_client(endpoint, account, "ec2")
    made = []
    for index in range(2):
        volume = ec2.create_volume(AvailabilityZone=f"{helpers.REGION}a", Size=20)["VolumeId"]
        spec = [{"ResourceType": "snapshot", "Tags": [{"Key": "Name", "Value": f"old-{index}"}]}]
        made.append(
            ec2.create_snapshot(VolumeId=volume, Description="old", TagSpecifications=spec)[
                "SnapshotId"
            ]
        )
        ec2.delete_volume(VolumeId=volume)
    return tuple(made)


def _snapshots(endpoint: str, account: str) -> set[str]:
    ec2 = helpers.account_client(endpoint, account, "ec2")
    return {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def _standard_snapshots(endpoint: str, account: str) -> set[str]:
    ec2 = helpers.account_client(endpoint, account, "ec2")
    return {
        s["SnapshotId"]
        for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
        if s.get("StorageTier", "standard") != "archive"
    }


# --- load balancers ---------------------------------------------------------------------------


def _seed_load_balancers(endpoint: str, account: str) -> tuple[str, ...]:
    """Two application load balancers with no target group: idle, low risk."""
    ec2 = helpers.account_client(endpoint, account, "ec2")
    elbv2 = helpers.account_client(endpoint, account, "elbv2")
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    made = []
    for index in range(2):
        lb = elbv2.create_load_balancer(
            Name=f"idle-{index}", Subnets=subnets, Tags=[{"Key": "team", "Value": "web"}]
        )["LoadBalancers"][0]
        made.append(lb["LoadBalancerArn"].split(":loadbalancer/", 1)[1])
    return tuple(made)


def _load_balancers(endpoint: str, account: str) -> set[str]:
    elbv2 = helpers.account_client(endpoint, account, "elbv2")
    return {
        lb["LoadBalancerArn"].split(":loadbalancer/", 1)[1]
        for lb in elbv2.describe_load_balancers()["LoadBalancers"]
    }


# --- RDS ------------------------------------------------------------------------------------


def _create_db(endpoint: str, account: str, identifier: str) -> None:
    rds = helpers.account_client(endpoint, account, "rds")
    rds.create_db_instance(
        DBInstanceIdentifier=identifier,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="cloudsweep",
        MasterUserPassword="not-a-real-password",
        BackupRetentionPeriod=0,
        Tags=[{"Key": "team", "Value": "data"}],
    )


def _seed_idle_databases(endpoint: str, account: str) -> tuple[str, ...]:
    """Two available instances whose DatabaseConnections were 0 every day of the look-back window
    (as the scan, 120 days later, reads it): idle, confidence 85."""
    cloudwatch = helpers.account_client(endpoint, account, "cloudwatch")
    made = []
    later = datetime.now(UTC) + LATER
    for index in range(2):
        identifier = f"idle-db-{index}"
        _create_db(endpoint, account, identifier)
        cloudwatch.put_metric_data(
            Namespace="AWS/RDS",
            MetricData=[
                {
                    "MetricName": "DatabaseConnections",
                    "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": identifier}],
                    "Timestamp": later - timedelta(days=day, hours=1),
                    "Value": 0.0,
                }
                for day in range(1, 4)
            ],
        )
        made.append(identifier)
    return tuple(made)


def _seed_stopped_databases(endpoint: str, account: str) -> tuple[str, ...]:
    rds = helpers.account_client(endpoint, account, "rds")
    made = []
    for index in range(2):
        identifier = f"stopped-db-{index}"
        _create_db(endpoint, account, identifier)
        rds.stop_db_instance(DBInstanceIdentifier=identifier)
        made.append(identifier)
    return tuple(made)


def _databases(endpoint: str, account: str, status: str | None = None) -> set[str]:
    rds = helpers.account_client(endpoint, account, "rds")
    return {
        db["DBInstanceIdentifier"]
        for db in rds.describe_db_instances()["DBInstances"]
        if status is None or db["DBInstanceStatus"] == status
    }


def _drop_automated_db_snapshots(endpoint: str, account: str) -> None:
    """moto names automated snapshots by the minute and keeps them after a delete, so a restore
    under the same identifier within that minute collides with them (AWS names them otherwise);
    ``tests/cleanup/test_rds_instance.py`` does the same."""
    rds = helpers.account_client(endpoint, account, "rds")
    for snap in rds.describe_db_snapshots(SnapshotType="automated")["DBSnapshots"]:
        rds.delete_db_snapshot(DBSnapshotIdentifier=snap["DBSnapshotIdentifier"])


# --- EC2 instances (issue 15) ------------------------------------------------------------------


def _ec2_usage(endpoint: str, account: str, instance_id: str, cpu: float) -> None:
    """14 days of hourly-stamped daily CPU and network datapoints, as the scan (``LATER``) reads
    them: what the ec2-instance detector needs for a confident "idle" (confidence 85)."""
    cloudwatch = helpers.account_client(endpoint, account, "cloudwatch")
    later = datetime.now(UTC) + LATER
    dims = [{"Name": "InstanceId", "Value": instance_id}]
    cloudwatch.put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": dims,
                "Timestamp": later - timedelta(days=day, hours=2),
                "Value": cpu if metric == "CPUUtilization" else 1000.0,
            }
            for day in range(14)
            for metric in ("CPUUtilization", "NetworkIn", "NetworkOut")
        ],
    )


def _run_instance(endpoint: str, account: str, name: str) -> str:
    ec2 = helpers.account_client(endpoint, account, "ec2")
    spec = [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}]
    return str(
        ec2.run_instances(
            ImageId="ami-12345678",
            MinCount=1,
            MaxCount=1,
            InstanceType="t3.micro",
            Placement={"AvailabilityZone": f"{helpers.REGION}a"},
            TagSpecifications=spec,
        )["Instances"][0]["InstanceId"]
    )


def _seed_idle_instances(endpoint: str, account: str) -> tuple[str, ...]:
    """Two running instances at 1.5% CPU and 1 kB of network a day for 14 days: idle."""
    made = []
    for index in range(2):
        instance_id = _run_instance(endpoint, account, f"idle-{index}")
        _ec2_usage(endpoint, account, instance_id, cpu=1.5)
        made.append(instance_id)
    return tuple(made)


def _seed_stopped_instances(endpoint: str, account: str) -> tuple[str, ...]:
    """Two stopped instances; moto writes the stop time into ``StateTransitionReason``, which the
    scan (``LATER``) reads as 120 days ago."""
    ec2 = helpers.account_client(endpoint, account, "ec2")
    made = tuple(_run_instance(endpoint, account, f"stopped-{index}") for index in range(2))
    ec2.stop_instances(InstanceIds=list(made))
    return made


def _instance_images(endpoint: str, account: str) -> list[str]:
    """The source instance of every AMI snapshot-and-terminate made (by its tag)."""
    ec2 = helpers.account_client(endpoint, account, "ec2")
    return [
        tag["Value"]
        for image in ec2.describe_images(Owners=["self"])["Images"]
        for tag in image.get("Tags", [])
        if tag["Key"] == SOURCE_INSTANCE_TAG
    ]


def _instances(endpoint: str, account: str, state: str) -> set[str]:
    ec2 = helpers.account_client(endpoint, account, "ec2")
    found = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": [state]}])
    return {i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]}


# --- NAT gateways -----------------------------------------------------------------------------


def _put_nat_bytes(endpoint: str, account: str, nat_id: str, per_day: float) -> None:
    cloudwatch = helpers.account_client(endpoint, account, "cloudwatch")
    later = datetime.now(UTC) + LATER
    cloudwatch.put_metric_data(
        Namespace="AWS/NATGateway",
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [{"Name": "NatGatewayId", "Value": nat_id}],
                "Timestamp": later - timedelta(days=day, hours=3),
                "Value": per_day,
            }
            for day in range(14)
            for metric in ("BytesInFromSource", "BytesInFromDestination")
        ],
    )


def _make_nat(endpoint: str, account: str, name: str) -> str:
    """A NAT gateway on its own Elastic IP in a fresh VPC, with a route table sending 0.0.0.0/0
    to it (so the rollback has a route to point at the new gateway)."""
    ec2 = helpers.account_client(endpoint, account, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    spec = [{"ResourceType": "natgateway", "Tags": [{"Key": "Name", "Value": name}]}]
    nat = str(
        ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation, TagSpecifications=spec)[
            "NatGateway"
        ]["NatGatewayId"]
    )
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    return nat


def _seed_nat_gateways(endpoint: str, account: str) -> tuple[str, ...]:
    """Two routed NAT gateways that carried 0 bytes a day for 14 days (idle, confidence 85), and
    a busy one (2 MB a day, not reported) that nothing may touch, a rollback included."""
    made = []
    for index in range(2):
        nat = _make_nat(endpoint, account, f"idle-nat-{index}")
        _put_nat_bytes(endpoint, account, nat, 0.0)
        made.append(nat)
    busy = _make_nat(endpoint, account, "busy-nat")
    _put_nat_bytes(endpoint, account, busy, 2_000_000.0)
    return tuple(made)


def _free_deleted_nat_addresses(endpoint: str, account: str) -> None:
    """AWS frees a deleted NAT gateway's Elastic IP; moto keeps it associated, so a rollback on
    the same allocation would be refused (``Resource.AlreadyAssociated``). Freed here as AWS
    does (``tests/cleanup/test_nat_gateway.py`` does the same)."""
    ec2 = helpers.account_client(endpoint, account, "ec2")
    deleted = {
        a["AllocationId"]
        for n in ec2.describe_nat_gateways()["NatGateways"]
        if n["State"] == "deleted"
        for a in n.get("NatGatewayAddresses", [])
        if a.get("AllocationId")
    }
    for address in ec2.describe_addresses()["Addresses"]:
        if address["AllocationId"] in deleted and address.get("AssociationId"):
            ec2.disassociate_address(AssociationId=address["AssociationId"])


def _nat_gateways(endpoint: str, account: str) -> set[str]:
    ec2 = helpers.account_client(endpoint, account, "ec2")
    return {
        n["NatGatewayId"]
        for n in ec2.describe_nat_gateways()["NatGateways"]
        if n["State"] in ("pending", "available")
    }


# --- gp2 volumes that should be gp3 -------------------------------------------------------------


def _seed_gp2_volumes(endpoint: str, account: str) -> tuple[str, ...]:
    """Two running instances: their root volumes (moto: 8 GiB gp2, attached) are the candidates
    (an attached volume is the only kind the ebs-gp3-candidate detector reports)."""
    ec2 = helpers.account_client(endpoint, account, "ec2")
    made = []
    for index in range(2):
        instance_id = _run_instance(endpoint, account, f"gp2-host-{index}")
        [instance] = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
            "Instances"
        ]
        made += [m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"] if "Ebs" in m]
    return tuple(made)


def _gp2_volumes(endpoint: str, account: str) -> set[str]:
    ec2 = helpers.account_client(endpoint, account, "ec2")
    found = ec2.describe_volumes(Filters=[{"Name": "volume-type", "Values": ["gp2"]}])
    return {v["VolumeId"] for v in found["Volumes"]}


# --- AMIs ---------------------------------------------------------------------------------------


def _seed_images(endpoint: str, account: str) -> tuple[str, ...]:
    """Two registered images (moto gives each a snapshot) used by nothing; old at ``LATER``."""
    ec2 = helpers.account_client(endpoint, account, "ec2")
    stamp = datetime.now(UTC).strftime("%H%M%S%f")
    return tuple(
        str(ec2.register_image(Name=f"web-{stamp}-{index}", Architecture="x86_64")["ImageId"])
        for index in range(2)
    )


def _images(endpoint: str, account: str) -> set[str]:
    ec2 = helpers.account_client(endpoint, account, "ec2")
    return {
        i["ImageId"]
        for i in ec2.describe_images(Owners=["self"])["Images"]
        if i.get("State") in ("pending", "available")
    }


# --- CloudWatch Logs ----------------------------------------------------------------------------


def _seed_log_groups(endpoint: str, account: str) -> tuple[str, ...]:
    """Two log groups that never expire, holding 10 kB each."""
    logs = helpers.account_client(endpoint, account, "logs")
    stamp = datetime.now(UTC).strftime("%H%M%S%f")
    made = []
    for index in range(2):
        name = f"/app/orders-{stamp}-{index}"
        logs.create_log_group(logGroupName=name, tags={"team": "orders"})
        logs.create_log_stream(logGroupName=name, logStreamName="app")
        logs.put_log_events(
            logGroupName=name,
            logStreamName="app",
            logEvents=[{"timestamp": int(time.time() * 1000), "message": "x" * 10_000}],
        )
        made.append(name)
    return tuple(made)


def _log_groups_without_retention(endpoint: str, account: str) -> set[str]:
    logs = helpers.account_client(endpoint, account, "logs")
    return {
        g["logGroupName"]
        for page in logs.get_paginator("describe_log_groups").paginate()
        for g in page["logGroups"]
        if "retentionInDays" not in g
    }


# --- S3 multipart uploads -----------------------------------------------------------------------


def _seed_multipart_buckets(endpoint: str, account: str) -> tuple[str, ...]:
    """Two buckets, each with one pending multipart upload of one 5 MiB part and no lifecycle
    configuration (moto dates every upload 2010: old enough)."""
    s3 = helpers.account_client(endpoint, account, "s3")
    stamp = datetime.now(UTC).strftime("%H%M%S%f")
    made = []
    for index in range(2):
        bucket = f"uploads-{account}-{stamp}-{index}"
        s3.create_bucket(Bucket=bucket)
        upload = s3.create_multipart_upload(Bucket=bucket, Key="videos/a.mp4")["UploadId"]
        s3.upload_part(
            Bucket=bucket,
            Key="videos/a.mp4",
            UploadId=upload,
            PartNumber=1,
            Body=b"x" * (5 * 1024 * 1024),
        )
        made.append(bucket)
    return tuple(made)


def _buckets_without_abort_rule(endpoint: str, account: str) -> set[str]:
    """Buckets whose lifecycle configuration (as S3 returns it) aborts no incomplete upload."""
    s3 = helpers.account_client(endpoint, account, "s3")
    waiting = set()
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        try:
            rules = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
        except s3.exceptions.ClientError as error:
            if error.response["Error"]["Code"] != "NoSuchLifecycleConfiguration":
                raise
            rules = []
        if not any(r.get("AbortIncompleteMultipartUpload") for r in rules):
            waiting.add(name)
    return waiting


WORLDS: dict[tuple[str, str], ActionWorld] = {
    w.key: w
    for w in (
        ActionWorld(
            "ebs-volume",
            "snapshot-and-delete",
            "ec2",
            "DeleteVolume",
            "VolumeId",
            _seed_volumes,
            _volumes,
            _policy("volumes", "ebs-volume", "snapshot-and-delete", parameters=_FAST),
            {"min_age_days": 0},
            restore_operation="CreateVolume",
            copies=_volume_snapshots,
        ),
        ActionWorld(
            "elastic-ip",
            "release",
            "ec2",
            "ReleaseAddress",
            "AllocationId",
            _seed_addresses,
            _addresses,
            _policy("addresses", "elastic-ip", "release"),
            scan_later=False,
        ),
        ActionWorld(
            "ebs-snapshot",
            "delete",
            "ec2",
            "DeleteSnapshot",
            "SnapshotId",
            _seed_snapshots,
            _snapshots,
            _policy("snapshots", "ebs-snapshot", "delete"),
        ),
        ActionWorld(
            "ebs-snapshot",
            "archive",
            "ec2",
            "ModifySnapshotTier",
            "SnapshotId",
            _seed_snapshots,
            _standard_snapshots,
            _policy("archive-snapshots", "ebs-snapshot", "archive"),
            restore_operation="RestoreSnapshotTier",
        ),
        ActionWorld(
            "load-balancer",
            "delete",
            "elastic-load-balancing-v2",
            "DeleteLoadBalancer",
            "LoadBalancerArn",
            _seed_load_balancers,
            _load_balancers,
            _policy("balancers", "load-balancer", "delete"),
            restore_operation="CreateLoadBalancer",
        ),
        ActionWorld(
            "rds-instance",
            "stop",
            "rds",
            "StopDBInstance",
            "DBInstanceIdentifier",
            _seed_idle_databases,
            lambda e, a: _databases(e, a, "available"),
            _policy("stop-databases", "rds-instance", "stop"),
            restore_operation="StartDBInstance",
            restore_repeatable=True,
        ),
        ActionWorld(
            "rds-instance",
            "final-snapshot-and-delete",
            "rds",
            "DeleteDBInstance",
            "DBInstanceIdentifier",
            _seed_stopped_databases,
            _databases,
            _policy(
                "delete-databases", "rds-instance", "final-snapshot-and-delete", parameters=_FAST
            ),
            restore_operation="RestoreDBInstanceFromDBSnapshot",
            before_rollback=_drop_automated_db_snapshots,
        ),
        ActionWorld(
            "ec2-instance",
            "stop",
            "ec2",
            "StopInstances",
            "InstanceId.1",
            _seed_idle_instances,
            lambda e, a: _instances(e, a, "running"),
            _policy("stop-instances", "ec2-instance", "stop", parameters=_FAST),
            restore_operation="StartInstances",
            restore_repeatable=True,
        ),
        ActionWorld(
            "ec2-stopped-instance",
            "snapshot-and-terminate",
            "ec2",
            "TerminateInstances",
            "InstanceId.1",
            _seed_stopped_instances,
            lambda e, a: _instances(e, a, "stopped"),
            _policy(
                "terminate-instances",
                "ec2-stopped-instance",
                "snapshot-and-terminate",
                parameters=_FAST,
            ),
            restore_operation="RunInstances",
            copies=_instance_images,
        ),
        ActionWorld(
            "nat-gateway",
            "delete",
            "ec2",
            "DeleteNatGateway",
            "NatGatewayId",
            _seed_nat_gateways,
            _nat_gateways,
            _policy("nat-gateways", "nat-gateway", "delete", parameters=_FAST),
            restore_operation="CreateNatGateway",
            before_rollback=_free_deleted_nat_addresses,
        ),
        ActionWorld(
            "ebs-gp3-candidate",
            "modify-to-gp3",
            "ec2",
            "ModifyVolume",
            "VolumeId",
            _seed_gp2_volumes,
            _gp2_volumes,
            _policy("gp3", "ebs-gp3-candidate", "modify-to-gp3"),
            restore_operation="ModifyVolume",
            # Undone after AWS's six-hour cooldown between two modifications of a volume.
            rollback_later=timedelta(hours=7),
        ),
        ActionWorld(
            "ami",
            "deregister",
            "ec2",
            "DeregisterImage",
            "ImageId",
            _seed_images,
            _images,
            _policy("images", "ami", "deregister"),
            restore_operation="RegisterImage",
        ),
        ActionWorld(
            "cloudwatch-log-group",
            "set-retention",
            "logs",
            "PutRetentionPolicy",
            "logGroupName",
            _seed_log_groups,
            _log_groups_without_retention,
            _policy("log-retention", "cloudwatch-log-group", "set-retention"),
            restore_operation="DeleteRetentionPolicy",
            restore_repeatable=True,
        ),
        ActionWorld(
            "s3-incomplete-multipart",
            "add-abort-multipart-rule",
            "s3",
            "PutBucketLifecycleConfiguration",
            "Bucket",
            _seed_multipart_buckets,
            _buckets_without_abort_rule,
            _policy("abort-uploads", "s3-incomplete-multipart", "add-abort-multipart-rule"),
            restore_operation="DeleteBucketLifecycle",
            restore_repeatable=True,
        ),
    )
}


def registered() -> list[ActionWorld]:
    """The world of every registered action that has one. An action without a world is left out
    here (so collection never breaks) and named by ``test_registry_walk``, which then fails:
    every registered action must have a world."""
    return [WORLDS[cls.key()] for cls in cleanup.all_actions() if cls.key() in WORLDS]


def undoable() -> list[ActionWorld]:
    """The worlds of every registered action that ``cloudsweep rollback`` can undo."""
    return [w for w in registered() if cleanup.get(w.resource_type, w.action).rollback_possible]


def world_ids() -> list[str]:
    return [w.id for w in registered()]


def scan(
    store: Store,
    org_slug: str,
    world: ActionWorld,
    endpoint: str,
    account_id: str,
    settings: Settings,
    *,
    external_id: str | None = None,
) -> AccountRecord:
    """Register ``account_id`` in ``org_slug`` and scan it with the world's detector only."""
    org = store.ensure_organization(org_slug)
    record = store.register_account(
        org.id,
        account_id=account_id,
        role_arn=helpers.role_arn(account_id),
        external_id=external_id or f"ext-{account_id}",
        regions=[helpers.REGION],
    )
    outcome = scanning.run_scan(
        store,
        record,
        scanning.ScanOptions(
            detectors=[world.resource_type],
            parameters={world.resource_type: dict(world.scan_parameters)}
            if world.scan_parameters
            else {},
        ),
        settings=settings,
        now=lambda: datetime.now(UTC) + (LATER if world.scan_later else timedelta(0)),
    )
    assert outcome.scan.status == "completed", outcome.scan.error_message
    return record


# --- faults at a step, for every action -------------------------------------------------------


class ActionHooks(helpers.StepHooks):
    """``helpers.StepHooks`` with steps that exist for every action (``GENERIC_STEPS``)."""

    def __init__(self, world: ActionWorld, step: str, fault: Callable[[], None]) -> None:
        super().__init__(step, world.resource_type, fault)
        self.world = world
        self._first = threading.Event()

    def install_account(self, events: Any) -> None:
        world, step = self.world, self.step
        if step == "after-intent":

            def first_call(event_name: str = "", **_: Any) -> None:
                if not self._first.is_set():
                    self._first.set()
                    self._fire()

            events.register("before-call", first_call)
        elif step == "after-restore":
            # The undoing call took effect in AWS (its response is what gets lost).
            assert world.restore_operation is not None

            def restored(http_response: Any, **_: Any) -> None:
                if getattr(http_response, "status_code", 500) < 300:
                    self._fire()

            events.register(f"after-call.{world.service}.{world.restore_operation}", restored)
        elif step == "before-delete":

            def before(params: Any, **_: Any) -> None:
                # A query protocol's body is a dict here; JSON and REST bodies have no DryRun.
                body = params.get("body")
                if not (isinstance(body, dict) and body.get("DryRun") == "true"):
                    self._fire()

            events.register(f"before-call.{world.service}.{world.operation}", before)
        elif step == "after-delete":

            def after(http_response: Any, **_: Any) -> None:
                if getattr(http_response, "status_code", 500) < 300:
                    self._fire()

            events.register(f"after-call.{world.service}.{world.operation}", after)


def effects(world: ActionWorld, entries: Any) -> list[str]:
    """Resource IDs of the real (not DryRun) destructive sends in journal entries."""
    return [
        world.resource_id(e["params"][world.target_param])
        for e in entries
        if e["event"] == "send"
        and e["operation"] == world.operation
        and not e["dry_run"]
        and world.target_param in e["params"]
    ]


def restores(world: ActionWorld, entries: Any) -> int:
    """How many real sends of the world's undoing call the journal entries hold."""
    return sum(
        1
        for e in entries
        if e["event"] == "send" and e["operation"] == world.restore_operation and not e["dry_run"]
    )


def recorded_effects(world: ActionWorld, recorder: aws.CallRecorder) -> list[str]:
    return [
        world.resource_id(str(c.params[world.target_param]))
        for c in recorder.calls(operation=world.operation)
        if not c.params.get("DryRun") and world.target_param in c.params
    ]
