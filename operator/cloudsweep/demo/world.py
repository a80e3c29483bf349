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

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from cloudsweep.aws import emulator
from cloudsweep.demo import compute, core, storage
from cloudsweep.demo.seeding import (
    DEFAULT_ACCOUNT_ID,
    DEMO_EXTERNAL_ID,
    PROTECT_TAG,
    SCANNER_ROLE_NAME,
    SEEDER_ROLE_NAME,
    Account,
    RegionSeed,
    SeededResource,
    Verdict,
    role_arn,
    spec,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# Callers and tests name these through this module, the demo's one entry point.
__all__ = [
    "BULK_REGIONS",
    "DEFAULT_ACCOUNT_ID",
    "DEMO_EXTERNAL_ID",
    "DEMO_REGIONS",
    "MAX_PAGE_SIZES",
    "PROTECT_TAG",
    "REGION_SEEDERS",
    "SCANNER_ROLE_NAME",
    "SEEDER_ROLE_NAME",
    "DemoWorld",
    "SeededResource",
    "Verdict",
    "WorldSummary",
    "role_arn",
    "seed_bulk_world",
    "seed_demo_world",
]

DEMO_REGIONS: Final = ("us-east-1", "eu-west-1")
BULK_REGIONS: Final = ("us-east-1", "us-west-2", "eu-west-1")
# The largest page each listing accepts in AWS; None = the API does not page (one call lists all).
MAX_PAGE_SIZES: Final[Mapping[str, int | None]] = {
    "ebs-volume": 500,  # DescribeVolumes MaxResults
    "ebs-snapshot": 1000,  # DescribeSnapshots MaxResults
    "elastic-ip": None,  # DescribeAddresses
    "ami": 1000,  # DescribeImages MaxResults (needed to tell AMI-referenced snapshots)
}


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


# The one place the demo world calls type-specific seeders, in this order, once per region. Each
# receives the region's RegionSeed and records what it made with ``seed.add``. core.seed_ec2 comes
# first: later seeders use its subnets, instances and AMI (``seed.subnets``, ``seed.instances``,
# ``seed.base_image``).
REGION_SEEDERS: Final[tuple[Callable[[RegionSeed], None], ...]] = (
    core.seed_ec2,
    core.seed_load_balancers,
    core.seed_databases,
    storage.seed_storage,
    compute.seed_compute,  # launches from core's AMI into core's subnet
    compute.seed_region_usage,  # last: traffic for everything above that is in use
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
    with no connections for 14 days (waste), and one with connections; gp2 and io1 volumes that
    gp3 serves for less, unused and used AMIs, log groups that never expire and buckets with
    abandoned multipart uploads (:mod:`cloudsweep.demo.storage`); idle, long-stopped and
    Auto Scaling instances and idle, unrouted and busy NAT gateways
    (:func:`cloudsweep.demo.compute.seed_compute`). ``now`` is the moment the ages are measured
    back from (default: the current time).
    """
    started = time.monotonic()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    account = Account(endpoint_url, account_id)
    resources: list[SeededResource] = []
    for index, region in enumerate(regions):
        seed = RegionSeed(account, region, index, now)
        for seeder in REGION_SEEDERS:
            seeder(seed)
        resources += seed.resources
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
        kind = _BACKDATED_AS.get(r.kind, r.kind)
        if kind in _BACKDATABLE:
            by_region.setdefault((r.region, kind), {})[r.resource_id] = r.created_at
    wanted = found = 0
    for (region, kind), created in by_region.items():
        wanted += len(created)
        found += emulator.backdate(account_id, region, kind, created)  # type: ignore[arg-type]
    return wanted > 0 and found == wanted


_BACKDATABLE: Final = frozenset(
    {"ebs-volume", "ebs-snapshot", "ami", "load-balancer", "classic-load-balancer", "rds-instance"}
    | {"cloudwatch-log-group", "s3-bucket"}
)
# Seeded kinds whose AWS resource is of another kind (a gp3 candidate is an EBS volume).
_BACKDATED_AS: Final = {"ebs-gp3-candidate": "ebs-volume", "s3-incomplete-multipart": "s3-bucket"}


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
    account = Account(endpoint_url, account_id)
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
            TagSpecifications=spec("instance", {"team": "bulk", "env": "prod"}),
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
                TagSpecifications=spec("volume", {"team": f"team-{group}", "env": "prod"}),
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
