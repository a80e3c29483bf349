"""Scan a moto world of N resources across three regions: wall time, findings/s, AWS calls.

The minimum is the fewest calls an ideal scan of the same findings makes, by operation, each
with its rule (``bench/minimum.py``): listing pages at each API's largest page, batched reads for
exactly the resources that need them, per-resource calls only where no batched API exists and
only for resources that already look like waste. The run prints the table: operation, calls
made, minimum, rule.

``--world lb-heavy`` adds load balancers to the bulk world (``bench/lb_world.py``): the world of
issue 16's comparison with Cloud Custodian. CloudWatch ``GetMetricData`` calls are printed against
their target, ceil(queries / 500) per region (the scan reads every detector's metrics of a region
together: the first look, then the daily series of what it did not settle).

``--world all-types`` (the default) adds bulk amounts of the other ten types to the bulk world
(``bench/types_world.py``), so one scan runs every detector; the run then checks, from the
recorded calls, that idleness costs no call per resource and that the ``GetMetricData`` calls stay
within ceil(queries / 500) per region (issue 15), and exits 1 if they do not.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import typer

from bench import lb_world, minimum, types_world
from bench.common import fresh_database, machine, peak_rss_mib
from cloudsweep import aws, scanning
from cloudsweep.aws import emulator
from cloudsweep.aws.base import static_session
from cloudsweep.demo import world as demo_world
from cloudsweep.settings import Settings
from cloudsweep.store import FindingFilter, Store

# Calls about one resource: made only for resources that already look like waste.
PER_RESOURCE = ("DescribeTargetHealth", "DescribeInstanceHealth", "DescribeLoadBalancerAttributes")


def _per_resource(recorder: aws.CallRecorder) -> int:
    return sum(recorder.count(operation=operation) for operation in PER_RESOURCE)


def _findings(store: Store) -> list[minimum.Finding]:
    return [
        minimum.Finding(item.region, item.resource_type, item.resource_details)
        for item in store.findings(FindingFilter("bench"))
    ]


def minimum_rows_of(metadata: dict[str, Any], findings: list[minimum.Finding]) -> list[minimum.Row]:
    """The minimum's rows of a scan, from its recorded metadata and its findings."""
    return minimum.minimum_rows(
        detectors=list(metadata.get("detectors", [])),
        listings=metadata["listings"],
        metric_series=metadata.get("metric_series", {}),
        findings=findings,
    )


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


WORLDS = ("all-types", "bulk", "lb-heavy")


@dataclass(frozen=True)
class SeededWorld:
    """What ``seed_world`` made: the bulk world and what a world name adds to it."""

    bulk: demo_world.WorldSummary
    load_balancers: dict[str, int]  # empty unless lb-heavy
    types: tuple[Counter[str], Counter[str], float] | None  # all-types only


def seed_world(endpoint: str, resources: int, world_name: str) -> SeededWorld:
    """Seed a world by name (``WORLDS``) into the moto server at ``endpoint``, in this process."""
    if world_name not in WORLDS:
        raise typer.BadParameter(f"unknown world {world_name!r}; known: {', '.join(WORLDS)}")
    lb_counts: dict[str, int] = {}
    types: tuple[Counter[str], Counter[str], float] | None = None
    lb_share = resources // 3 if world_name == "lb-heavy" else 0
    types_share = resources // 4 if world_name == "all-types" else 0
    world = demo_world.seed_bulk_world(endpoint, resources=resources - lb_share - types_share)
    if types_share:
        types = _seed_types(endpoint, world, types_share)
    if lb_share:
        started = time.perf_counter()
        # A served load balancer is 3 resources (balancer, target group, instance), an idle 1.
        per_region = max(2, lb_share // 2 // len(world.regions))
        lb_counts = lb_world.seed_load_balancers(
            _seeder(endpoint, world.account_id), world.regions, per_region, datetime.now(UTC)
        )
        lb_counts["seconds"] = round(time.perf_counter() - started)
    return SeededWorld(world, lb_counts, types)


def print_world(seeded: SeededWorld) -> None:
    world, lb_counts = seeded.bulk, seeded.load_balancers
    print(
        f"world: {world.total:,} resources in {', '.join(world.regions)} (seeded in {world.seconds:.1f} s)"
    )
    if lb_counts:
        print(
            f"  + {lb_counts['load-balancer']:,} load balancers ({lb_counts['waste']:,} idle), "
            f"{lb_counts['target-group']:,} target groups, {lb_counts['instance']:,} instances "
            f"behind them (seeded in {lb_counts['seconds']} s)"
        )
    if seeded.types is not None:
        _print_types(*seeded.types)


def run(
    resources: int = typer.Option(5_000, "--resources", "-n", help="How many resources to seed."),
    concurrency: int = typer.Option(8, help="Regions x detectors at once."),
    world_name: str = typer.Option(
        "all-types",
        "--world",
        help="all-types: the bulk world plus a quarter of the resources spread over the other "
        "ten types; bulk: EBS, snapshots, Elastic IPs, instances; lb-heavy: a third of the "
        "resources are load balancers.",
    ),
) -> None:
    """Seed N resources, scan them once, print time, rate and calls against the minimum."""
    with emulator.LocalAws() as local, fresh_database() as url:
        seeded = seed_world(local.endpoint_url, resources, world_name)
        world, types = seeded.bulk, seeded.types
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
        # moto does not check ExternalIds, so its roles cannot enforce theirs (as for the demo).
        settings = Settings(
            aws_endpoint_url=local.endpoint_url,
            scan_concurrency=concurrency,
            allow_shared_accounts=True,
        )

        def session(*args: object, **kwargs: object) -> aws.AccountSession:
            base = static_session(emulator.ACCESS_KEY_ID, emulator.SECRET_ACCESS_KEY)
            return aws.AccountSession(*args, base_session=base, **kwargs)  # type: ignore[arg-type]

        start = time.perf_counter()
        outcome = scanning.run_scan(
            store, account, settings=settings, recorder=recorder, session_factory=session
        )
        wall = time.perf_counter() - start
        found = Counter(i.resource_type for i in store.findings(FindingFilter("bench")))
        findings = _findings(store)
    if "listings" not in outcome.scan.metadata:
        raise SystemExit(
            f"the scan did not run: {outcome.scan.status}: {outcome.error or outcome.scan.metadata}"
        )
    rows = minimum_rows_of(outcome.scan.metadata, findings)
    made = {
        f"{service}:{operation}": n for (service, operation), n in recorder.by_operation().items()
    }
    print(f"machine: {machine()}")
    print_world(seeded)
    print(f"scan: {outcome.scan.status}, {wall:.2f} s wall, concurrency {concurrency}")
    print(
        f"findings: {outcome.scan.total_waste_items_found:,} ({world.total_waste:,} seeded as waste)"
    )
    print(f"findings per second: {outcome.scan.total_waste_items_found / wall:,.0f}")
    print("AWS calls by operation against the minimum of the same findings:")
    calls, floor = minimum.print_table(rows, made)
    tags_rule = minimum.describe_tags_rule(rows, findings)
    print(
        f"AWS calls: {outcome.api_calls} (minimum {floor}, ratio {calls / floor:.2f}; with ELB "
        f"DescribeTags as the tag read: minimum {tags_rule}, ratio {calls / tags_rule:.2f})"
    )
    print(
        f"per-resource calls (in the minimum where the rules allow them): {_per_resource(recorder)}"
    )
    metric_calls, queries, target = _metric_target(recorder)
    print(
        f"CloudWatch GetMetricData: {metric_calls} calls for {queries:,} queries "
        f"(ceil(queries / 500) per region: {target}; the detectors of a region read together)"
    )
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    if types is not None:
        print("findings by type: " + ", ".join(f"{t} {n:,}" for t, n in sorted(found.items())))
        if not _check_idleness_calls(recorder):
            raise typer.Exit(1)


# --- the all-types world and issue 15's checks ------------------------------------------------


def _seed_types(
    endpoint: str, world: demo_world.WorldSummary, share: int
) -> tuple[Counter[str], Counter[str], float]:
    """The other ten types, ``share`` resources' worth, spread evenly over kinds and regions."""
    started = time.perf_counter()
    # Ten kinds; a NAT gateway, a stopped instance or a busy instance brings a resource of its
    # own (address, volume), so about ``share`` resources in all.
    per_kind = max(3, share // (10 * len(world.regions)))
    created, waste = types_world.seed_all_types(
        _seeder(endpoint, world.account_id),
        world.account_id,
        world.regions,
        per_kind,
        datetime.now(UTC),
    )
    return created, waste, time.perf_counter() - started


def _print_types(created: Counter[str], waste: Counter[str], seconds: float) -> None:
    kinds = ", ".join(f"{k} {n:,} ({waste[k]:,} waste)" for k, n in sorted(created.items()))
    print(f"  + {sum(created.values()):,} of the other types (seeded in {seconds:.1f} s): {kinds}")


# Operations that judge idleness: CloudWatch reads and the load balancers' health calls.
_IDLENESS_SERVICES = ("cloudwatch",)
_IDLENESS_OPERATIONS = ("DescribeTargetHealth", "DescribeInstanceHealth")
# Parameters that name one resource (an ID, a name, an ARN); paging and filters do not.
_NOT_A_RESOURCE = frozenset({"MaxResults", "MaxRecords", "Marker", "NextToken", "PageSize"})


def _resources_named(call: aws.CallRecord) -> set[str]:
    """The resources one call is about, from its parameters: the dimension values of its metric
    queries, or the scalar ``...Id``, ``...Name``, ``...Arn``, ``...Identifier`` and ``Bucket``
    values (a multipart upload's bucket, key and upload ID are one resource: the bucket)."""
    if call.service == "sts":
        return set()  # credentials, not resources
    if "Bucket" in call.params:
        return {str(call.params["Bucket"])}
    if call.operation in ("GetMetricData", "GetMetricStatistics"):
        queries = call.params.get("MetricDataQueries") or [{"MetricStat": {"Metric": call.params}}]
        return {
            d["Value"]
            for q in queries
            for d in q.get("MetricStat", {}).get("Metric", {}).get("Dimensions", [])
        }
    return {
        str(value)
        for key, value in call.params.items()
        if key not in _NOT_A_RESOURCE
        and isinstance(value, str)
        and key.endswith(("Id", "Name", "Arn", "Identifier"))
    }


def _check_idleness_calls(recorder: aws.CallRecorder) -> bool:
    """Issue 15's two checks, derived from the recorded calls; prints them, True if both hold.

    Per-resource: a call that names exactly one resource. For idleness reads that is waste
    only when the region had more resources of the same operation to ask about, which one
    batched call would have covered; so a region whose single GetMetricData names one resource
    (it had one) is fine, and a region with several such calls is not.
    """
    single: dict[tuple[str | None, str, str, str], list[str]] = {}
    for call in recorder.records:
        if not (call.service in _IDLENESS_SERVICES or call.operation in _IDLENESS_OPERATIONS):
            continue
        named = _resources_named(call)
        if len(named) == 1:
            # Per detector: two detectors each reading its one resource in a region is fine.
            key = (call.region, call.service, call.operation, _namespaces(call))
            single.setdefault(key, []).extend(named)
    # Distinct resources: a detector's whole-lookback first look and its daily read of the same
    # one resource are two batches that happen to hold one resource each, not a missed batch.
    per_resource = {key: ids for key, ids in single.items() if len(set(ids)) > 1}
    print("per-resource idleness calls (one resource each, where one call could ask for many):")
    for (region, service, operation, namespaces), ids in sorted(per_resource.items(), key=str):
        asked = f" ({namespaces})" if namespaces else ""
        print(f"  {region} {service}:{operation}{asked} {len(ids)}")
    if not per_resource:
        print("  none")

    # Every operation that names one resource a call, idleness or not: S3 and CloudWatch Logs
    # have no batch API for lifecycle rules, uploads or tags, so those grow with the buckets
    # and log groups that look like waste.
    one_each: Counter[tuple[str, str]] = Counter(
        (c.service, c.operation) for c in recorder.records if len(_resources_named(c)) == 1
    )
    print("calls naming one resource, by operation (any purpose):")
    for (service, operation), count in sorted(one_each.items()):
        print(f"  {service}:{operation:32s} {count}")

    ok = not per_resource
    print("GetMetricData by region: calls, queries, target ceil(queries / 500), per-region bound:")
    by_region: dict[str | None, list[aws.CallRecord]] = {}
    for call in recorder.calls(operation="GetMetricData"):
        by_region.setdefault(call.region, []).append(call)
    for region, calls in sorted(by_region.items(), key=str):
        queries = sum(len(c.params["MetricDataQueries"]) for c in calls)
        target = math.ceil(queries / 500)
        # Every detector of a region reads together: the first look, whose queries depend on
        # nothing, then the daily series of the resources it did not settle, which depend on it.
        first, later = _phases(calls)
        bound = math.ceil(first / 500) + math.ceil(later / 500)
        within = len(calls) <= target
        ok = ok and len(calls) <= bound
        print(
            f"  {region}: {len(calls)} calls, {queries:,} queries, target {target} "
            f"({'met' if within else 'not met'}); per-region bound: {bound} "
            f"(first look {first:,} queries, then daily series {later:,})"
        )
    print(f"checks: {'passed' if ok else 'FAILED'}")
    return ok


def _phases(calls: list[aws.CallRecord]) -> tuple[int, int]:
    """(first-look queries, later queries) of one region's GetMetricData calls.

    Later: a daily query about a resource that had a whole-lookback query (a period longer than
    a day), i.e. a series read because the first look did not settle that resource. Everything
    else (the first looks, and the daily series read whatever they say) is the first look.
    """
    queries = [q["MetricStat"] for c in calls for q in c.params["MetricDataQueries"]]

    def resource(stat: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((d["Name"], d["Value"]) for d in stat["Metric"].get("Dimensions", [])))

    looked = {resource(q) for q in queries if q.get("Period", 0) > 86400}
    later = sum(1 for q in queries if q.get("Period", 0) <= 86400 and resource(q) in looked)
    return len(queries) - later, later


def _namespaces(call: aws.CallRecord) -> str:
    """The CloudWatch namespaces a metric read asks about ("" for other calls): which detector."""
    if call.operation == "GetMetricStatistics":
        return str(call.params.get("Namespace", ""))
    queries = call.params.get("MetricDataQueries") or []
    return "+".join(sorted({q["MetricStat"]["Metric"]["Namespace"] for q in queries}))
