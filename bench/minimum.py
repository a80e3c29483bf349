"""The fewest AWS calls a scan of the same findings needs, by operation, each with its rule.

Issue 16's target is CloudSweep's calls against "the minimum paged listing calls (per-resource
calls only where no batched API exists, and then only for resources that already look like
waste)". Used by ``bench/scan.py`` and ``bench/c7n.py``, which print the table of
``table(...)``: operation, calls made, minimum, rule. The rules (also in docs/benchmarks.md):

- listings: ceil(items / the API's largest page), at least one, once per region and only where a
  selected detector needs the listing; a listing needed only for resources that already look
  like waste (target groups, route tables, launch templates and configurations, backup vaults)
  only in regions with such findings. The older EC2 listings (volumes, snapshots, instances,
  images) answer everything in one call when MaxResults is left out; addresses are not paged.
  ``s3:ListBuckets`` is one listing per scan, not per region: its reply names each bucket's
  region;
- batched reads, for exactly the resources that need them: ``GetMetricData`` every distinct
  series the idleness judgements read, once (a daily series also gives the whole window's
  value), 500 queries a call, per region and lookback; ``DescribeInstanceTypes`` 100 types a
  call, the types of idle-looking instances; tags of the resources whose listing carries none
  (load balancers, log groups, buckets), for the findings only, through the Resource Groups
  Tagging API's ``GetResources``: 100 ARNs of any type a call, per region (the per-service tag
  reads, ELB ``DescribeTags`` with 20 names or ARNs, are then not needed: their minimum is 0;
  ``describe_tags_rule`` gives the total with them instead, for comparison);
- per-resource calls, only where no batched API exists and only for resources that already look
  like waste, derived from the findings (the same findings an ideal scan would make):
  ``DescribeLoadBalancerAttributes`` one per idle-looking ELBv2 load balancer (deletion
  protection), ``DescribeTargetHealth`` one per target group of one, ``DescribeInstanceHealth``
  one per idle-looking classic load balancer with instances; S3 ``ListMultipartUploads`` one per
  bucket (no listing says which buckets hold uploads), ``GetBucketLifecycleConfiguration`` one
  per bucket found, ``ListParts`` one per upload measured;
- STS: one ``AssumeRole``; ``GetCallerIdentity`` 0: the account is in AssumeRole's reply
  (``AssumedRoleUser.Arn``). CloudSweep makes it anyway, as its identity guard.

An operation without a rule counts 0: the minimum is never raised to fit what the scan did.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Listing -> (largest page; None: one call answers all), detectors that need it in every region.
_LISTINGS: dict[str, tuple[int | None, tuple[str, ...]]] = {
    "ec2:DescribeVolumes": (
        None,
        ("ebs-volume", "ebs-snapshot", "ebs-gp3-candidate", "ec2-stopped-instance"),
    ),
    "ec2:DescribeSnapshots": (None, ("ebs-snapshot", "ami")),
    "ec2:DescribeImages": (None, ("ami", "ebs-snapshot")),
    "ec2:DescribeInstances": (None, ("ec2-instance", "ec2-stopped-instance", "ami")),
    "ec2:DescribeAddresses": (None, ("elastic-ip", "ec2-stopped-instance")),
    "ec2:DescribeNatGateways": (1000, ("nat-gateway",)),
    "elbv2:DescribeLoadBalancers": (400, ("load-balancer",)),
    "elb:DescribeLoadBalancers": (400, ("load-balancer",)),
    "rds:DescribeDBInstances": (100, ("rds-instance",)),
    "logs:DescribeLogGroups": (50, ("cloudwatch-log-group",)),
}
_ELBV2 = "load-balancer (ELBv2)"  # the findings of ELBv2 load balancers, counted apart
# Listings needed in a region only when it has findings of this type (and the largest page).
_WHEN_FOUND: dict[str, tuple[int, str, str]] = {
    "elbv2:DescribeTargetGroups": (400, _ELBV2, "an idle-looking ELBv2 load balancer"),
    "ec2:DescribeRouteTables": (100, "nat-gateway", "an idle-looking NAT gateway"),
    "ec2:DescribeLaunchTemplates": (200, "ami", "an unused-looking AMI"),
    "autoscaling:DescribeLaunchConfigurations": (100, "ami", "an unused-looking AMI"),
    "backup:ListBackupVaults": (1000, "ebs-snapshot", "a snapshot finding"),
}
TAG_OPERATIONS = (
    "elbv2:DescribeTags",
    "elb:DescribeTags",
    "logs:ListTagsForResource",
    "s3:GetBucketTagging",
)
_UNTAGGED_LISTINGS = ("load-balancer", "cloudwatch-log-group", "s3-incomplete-multipart")
# How the moto server (SigV4 signing names) calls the services that boto3 names otherwise.
SIGNING_NAMES = {"elbv2": "elasticloadbalancing", "elb": "elasticloadbalancing"}
SIGNING_NAMES["cloudwatch"] = "monitoring"
SIGNING_NAMES["tag"] = "tagging"


@dataclass(frozen=True)
class Finding:
    """What the rules read of one finding."""

    region: str
    resource_type: str
    details: Mapping[str, Any]


@dataclass(frozen=True)
class Row:
    operation: str  # "service:Operation", boto3's service names
    minimum: int
    rule: str


def _pages(items: int, page: int | None) -> int:
    if page is None:
        return 1
    return max(1, math.ceil(max(items, 0) / page))


def minimum_rows(
    *,
    detectors: Sequence[str],
    listings: Mapping[str, Mapping[str, int]],
    metric_series: Mapping[str, Mapping[str, int]],
    findings: Iterable[Finding],
) -> list[Row]:
    """The minimum of every operation an ideal scan of these findings makes, with its rule."""
    by_region: dict[str, list[Finding]] = {region: [] for region in listings}
    for found in findings:
        by_region.setdefault(found.region, []).append(found)
    minimum: Counter[str] = Counter()
    rules: dict[str, str] = {}

    def add(operation: str, calls: int, rule: str) -> None:
        minimum[operation] += calls
        rules[operation] = rule

    add("sts:AssumeRole", 1, "one session for the scan")
    add("sts:GetCallerIdentity", 0, "0: the account is in AssumeRole's reply")
    for region, found in by_region.items():
        listed = listings.get(region, {})
        types = Counter(f.resource_type for f in found)
        types[_ELBV2] = sum(
            1
            for f in found
            if f.resource_type == "load-balancer" and f.details.get("lb_type") != "classic"
        )
        for operation, (page, users) in _LISTINGS.items():
            if any(d in detectors for d in users):
                rule = (
                    "1 a region: answers all when MaxResults is left out"
                    if page is None
                    else f"ceil(items / {page}) a region"
                )
                add(operation, _pages(listed.get(operation, 0), page), rule)
        for operation, (page, resource_type, why) in _WHEN_FOUND.items():
            if types[resource_type]:
                rule = f"ceil(items / {page}) in a region with {why}"
                add(operation, _pages(listed.get(operation, 0), page), rule)
        if types["ami"]:
            add(
                "ec2:DescribeLaunchTemplateVersions",
                listed.get("ec2:DescribeLaunchTemplates", 0),
                "one per launch template, in a region with an unused-looking AMI",
            )
        if types["ebs-snapshot"]:
            add(
                "backup:ListRecoveryPointsByBackupVault",
                max(0, listed.get("backup:ListBackupVaults", 0)),
                "one per backup vault, in a region with a snapshot finding",
            )
        elbv2 = [f for f in found if f.resource_type == "load-balancer"]
        classic = [f for f in elbv2 if f.details.get("lb_type") == "classic"]
        elbv2 = [f for f in elbv2 if f.details.get("lb_type") != "classic"]
        add(
            "elbv2:DescribeLoadBalancerAttributes",
            len(elbv2),
            "one per idle-looking ELBv2 load balancer (deletion protection: no batched API)",
        )
        add(
            "elbv2:DescribeTargetHealth",
            sum(len(f.details.get("target_groups") or []) for f in elbv2),
            "one per target group of an idle-looking ELBv2 load balancer (no batched API)",
        )
        add(
            "elb:DescribeInstanceHealth",
            sum(1 for f in classic if f.details.get("registered_targets")),
            "one per idle-looking classic load balancer with instances (no batched API)",
        )
        instance_types = {
            str(f.details.get("instance_type"))
            for f in found
            if f.resource_type == "ec2-instance" and f.details.get("instance_type")
        }
        if instance_types:
            add(
                "ec2:DescribeInstanceTypes",
                math.ceil(len(instance_types) / 100),
                "ceil(types of idle-looking instances / 100) a region",
            )
        series = metric_series.get(region, {})
        add(
            "cloudwatch:GetMetricData",
            sum(math.ceil(n / 500) for n in series.values() if n),
            "ceil(distinct series read / 500) a region and lookback",
        )
        untagged = sum(types[t] for t in _UNTAGGED_LISTINGS)
        add(
            "tag:GetResources",
            math.ceil(untagged / 100),
            "ceil(findings whose listing has no tags / 100) a region (any type together)",
        )
        buckets = max(0, listed.get("s3:ListBuckets", 0))
        if "s3-incomplete-multipart" in detectors:
            add(
                "s3:ListMultipartUploads",
                buckets,
                "one per bucket of the region (no listing says which hold uploads)",
            )
        s3 = [f for f in found if f.resource_type == "s3-incomplete-multipart"]
        if s3:
            add(
                "s3:GetBucketLifecycleConfiguration",
                len(s3),
                "one per bucket found (no batched API)",
            )
            add(
                "s3:ListParts",
                sum(int(f.details.get("uploads_measured") or 0) for f in s3),
                "one per upload measured (no batched API)",
            )
    if "s3-incomplete-multipart" in detectors:
        buckets = sum(max(0, c.get("s3:ListBuckets", 0)) for c in listings.values())
        add("s3:ListBuckets", _pages(buckets, 10_000), "ceil(buckets / 10,000) once a scan")
    for operation in TAG_OPERATIONS:
        add(operation, 0, "0: tag:GetResources reads them, 100 ARNs a call")
    return [Row(op, minimum[op], rules[op]) for op in sorted(rules)]


def describe_tags_rule(rows: Sequence[Row], findings: Iterable[Finding]) -> int:
    """The total minimum with each service's own tag read instead of ``tag:GetResources``:
    ELB ``DescribeTags`` 20 names or ARNs a call, one log group or bucket a call."""
    total = sum(row.minimum for row in rows if row.operation != "tag:GetResources")
    counts: Counter[tuple[str, str]] = Counter()
    for found in findings:
        if found.resource_type == "load-balancer":
            kind = "classic" if found.details.get("lb_type") == "classic" else "elbv2"
            counts[(found.region, kind)] += 1
        elif found.resource_type in _UNTAGGED_LISTINGS:
            counts[(found.region, found.resource_type)] += 1
    for (_, kind), n in counts.items():
        total += math.ceil(n / 20) if kind in ("classic", "elbv2") else n
    return total


def signing_name(operation: str) -> str:
    """``elbv2:DescribeTags`` -> ``elasticloadbalancing:DescribeTags`` (as the server sees it)."""
    service, name = operation.split(":", 1)
    return f"{SIGNING_NAMES.get(service, service)}:{name}"


def print_table(rows: Sequence[Row], made: Mapping[str, int]) -> tuple[int, int]:
    """Operation, calls made, minimum, rule; returns (calls, minimum). ``made`` and the rows
    must name services alike (both boto3's or both the server's)."""
    minimum = {row.operation: row for row in rows}
    total_made = total_minimum = 0
    print(f"  {'operation':48s} {'made':>5s} {'min':>5s}  rule")
    for operation in sorted(set(minimum) | set(made)):
        calls = made.get(operation, 0)
        row = minimum.get(operation)
        floor = row.minimum if row else 0
        if not calls and not floor:
            continue
        total_made += calls
        total_minimum += floor
        rule = row.rule if row else "no rule: counted 0"
        flag = " *" if calls > floor else ""
        print(f"  {operation:48s} {calls:5d} {floor:5d}  {rule}{flag}")
    print(f"  {'total':48s} {total_made:5d} {total_minimum:5d}  (* more than the minimum)")
    return total_made, total_minimum


def fold(rows: Sequence[Row]) -> list[Row]:
    """The rows under the server's service names (ELB and ELBv2 are one service there)."""
    folded: dict[str, Row] = {}
    for row in rows:
        name = signing_name(row.operation)
        if name in folded:
            earlier = folded[name]
            rule = earlier.rule if earlier.rule == row.rule else f"{earlier.rule}; {row.rule}"
            folded[name] = Row(name, earlier.minimum + row.minimum, rule)
        else:
            folded[name] = Row(name, row.minimum, row.rule)
    return list(folded.values())
