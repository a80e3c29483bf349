"""The minimum of ``bench/minimum.py``: each rule on a small, hand-counted scan."""

from __future__ import annotations

from bench import minimum
from cloudsweep.names import DETECTOR_NAMES

ALL = list(DETECTOR_NAMES)  # every detector selected


def _alb(region: str, groups: int = 0) -> minimum.Finding:
    return minimum.Finding(
        region, "load-balancer", {"lb_type": "application", "target_groups": ["g"] * groups}
    )


def _classic(region: str, instances: int = 0) -> minimum.Finding:
    return minimum.Finding(
        region, "load-balancer", {"lb_type": "classic", "registered_targets": instances}
    )


def _rows(findings, listings=None, series=None, detectors=ALL):
    listings = listings or {"r1": {}, "r2": {}}
    rows = minimum.minimum_rows(
        detectors=detectors,
        listings=listings,
        metric_series=series or {},
        findings=findings,
    )
    return {row.operation: row.minimum for row in rows}


def test_listings_count_pages_at_the_largest_page_once_a_region():
    rows = _rows(
        [],
        listings={
            "r1": {"elbv2:DescribeLoadBalancers": 401, "logs:DescribeLogGroups": 50},
            "r2": {"ec2:DescribeVolumes": 5000, "rds:DescribeDBInstances": 0},
        },
    )
    assert rows["elbv2:DescribeLoadBalancers"] == 2 + 1  # 401 at 400 a page; r2 lists none
    assert rows["logs:DescribeLogGroups"] == 1 + 1
    assert rows["ec2:DescribeVolumes"] == 1 + 1  # one call answers all without MaxResults
    assert rows["rds:DescribeDBInstances"] == 2
    # Needed only for what already looks like waste: no finding, no listing.
    for listing in (
        "elbv2:DescribeTargetGroups",
        "ec2:DescribeRouteTables",
        "ec2:DescribeLaunchTemplates",
        "autoscaling:DescribeLaunchConfigurations",
        "backup:ListBackupVaults",
    ):
        assert listing not in rows


def test_a_detector_not_selected_needs_no_listing():
    rows = _rows([], detectors=["elastic-ip"])
    assert rows["ec2:DescribeAddresses"] == 2
    assert "ec2:DescribeVolumes" not in rows
    assert "s3:ListBuckets" not in rows


def test_buckets_are_listed_once_a_scan_and_sts_needs_one_call():
    rows = _rows([], listings={"r1": {"s3:ListBuckets": 3}, "r2": {"s3:ListBuckets": 4}})
    assert rows["s3:ListBuckets"] == 1
    assert rows["s3:ListMultipartUploads"] == 7  # one per bucket, in its region
    assert rows["sts:AssumeRole"] == 1
    assert rows["sts:GetCallerIdentity"] == 0


def test_per_resource_calls_only_for_idle_looking_load_balancers():
    found = [_alb("r1", groups=2), _alb("r1"), _classic("r1", instances=3), _classic("r2")]
    rows = _rows(found)
    assert rows["elbv2:DescribeLoadBalancerAttributes"] == 2
    assert rows["elbv2:DescribeTargetHealth"] == 2
    assert rows["elb:DescribeInstanceHealth"] == 1
    assert rows["elbv2:DescribeTargetGroups"] == 1  # r1 only: r2 has no idle ELBv2


def test_tags_are_one_batched_read_of_100_a_region_and_the_elb_rule_is_printed_apart():
    found = [_alb("r1") for _ in range(41)] + [_classic("r1") for _ in range(41)]
    found += [minimum.Finding("r2", "cloudwatch-log-group", {}) for _ in range(101)]
    rows = minimum.minimum_rows(
        detectors=ALL, listings={"r1": {}, "r2": {}}, metric_series={}, findings=found
    )
    by_operation = {row.operation: row.minimum for row in rows}
    assert by_operation["tag:GetResources"] == 1 + 2
    assert by_operation["elbv2:DescribeTags"] == by_operation["elb:DescribeTags"] == 0
    with_elb_tags = minimum.describe_tags_rule(rows, found)
    # 3 + 3 DescribeTags in r1 (20 a call) and a ListTagsForResource per log group in r2.
    assert with_elb_tags == sum(by_operation.values()) - 3 + 6 + 101


def test_metric_reads_count_distinct_series_500_a_call_per_lookback():
    rows = _rows([], series={"r1": {"14": 501, "7": 3}, "r2": {"14": 500}})
    assert rows["cloudwatch:GetMetricData"] == 2 + 1 + 1


def test_instance_types_only_of_idle_looking_instances():
    found = [
        minimum.Finding("r1", "ec2-instance", {"instance_type": f"t{n}.small"}) for n in range(101)
    ]
    assert _rows(found)["ec2:DescribeInstanceTypes"] == 2


def test_the_table_counts_an_operation_without_a_rule_as_zero(capsys):
    rows = [minimum.Row("ec2:DescribeVolumes", 1, "rule")]
    made, floor = minimum.print_table(rows, {"ec2:DescribeVolumes": 2, "ec2:Unheard": 5})
    assert (made, floor) == (7, 1)
    assert "no rule: counted 0" in capsys.readouterr().out


def test_folded_under_the_servers_service_names():
    rows = minimum.fold(
        [
            minimum.Row("elbv2:DescribeTags", 0, "a"),
            minimum.Row("elb:DescribeTags", 0, "a"),
            minimum.Row("elbv2:DescribeLoadBalancers", 1, "x"),
            minimum.Row("elb:DescribeLoadBalancers", 2, "y"),
            minimum.Row("cloudwatch:GetMetricData", 3, "z"),
        ]
    )
    by_operation = {row.operation: row.minimum for row in rows}
    assert by_operation == {
        "elasticloadbalancing:DescribeTags": 0,
        "elasticloadbalancing:DescribeLoadBalancers": 3,
        "monitoring:GetMetricData": 3,
    }
