"""Scan a moto world of N resources across three regions: wall time, findings/s, AWS calls.

The minimum is the fewest calls that can list what the scan reads: for every listing the scan made
in every region, ceil(items / the API's largest page), at least one; plus the two STS calls
(AssumeRole, GetCallerIdentity). moto answers DescribeVolumes and DescribeSnapshots in one page
whatever MaxResults says, so those listings can come in under AWS's minimum.
"""

from __future__ import annotations

import math
import time

import typer

from bench.common import fresh_database, machine, peak_rss_mib
from cloudsweep import aws, scanning
from cloudsweep.aws import emulator
from cloudsweep.aws.base import static_session
from cloudsweep.demo import world as demo_world
from cloudsweep.settings import Settings
from cloudsweep.store import Store

# The largest page each listing API returns; None: the API does not page.
MAX_PAGE = {
    "ec2:DescribeVolumes": 500,
    "ec2:DescribeSnapshots": 1000,
    "ec2:DescribeImages": 1000,
    "ec2:DescribeAddresses": None,
    "elbv2:DescribeLoadBalancers": 400,
    "elbv2:DescribeTargetGroups": 400,
    "elb:DescribeLoadBalancers": 400,
    "rds:DescribeDBInstances": 100,
    "backup:ListRecoveryPoints": 1000,
}


def _minimum(listings: dict[str, dict[str, int]]) -> int:
    minimum = 2  # AssumeRole + GetCallerIdentity
    for counts in listings.values():
        for listing, count in counts.items():
            page = MAX_PAGE.get(listing)
            minimum += 1 if page is None else max(1, math.ceil(max(count, 0) / page))
    return minimum


def run(
    resources: int = typer.Option(5_000, "--resources", "-n", help="How many resources to seed."),
    concurrency: int = typer.Option(8, help="Regions x detectors at once."),
) -> None:
    """Seed N resources, scan them once, print time, rate and calls against the minimum."""
    with emulator.LocalAws() as local, fresh_database() as url:
        world = demo_world.seed_bulk_world(local.endpoint_url, resources=resources)
        store = Store(url)
        org = store.ensure_organization("bench")
        account = store.register_account(
            org.id,
            account_id=world.account_id,
            role_arn=demo_world.role_arn(world.account_id, demo_world.SCANNER_ROLE_NAME),
            external_id=demo_world.DEMO_EXTERNAL_ID,
            regions=list(world.regions),
        )
        recorder = aws.CallRecorder()
        settings = Settings(aws_endpoint_url=local.endpoint_url, scan_concurrency=concurrency)

        def session(*args: object, **kwargs: object) -> aws.AccountSession:
            base = static_session(emulator.ACCESS_KEY_ID, emulator.SECRET_ACCESS_KEY)
            return aws.AccountSession(*args, base_session=base, **kwargs)  # type: ignore[arg-type]

        start = time.perf_counter()
        outcome = scanning.run_scan(
            store, account, settings=settings, recorder=recorder, session_factory=session
        )
        wall = time.perf_counter() - start
    listings = outcome.scan.metadata["listings"]
    minimum = _minimum(listings)
    print(f"machine: {machine()}")
    print(
        f"world: {world.total:,} resources in {', '.join(world.regions)} (seeded in {world.seconds:.1f} s)"
    )
    print(f"scan: {outcome.scan.status}, {wall:.2f} s wall, concurrency {concurrency}")
    print(
        f"findings: {outcome.scan.total_waste_items_found:,} ({world.total_waste:,} seeded as waste)"
    )
    print(f"findings per second: {outcome.scan.total_waste_items_found / wall:,.0f}")
    print(
        f"AWS calls: {outcome.api_calls} (minimum {minimum}, ratio {outcome.api_calls / minimum:.2f})"
    )
    for (service, operation), count in sorted(recorder.by_operation().items()):
        print(f"  {service}:{operation:32s} {count}")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
