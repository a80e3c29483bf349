"""Scan a moto world of N resources across three regions: wall time, findings/s, AWS calls.

The minimum is the fewest calls that can list what the scan reads: for every paged listing the
scan made in every region, ceil(items / the API's largest page), at least one; plus the two STS
calls (AssumeRole, GetCallerIdentity). Calls about one resource (DescribeTargetHealth,
DescribeInstanceHealth, DescribeLoadBalancerAttributes, ...) are not part of it: they are printed
as per-resource calls. moto answers DescribeVolumes and DescribeSnapshots in one page whatever
MaxResults says, so those listings can come in under AWS's minimum.

``--world lb-heavy`` adds load balancers to the bulk world (``bench/lb_world.py``): the world of
issue 16's comparison with Cloud Custodian. CloudWatch ``GetMetricData`` calls are printed against
their target, ceil(queries / 500) per region and detector.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import typer

from bench import lb_world
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
    "ec2:DescribeInstances": 1000,
    "ec2:DescribeNatGateways": 1000,
    "ec2:DescribeRouteTables": 100,
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
            if listing not in MAX_PAGE:
                continue  # a call about one resource, not a listing
            page = MAX_PAGE[listing]
            minimum += 1 if page is None else max(1, math.ceil(max(count, 0) / page))
    return minimum


# Calls about one resource: made only for resources that already look like waste.
PER_RESOURCE = ("DescribeTargetHealth", "DescribeInstanceHealth", "DescribeLoadBalancerAttributes")


def _per_resource(recorder: aws.CallRecorder) -> int:
    return sum(recorder.count(operation=operation) for operation in PER_RESOURCE)


def _metric_target(recorder: aws.CallRecorder) -> tuple[int, int, int]:
    """(GetMetricData calls, queries, ceil(queries / 500) summed over the regions)."""
    by_region: dict[str, int] = {}
    calls = recorder.calls(operation="GetMetricData")
    for call in calls:
        region = call.region or ""
        by_region[region] = by_region.get(region, 0) + len(call.params["MetricDataQueries"])
    target = sum(math.ceil(queries / 500) for queries in by_region.values())
    return len(calls), sum(by_region.values()), target


def _seeder(endpoint: str, account_id: str) -> Callable[[str, str], Any]:
    """boto3 clients of the world's account, under the seeder role the bulk world created."""
    sts = boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id=emulator.ACCESS_KEY_ID,
        aws_secret_access_key=emulator.SECRET_ACCESS_KEY,
    )
    creds = sts.assume_role(
        RoleArn=demo_world.role_arn(account_id, demo_world.SEEDER_ROLE_NAME),
        RoleSessionName="bench-lb-world",
    )["Credentials"]
    session = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    return lambda service, region: session.client(
        service, region_name=region, endpoint_url=endpoint
    )


def run(
    resources: int = typer.Option(5_000, "--resources", "-n", help="How many resources to seed."),
    concurrency: int = typer.Option(8, help="Regions x detectors at once."),
    world_name: str = typer.Option(
        "bulk", "--world", help="bulk, or lb-heavy: a third of the resources are load balancers."
    ),
) -> None:
    """Seed N resources, scan them once, print time, rate and calls against the minimum."""
    if world_name not in ("bulk", "lb-heavy"):
        raise typer.BadParameter(f"unknown world {world_name!r}; known: bulk, lb-heavy")
    lb_counts: dict[str, int] = {}
    with emulator.LocalAws() as local, fresh_database() as url:
        lb_share = resources // 3 if world_name == "lb-heavy" else 0
        world = demo_world.seed_bulk_world(local.endpoint_url, resources=resources - lb_share)
        if lb_share:
            started = time.perf_counter()
            # A served load balancer is 3 resources (balancer, target group, instance), an idle 1.
            per_region = max(2, lb_share // 2 // len(world.regions))
            lb_counts = lb_world.seed_load_balancers(
                _seeder(local.endpoint_url, world.account_id),
                world.regions,
                per_region,
                datetime.now(UTC),
            )
            lb_counts["seconds"] = round(time.perf_counter() - started)
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
    if lb_counts:
        print(
            f"  + {lb_counts['load-balancer']:,} load balancers ({lb_counts['waste']:,} idle), "
            f"{lb_counts['target-group']:,} target groups, {lb_counts['instance']:,} instances "
            f"behind them (seeded in {lb_counts['seconds']} s)"
        )
    print(f"scan: {outcome.scan.status}, {wall:.2f} s wall, concurrency {concurrency}")
    print(
        f"findings: {outcome.scan.total_waste_items_found:,} ({world.total_waste:,} seeded as waste)"
    )
    print(f"findings per second: {outcome.scan.total_waste_items_found / wall:,.0f}")
    print(
        f"AWS calls: {outcome.api_calls} (minimum {minimum}, ratio {outcome.api_calls / minimum:.2f})"
    )
    print(f"per-resource calls (not in the minimum): {_per_resource(recorder)}")
    metric_calls, queries, target = _metric_target(recorder)
    print(
        f"CloudWatch GetMetricData: {metric_calls} calls for {queries:,} queries "
        f"(ceil(queries / 500) per region: {target}; each detector reads its own batch)"
    )
    for (service, operation), count in sorted(recorder.by_operation().items()):
        print(f"  {service}:{operation:32s} {count}")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
