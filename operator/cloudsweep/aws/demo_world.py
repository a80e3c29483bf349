"""Seed an emulated AWS account with waste and non-waste, for the demo, the tests and the benchmark.

Called by the command line (``cloudsweep scan --demo`` seeds :func:`seed_demo_world` into a
:class:`cloudsweep.aws.emulator.LocalAws`), by the scan benchmark (``python -m bench scan`` seeds
:func:`seed_bulk_world`), and by detector tests, which compare findings with the
:class:`DemoWorld` they get back.

Everything is created through credentials of a role assumed in the declared account, as a real
account would be populated, so other accounts on the same server stay untouched.

Example::

    with emulator.LocalAws() as aws:
        world = seed_demo_world(aws.endpoint_url, account_id="123456789012")
        world.ids(kind="ebs-volume", verdict=Verdict.WASTE, region="eu-west-1")
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import boto3
import botocore.config
import botocore.exceptions

from cloudsweep.aws import emulator

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_elb import ElasticLoadBalancingClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_sts.type_defs import CredentialsTypeDef

DEFAULT_ACCOUNT_ID: Final = "123456789012"
DEMO_REGIONS: Final = ("us-east-1", "eu-west-1")
BULK_REGIONS: Final = ("us-east-1", "us-west-2", "eu-west-1")

SEEDER_ROLE_NAME: Final = "cloudsweep-demo-seeder"
# The role a demo scan assumes, as an AwsAccount would name it.
SCANNER_ROLE_NAME: Final = "CloudSweepScanner"
DEMO_EXTERNAL_ID: Final = "cloudsweep-demo"

PROTECT_TAG: Final = "cloudsweep.io/protect"

# The largest page each listing accepts in AWS; None = the API does not page (one call lists all).
MAX_PAGE_SIZES: Final[Mapping[str, int | None]] = {
    "ebs-volume": 500,  # DescribeVolumes MaxResults
    "ebs-snapshot": 1000,  # DescribeSnapshots MaxResults
    "elastic-ip": None,  # DescribeAddresses
    "ami": 1000,  # DescribeImages MaxResults (needed to tell AMI-referenced snapshots)
}


class Verdict(enum.StrEnum):
    """What a correct scan concludes about a seeded resource."""

    WASTE = "waste"
    IN_USE = "in-use"
    PROTECTED = "protected"  # waste-shaped, but tagged so that nothing may remove it
    TOO_RECENT = "too-recent"  # waste-shaped, but created hours ago: may still be in set-up


@dataclass(frozen=True)
class SeededResource:
    """One resource the seeder created, and what a scan should make of it.

    ``resource_id`` is the AWS identifier: volume, snapshot, AMI and instance IDs, the allocation
    ID of an Elastic IP, the ARN of an ELBv2 load balancer, the name of a classic load balancer,
    the identifier of a DB instance.
    """

    region: str
    kind: str  # ebs-volume, ebs-snapshot, elastic-ip, load-balancer, classic-load-balancer, ...
    resource_id: str
    name: str
    category: str  # why it has its verdict: unattached, ami-referenced, no-targets, stopped, ...
    verdict: Verdict
    created_at: datetime
    tags: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoWorld:
    """The seeded demo account: every resource with its expected verdict."""

    endpoint_url: str
    account_id: str
    regions: tuple[str, ...]
    now: datetime
    scanner_role_arn: str
    external_id: str
    # False when the server runs in another process: creation times are then all "now".
    backdated: bool
    resources: tuple[SeededResource, ...]
    seconds: float
    api_calls: int

    def select(
        self,
        *,
        kind: str | None = None,
        region: str | None = None,
        verdict: Verdict | None = None,
        category: str | None = None,
    ) -> tuple[SeededResource, ...]:
        return tuple(
            r
            for r in self.resources
            if (kind is None or r.kind == kind)
            and (region is None or r.region == region)
            and (verdict is None or r.verdict == verdict)
            and (category is None or r.category == category)
        )

    def ids(
        self,
        *,
        kind: str | None = None,
        region: str | None = None,
        verdict: Verdict | None = None,
        category: str | None = None,
    ) -> frozenset[str]:
        selected = self.select(kind=kind, region=region, verdict=verdict, category=category)
        return frozenset(r.resource_id for r in selected)

    def categories(self, kind: str) -> dict[str, frozenset[str]]:
        """Resource IDs of one kind by category, e.g. ``{"unattached": {...}, "attached": ...}``."""
        result: dict[str, set[str]] = {}
        for r in self.select(kind=kind):
            result.setdefault(r.category, set()).add(r.resource_id)
        return {category: frozenset(ids) for category, ids in result.items()}


@dataclass(frozen=True)
class WorldSummary:
    """What :func:`seed_bulk_world` created: counts per (region, kind), and how long it took."""

    endpoint_url: str
    account_id: str
    regions: tuple[str, ...]
    counts: Mapping[tuple[str, str], int]
    waste: Mapping[tuple[str, str], int]
    backdated: bool
    seconds: float
    api_calls: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def total_waste(self) -> int:
        return sum(self.waste.values())

    def count(self, kind: str, region: str | None = None) -> int:
        return sum(n for (r, k), n in self.counts.items() if k == kind and region in (None, r))

    def minimum_list_calls(self, page_sizes: Mapping[str, int | None] = MAX_PAGE_SIZES) -> int:
        """The fewest paged calls that list every resource of these kinds in every region.

        Per region and listing: ``ceil(count / page size)``, and at least one call, since an
        empty region still has to be asked; a listing that does not page (size None) is one call.
        """
        calls = 0
        for region in self.regions:
            for kind, size in page_sizes.items():
                count = self.counts.get((region, kind), 0)
                calls += 1 if size is None else max(1, math.ceil(count / size))
        return calls


# --- credentials ------------------------------------------------------------------------------


class _Account:
    """boto3 clients for one account, under a role assumed in it; counts the calls made."""

    def __init__(self, endpoint_url: str, account_id: str) -> None:
        self.endpoint_url = endpoint_url
        self.account_id = account_id
        self.calls = 0
        self._lock = threading.Lock()
        base = self._session(
            access_key_id=emulator.ACCESS_KEY_ID, secret_access_key=emulator.SECRET_ACCESS_KEY
        )
        sts = base.client("sts", endpoint_url=endpoint_url, config=_CONFIG)
        seeder_arn = role_arn(account_id, SEEDER_ROLE_NAME)
        # moto lets a role be assumed before it exists; these first credentials are only used to
        # create the roles in the account, so the seeding itself runs under a role that exists.
        bootstrap = sts.assume_role(RoleArn=seeder_arn, RoleSessionName="cloudsweep-bootstrap")
        iam: Any = self._assumed(bootstrap["Credentials"]).client(
            "iam", endpoint_url=endpoint_url, config=_CONFIG
        )
        _ensure_role(iam, SEEDER_ROLE_NAME, _trust_policy(None))
        _ensure_role(iam, SCANNER_ROLE_NAME, _trust_policy(DEMO_EXTERNAL_ID))
        seeding = sts.assume_role(RoleArn=seeder_arn, RoleSessionName="cloudsweep-seed")
        self.session = self._assumed(seeding["Credentials"])
        identity = self.session.client("sts", endpoint_url=endpoint_url, config=_CONFIG)
        actual = identity.get_caller_identity()["Account"]
        if actual != account_id:
            # moto's MOTO_ACCOUNT_ID variable overrides the credentials' account
            raise RuntimeError(
                f"the emulated AWS at {endpoint_url} put the role of account {account_id} in "
                f"account {actual}; unset MOTO_ACCOUNT_ID so the credentials choose the account"
            )
        # the two role creations, two AssumeRole calls and the identity check above
        self.calls = 5
        self.session.events.register("before-call", self._count)

    def _count(self, **_: Any) -> None:
        with self._lock:
            self.calls += 1

    @staticmethod
    def _session(
        *, access_key_id: str, secret_access_key: str, session_token: str | None = None
    ) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name="us-east-1",
        )

    def _assumed(self, credentials: CredentialsTypeDef) -> boto3.session.Session:
        return self._session(
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials["SessionToken"],
        )

    def ec2(self, region: str) -> EC2Client:
        return self.session.client(
            "ec2", region_name=region, endpoint_url=self.endpoint_url, config=_CONFIG
        )

    def elbv2(self, region: str) -> ElasticLoadBalancingv2Client:
        return self.session.client(
            "elbv2", region_name=region, endpoint_url=self.endpoint_url, config=_CONFIG
        )

    def elb(self, region: str) -> ElasticLoadBalancingClient:
        return self.session.client(
            "elb", region_name=region, endpoint_url=self.endpoint_url, config=_CONFIG
        )

    def rds(self, region: str) -> RDSClient:
        return self.session.client(
            "rds", region_name=region, endpoint_url=self.endpoint_url, config=_CONFIG
        )

    def cloudwatch(self, region: str) -> CloudWatchClient:
        return self.session.client(
            "cloudwatch", region_name=region, endpoint_url=self.endpoint_url, config=_CONFIG
        )


# A refused call against the emulator is a seeding bug: fail at once rather than retry.
_CONFIG = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})


def role_arn(account_id: str, name: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{name}"


def _trust_policy(external_id: str | None) -> str:
    import json

    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:root"},
        "Action": "sts:AssumeRole",
    }
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _ensure_role(iam: Any, name: str, trust_policy: str) -> None:
    try:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_policy)
    except botocore.exceptions.ClientError as error:
        # Seeding twice into one account (the demo world and then a bulk world) reuses the roles.
        if error.response.get("Error", {}).get("Code") != "EntityAlreadyExists":
            raise


def _tags(tags: Mapping[str, str]) -> list[Any]:
    # Any: each service's stubs declare their own (identical) TagTypeDef.
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _spec(resource_type: str, tags: Mapping[str, str]) -> list[Any]:
    return [{"ResourceType": resource_type, "Tags": _tags(tags)}]


# --- the demo world ---------------------------------------------------------------------------

# (name, type, size GiB, extra create_volume arguments, team, env, age in days)
_UNATTACHED_VOLUMES: Final[tuple[tuple[str, str, int, Mapping[str, int], str, str, int], ...]] = (
    ("ci-build-cache-old", "gp2", 100, {}, "ci", "dev", 45),
    ("search-index-restore", "gp3", 500, {"Iops": 6000, "Throughput": 500}, "search", "prod", 60),
    ("payments-db-data-old", "io1", 200, {"Iops": 5000}, "payments", "prod", 120),
    ("ledger-db-wal-2023", "io2", 100, {"Iops": 10000}, "payments", "prod", 95),
    ("logs-archive-migration", "st1", 1000, {}, "platform", "prod", 200),
    ("cold-archive-copy", "sc1", 500, {}, "data", "staging", 300),
)


DAY: Final = timedelta(days=1)


class _DemoRegion:
    """Seeds one region of the demo world and records what it made, with its intended age."""

    def __init__(self, account: _Account, region: str, index: int, now: datetime) -> None:
        self.account = account
        self.region = region
        self.now = now
        # Region-specific names read better in the demo's table and keep IDs apart in tests.
        self.suffix = "" if index == 0 else f"-{region.split('-')[0]}{index}"
        self.resources: list[SeededResource] = []
        # Made by the EC2 step, used by the load balancer step.
        self.subnets: list[Any] = []
        self.instances: dict[str, str] = {}

    def labels(self, name: str, team: str, env: str, **extra: str) -> dict[str, str]:
        return {"Name": name + self.suffix, "team": team, "env": env, **extra}

    def add(
        self,
        kind: str,
        resource_id: str,
        tags: Mapping[str, str],
        category: str,
        verdict: Verdict,
        age: timedelta,
        **attributes: str,
    ) -> None:
        self.resources.append(
            SeededResource(
                region=self.region,
                kind=kind,
                resource_id=resource_id,
                name=tags["Name"],
                category=category,
                verdict=verdict,
                created_at=self.now - age,
                tags=dict(tags),
                attributes=attributes,
            )
        )


def seed_demo_world(
    endpoint_url: str,
    *,
    account_id: str = DEFAULT_ACCOUNT_ID,
    regions: Sequence[str] = DEMO_REGIONS,
    now: datetime | None = None,
) -> DemoWorld:
    """Create a realistic mix of waste and non-waste in each region of one account.

    Per region: unattached gp2/gp3/io1/io2/st1/sc1 volumes (waste), attached volumes, a protected
    and a two-hour-old unattached volume; orphaned old snapshots (waste), an AMI's snapshot and
    snapshots of existing volumes; unassociated (waste), associated and ``do-not-delete`` Elastic
    IPs; an ALB with an empty target group, an NLB with none and a classic ELB with no instances
    (waste), an ALB and a classic ELB serving a running instance; a stopped DB instance and one
    with no connections for 14 days (waste), and one with connections. ``now`` is the moment the
    ages are measured back from (default: the current time).
    """
    started = time.monotonic()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    account = _Account(endpoint_url, account_id)
    resources: list[SeededResource] = []
    for index, region in enumerate(regions):
        demo = _DemoRegion(account, region, index, now)
        _seed_demo_region(demo)
        _seed_demo_load_balancers(demo)
        _seed_demo_databases(demo)
        resources += demo.resources
    backdated = _backdate(account_id, resources)
    return DemoWorld(
        endpoint_url=endpoint_url,
        account_id=account_id,
        regions=tuple(regions),
        now=now,
        scanner_role_arn=role_arn(account_id, SCANNER_ROLE_NAME),
        external_id=DEMO_EXTERNAL_ID,
        backdated=backdated,
        resources=tuple(resources),
        seconds=time.monotonic() - started,
        api_calls=account.calls,
    )


def _backdate(account_id: str, resources: Iterable[SeededResource]) -> bool:
    """Give the resources their intended creation times; False if the server is not in-process."""
    by_region: dict[tuple[str, str], dict[str, datetime]] = {}
    for r in resources:
        if r.kind in _BACKDATABLE:
            by_region.setdefault((r.region, r.kind), {})[r.resource_id] = r.created_at
    wanted = found = 0
    for (region, kind), created in by_region.items():
        wanted += len(created)
        found += emulator.backdate(account_id, region, kind, created)  # type: ignore[arg-type]
    return wanted > 0 and found == wanted


_BACKDATABLE: Final = frozenset(
    {"ebs-volume", "ebs-snapshot", "ami", "load-balancer", "classic-load-balancer", "rds-instance"}
)


def _seed_demo_region(demo: _DemoRegion) -> None:
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
    ec2.create_tags(Resources=[ami_id, ami_snapshot], Tags=_tags(ami_tags))
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
            TagSpecifications=_spec("instance", tags) + _spec("volume", tags),
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
            TagSpecifications=_spec("volume", tags),
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
        TagSpecifications=_spec("snapshot", backup_tags),
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
    pre = ec2.create_snapshot(
        VolumeId=unattached[1], TagSpecifications=_spec("snapshot", pre_tags)
    )["SnapshotId"]
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
            TagSpecifications=_spec("snapshot", tags),
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
        address = ec2.allocate_address(Domain="vpc", TagSpecifications=_spec("elastic-ip", tags))
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


def _seed_demo_load_balancers(demo: _DemoRegion) -> None:
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
            Tags=_tags(tags),
        )["TargetGroups"][0]["TargetGroupArn"]

    def load_balancer(name: str, kind: str, tags: Mapping[str, str]) -> str:
        return elbv2.create_load_balancer(
            Name=name + suffix,
            Subnets=subnet_ids,
            Type=kind,  # type: ignore[arg-type]
            Scheme="internet-facing",
            Tags=_tags(tags),
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
            Tags=_tags(tags),
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


def _seed_demo_databases(demo: _DemoRegion) -> None:
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
            Tags=_tags(tags),
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


# --- the bulk world ---------------------------------------------------------------------------

# Volumes are made by launching instances with this many data volumes each and terminating them,
# which is also how most real unattached volumes come about; snapshots are taken with one
# CreateSnapshots call per instance. Far fewer calls than one per resource.
_VOLUMES_PER_INSTANCE: Final = 20
_DEVICES: Final = tuple(f"/dev/sd{letter}" for letter in "fghijklmnopqrstuvwxy")
_BULK_TYPES: Final = ("gp3", "gp2", "gp3", "st1", "sc1")


def seed_bulk_world(
    endpoint_url: str,
    *,
    resources: int,
    regions: Sequence[str] = BULK_REGIONS,
    account_id: str = DEFAULT_ACCOUNT_ID,
    now: datetime | None = None,
) -> WorldSummary:
    """Create about ``resources`` resources, spread evenly over ``regions``, for the benchmark.

    Per region: one AMI (and its snapshot), 4% instances (each with an attached root volume),
    21% Elastic IPs (one per two instances associated), 35% snapshots (half orphaned, half of
    existing volumes) and the rest unattached volumes. Regions are seeded concurrently; the
    counts are of what was created, so ``summary.total == resources``.
    """
    if resources < 0:
        raise ValueError(f"resources must be zero or more, not {resources}")
    started = time.monotonic()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    account = _Account(endpoint_url, account_id)
    shares = [resources // len(regions)] * len(regions)
    for i in range(resources % len(regions)):
        shares[i] += 1
    # boto3 clients are thread-safe once made; sessions are not, so make them all here.
    clients = [(region, account.ec2(region)) for region in regions]
    with ThreadPoolExecutor(max_workers=len(regions)) as pool:
        results = list(
            pool.map(
                lambda job: _seed_bulk_region(job[0][1], job[0][0], job[1], now),
                zip(clients, shares, strict=True),
            )
        )
    counts: Counter[tuple[str, str]] = Counter()
    waste: Counter[tuple[str, str]] = Counter()
    backdated = True
    for region, (region_counts, region_waste, created) in zip(regions, results, strict=True):
        counts.update({(region, kind): n for kind, n in region_counts.items() if n})
        waste.update({(region, kind): n for kind, n in region_waste.items() if n})
        for kind, when in created.items():
            found = emulator.backdate(account_id, region, kind, when)  # type: ignore[arg-type]
            backdated = backdated and found == len(when)
    return WorldSummary(
        endpoint_url=endpoint_url,
        account_id=account_id,
        regions=tuple(regions),
        counts=dict(counts),
        waste=dict(waste),
        backdated=backdated,
        seconds=time.monotonic() - started,
        api_calls=account.calls,
    )


def _seed_bulk_region(
    ec2: EC2Client, region: str, n: int, now: datetime
) -> tuple[Counter[str], Counter[str], dict[str, dict[str, datetime]]]:
    counts: Counter[str] = Counter()
    waste: Counter[str] = Counter()
    created: dict[str, dict[str, datetime]] = {"ebs-volume": {}, "ebs-snapshot": {}}
    if n == 0:
        return counts, waste, created
    zone = f"{region}a"
    ages = iter(range(10**9))

    def age() -> datetime:
        # Spread over 1-400 days, deterministic, so most are past any minimum-age rule.
        return now - timedelta(days=1 + (next(ages) * 37) % 400)

    instances_n = n * 4 // 100
    eips_n = n * 21 // 100
    snapshots_n = n * 35 // 100
    has_ami = instances_n > 0
    # What is left after instances and their root volumes, EIPs, snapshots and the AMI.
    volumes_n = n - 2 * instances_n - eips_n - snapshots_n - (2 if has_ami else 0)
    if volumes_n < 0:  # tiny worlds: only unattached volumes
        instances_n = eips_n = snapshots_n = 0
        has_ami, volumes_n = False, n
    # Half the snapshots are of volumes that still exist, at most one per volume.
    sourced_n = min(snapshots_n // 2, volumes_n)
    orphans_n = snapshots_n - sourced_n

    instance_ids: list[str] = []
    # moto launches from an AMI it does not know; used only when the world is too small for one.
    worker_image = "ami-00000000000000000"
    if has_ami:
        ami_id = ec2.register_image(Name=f"bulk-base-{region}", Architecture="x86_64")["ImageId"]
        worker_image = ami_id
        counts["ami"] += 1
        counts["ebs-snapshot"] += 1  # moto creates the AMI's snapshot with it
        reply = ec2.run_instances(
            ImageId=ami_id,
            InstanceType="t3.small",
            MinCount=instances_n,
            MaxCount=instances_n,
            TagSpecifications=_spec("instance", {"team": "bulk", "env": "prod"}),
        )
        instance_ids = [i["InstanceId"] for i in reply["Instances"]]
        counts["ec2-instance"] += len(instance_ids)
        counts["ebs-volume"] += len(instance_ids)  # their root volumes, attached

    def workers(volumes: int, *, keep_volumes: bool, snapshot: bool, group: str) -> list[str]:
        """Launch instances holding ``volumes`` data volumes; optionally snapshot them all."""
        launched: list[str] = []
        sizes = [_VOLUMES_PER_INSTANCE] * (volumes // _VOLUMES_PER_INSTANCE)
        if volumes % _VOLUMES_PER_INSTANCE:
            sizes.append(volumes % _VOLUMES_PER_INSTANCE)
        for per_instance, how_many in Counter(sizes).items():
            reply = ec2.run_instances(
                ImageId=worker_image,
                InstanceType="m5.large",
                MinCount=how_many,
                MaxCount=how_many,
                Placement={"AvailabilityZone": zone},
                BlockDeviceMappings=[
                    {
                        "DeviceName": _DEVICES[j],
                        "Ebs": {
                            "VolumeSize": 500
                            if _BULK_TYPES[j % 5] in ("st1", "sc1")
                            else 8 + j * 25,
                            "VolumeType": _BULK_TYPES[j % 5],
                            "DeleteOnTermination": not keep_volumes,
                        },
                    }
                    for j in range(per_instance)
                ],
                TagSpecifications=_spec("volume", {"team": f"team-{group}", "env": "prod"}),
            )
            for instance in reply["Instances"]:
                launched.append(instance["InstanceId"])
                for mapping in instance.get("BlockDeviceMappings", []):
                    if keep_volumes:
                        created["ebs-volume"][mapping["Ebs"]["VolumeId"]] = age()
        if snapshot:
            for instance_id in launched:
                for made in ec2.create_snapshots(
                    InstanceSpecification={"InstanceId": instance_id},
                    Description=f"nightly {group}",
                )["Snapshots"]:
                    created["ebs-snapshot"][made["SnapshotId"]] = age()
        return launched

    terminated = workers(sourced_n, keep_volumes=True, snapshot=True, group="sourced")
    terminated += workers(volumes_n - sourced_n, keep_volumes=True, snapshot=False, group="spare")
    terminated += workers(orphans_n, keep_volumes=False, snapshot=True, group="orphan")
    for start in range(0, len(terminated), 1000):
        ec2.terminate_instances(InstanceIds=terminated[start : start + 1000])
    counts["ebs-volume"] += volumes_n
    waste["ebs-volume"] += volumes_n
    counts["ebs-snapshot"] += snapshots_n
    waste["ebs-snapshot"] += orphans_n

    associated = instance_ids[: len(instance_ids) // 2][:eips_n]
    for i in range(eips_n):
        allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
        if i < len(associated):
            ec2.associate_address(AllocationId=allocation, InstanceId=associated[i])
    counts["elastic-ip"] += eips_n
    waste["elastic-ip"] += eips_n - len(associated)
    return counts, waste, created
