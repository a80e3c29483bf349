"""The load-balancer detector (ELBv2 and classic) against moto over HTTP."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from cloudsweep.detectors import load_balancer
from cloudsweep.domain import RiskLevel, utcnow

from .conftest import ACCOUNT, LATER, REGION, by_id, check

DETECTOR = load_balancer.LoadBalancerDetector()


def _network(ec2):
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    return vpc, subnets


def _instance(ec2):
    return ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]


def _alb(elbv2, subnets, name, lb_type="application", tags=None):
    kwargs = {"Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]} if tags else {}
    return elbv2.create_load_balancer(Name=name, Subnets=subnets, Type=lb_type, **kwargs)[
        "LoadBalancers"
    ][0]["LoadBalancerArn"]


def _target_group(elbv2, vpc, lb_arn, name):
    tg = elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc)["TargetGroups"][
        0
    ]["TargetGroupArn"]
    elbv2.create_listener(
        LoadBalancerArn=lb_arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
    )
    return tg


def _rid(arn):
    return arn.split(":loadbalancer/", 1)[1]


def _traffic(cloudwatch, now, namespace, metric, dimension, value, days=14):
    """Daily datapoints of one load balancer metric, as ELB publishes them."""
    name, dim_value = dimension
    cloudwatch.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [{"Name": name, "Value": dim_value}],
                "Value": value,
                "Timestamp": now - timedelta(days=day, hours=1),
            }
            for day in range(days)
        ],
    )


def _requests(cloudwatch, now, arn, per_day, days=14):
    _traffic(
        cloudwatch,
        now,
        "AWS/ApplicationELB",
        "RequestCount",
        ("LoadBalancer", _rid(arn)),
        per_day,
        days,
    )


def test_elbv2_idle_and_busy(seed, make_context):
    ec2, elbv2 = seed("ec2"), seed("elbv2")
    vpc, subnets = _network(ec2)
    no_groups = _alb(elbv2, subnets, "no-groups")
    empty = _alb(elbv2, subnets, "empty-group")
    _target_group(elbv2, vpc, empty, "empty-tg")
    healthy = _alb(elbv2, subnets, "healthy")
    tg = _target_group(elbv2, vpc, healthy, "healthy-tg")
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": _instance(ec2)}])
    unhealthy = _alb(elbv2, subnets, "unhealthy")
    tg = _target_group(elbv2, vpc, unhealthy, "unhealthy-tg")
    stopped = _instance(ec2)
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": stopped}])
    ec2.stop_instances(InstanceIds=[stopped])  # moto reports its target as "unused"
    network = _alb(elbv2, subnets, "nlb", lb_type="network")
    now = utcnow() + LATER
    _requests(seed("cloudwatch"), now, healthy, 500)

    findings = by_id(list(DETECTOR.detect(make_context(now=now), DETECTOR.parameters())))

    assert set(findings) == {_rid(no_groups), _rid(empty), _rid(unhealthy), _rid(network)}
    idle = findings[_rid(no_groups)]
    assert idle.resource_arn == no_groups
    assert idle.confidence == 90 and idle.risk is RiskLevel.LOW
    assert idle.safety_checks_passed
    assert idle.monthly_cost == Decimal("16.43")  # 0.0225 USD/hour x 730 = 16.425
    assert idle.details["lb_type"] == "application"
    assert any("no target group" in e for e in idle.evidence)
    assert any("no target registered" in e for e in findings[_rid(empty)].evidence)
    sick = findings[_rid(unhealthy)]
    assert sick.confidence == 60 and sick.risk is RiskLevel.MEDIUM
    assert any("none of 1 registered targets is healthy" in e for e in sick.evidence)
    assert findings[_rid(network)].details["lb_type"] == "network"
    assert findings[_rid(network)].monthly_cost == Decimal("16.43")


def test_an_internet_facing_load_balancer_costs_its_public_ipv4_addresses(seed, make_context):
    ec2, elbv2 = seed("ec2"), seed("elbv2")
    _, subnets = _network(ec2)
    public = elbv2.create_load_balancer(Name="public", Subnets=subnets, Scheme="internet-facing")
    internal = elbv2.create_load_balancer(Name="internal", Subnets=subnets, Scheme="internal")
    public_arn = public["LoadBalancers"][0]["LoadBalancerArn"]
    internal_arn = internal["LoadBalancers"][0]["LoadBalancerArn"]

    findings = by_id(list(DETECTOR.detect(make_context(), DETECTOR.parameters())))

    # Two zones, two nodes, two public IPv4 addresses: 0.0225 x 730 + 2 x 0.005 x 730 = 23.725.
    exposed = findings[_rid(public_arn)]
    assert len(exposed.details["availability_zones"]) == 2
    assert exposed.monthly_cost == Decimal("23.73")
    assert exposed.details["pricing"]["public_ipv4_addresses"] == 2
    assert any("2 public IPv4 address(es)" in e for e in exposed.evidence)
    # An internal load balancer holds no public address: its hourly charge alone.
    assert findings[_rid(internal_arn)].monthly_cost == Decimal("16.43")
    assert findings[_rid(internal_arn)].details["pricing"]["public_ipv4_addresses"] == 0


def test_protection_tag_and_deletion_protection_make_risk_high(seed, make_context):
    ec2, elbv2 = seed("ec2"), seed("elbv2")
    _, subnets = _network(ec2)
    tagged = _alb(elbv2, subnets, "tagged", tags={"do-not-delete": "true"})
    locked = _alb(elbv2, subnets, "locked")
    elbv2.modify_load_balancer_attributes(
        LoadBalancerArn=locked,
        Attributes=[{"Key": "deletion_protection.enabled", "Value": "true"}],
    )

    findings = by_id(list(DETECTOR.detect(make_context(), DETECTOR.parameters())))

    assert not check(findings[_rid(tagged)], "protection-tag")
    assert findings[_rid(tagged)].risk is RiskLevel.HIGH
    assert findings[_rid(tagged)].tags == {"do-not-delete": "true"}
    assert not check(findings[_rid(locked)], "deletion-protection")
    assert findings[_rid(locked)].risk is RiskLevel.HIGH


def test_classic_without_instances_is_idle_with_in_service_is_not(seed, make_context):
    ec2, elb = seed("ec2"), seed("elb")
    listeners = [{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}]
    zones = [f"{REGION}a"]
    elb.create_load_balancer(
        LoadBalancerName="lonely", Listeners=listeners, AvailabilityZones=zones
    )
    elb.create_load_balancer(LoadBalancerName="busy", Listeners=listeners, AvailabilityZones=zones)
    elb.register_instances_with_load_balancer(
        LoadBalancerName="busy", Instances=[{"InstanceId": _instance(ec2)}]
    )
    now = utcnow() + LATER
    _traffic(seed("cloudwatch"), now, "AWS/ELB", "RequestCount", ("LoadBalancerName", "busy"), 1000)

    findings = by_id(list(DETECTOR.detect(make_context(now=now), DETECTOR.parameters())))

    assert set(findings) == {"lonely"}
    lonely = findings["lonely"]
    assert lonely.resource_arn == (
        f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/lonely"
    )
    assert lonely.availability_zone == f"{REGION}a"
    # 0.025 USD/hour x 730, plus the public IPv4 address of its one zone: 0.005 x 730.
    assert lonely.monthly_cost == Decimal("21.90")
    assert lonely.details["pricing"]["public_ipv4_addresses"] == 1
    assert any("1 public IPv4 address" in e for e in lonely.evidence)
    assert lonely.details["lb_type"] == "classic"
    assert any("no instance is registered" in e for e in lonely.evidence)


def test_new_load_balancer_fails_the_age_check(seed, make_context):
    ec2, elbv2 = seed("ec2"), seed("elbv2")
    _, subnets = _network(ec2)
    _alb(elbv2, subnets, "fresh")

    (finding,) = DETECTOR.detect(make_context(now=utcnow()), DETECTOR.parameters())

    assert not check(finding, "recently-created")
    assert finding.confidence == 30
    assert finding.risk is RiskLevel.MEDIUM


def test_listings_follow_every_page(seed, make_context, recorder):
    ec2, elbv2, elb = seed("ec2"), seed("elbv2"), seed("elb")
    _, subnets = _network(ec2)
    arns = {_alb(elbv2, subnets, f"alb-{i}") for i in range(3)}
    listeners = [{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}]
    for i in range(3):
        elb.create_load_balancer(
            LoadBalancerName=f"clb-{i}", Listeners=listeners, AvailabilityZones=[f"{REGION}a"]
        )

    findings = list(DETECTOR.detect(make_context(page_size=1), DETECTOR.parameters()))

    assert {f.resource_arn for f in findings} >= arns
    assert len(findings) == 6
    v2_calls = recorder.calls(service="elbv2", operation="DescribeLoadBalancers")
    classic_calls = recorder.calls(service="elb", operation="DescribeLoadBalancers")
    assert len(v2_calls) == 3 and len(classic_calls) == 3
    assert all(c.params["PageSize"] == 1 for c in v2_calls + classic_calls)
    # Tags are fetched in one batch per API, not once per load balancer.
    assert recorder.count(service="elbv2", operation="DescribeTags") == 1
    assert recorder.count(service="elb", operation="DescribeTags") == 1


def _healthy_alb(ec2, elbv2, vpc, subnets, name):
    arn = _alb(elbv2, subnets, name)
    tg = _target_group(elbv2, vpc, arn, f"{name}-tg")
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": _instance(ec2)}])
    return arn


def test_healthy_targets_but_no_traffic_is_idle_and_missing_metrics_are_evidence_only(
    seed, make_context
):
    ec2, elbv2, cloudwatch = seed("ec2"), seed("elbv2"), seed("cloudwatch")
    vpc, subnets = _network(ec2)
    now = utcnow() + LATER
    quiet = _healthy_alb(ec2, elbv2, vpc, subnets, "quiet")
    _requests(cloudwatch, now, quiet, 3)  # 42 requests in 14 days: at most 100 is idle
    silent = _healthy_alb(ec2, elbv2, vpc, subnets, "silent")  # no datapoint at all
    busy = _healthy_alb(ec2, elbv2, vpc, subnets, "busy")
    _requests(cloudwatch, now, busy, 10)  # 140 requests

    findings = by_id(list(DETECTOR.detect(make_context(now=now), DETECTOR.parameters())))

    assert set(findings) == {_rid(quiet), _rid(silent)}
    idle = findings[_rid(quiet)]
    assert idle.confidence == 80 and idle.risk is RiskLevel.MEDIUM
    assert check(idle, "metrics-present")
    assert any("RequestCount 42 in 14 days (14 of 14 days" in e for e in idle.evidence)
    unknown = findings[_rid(silent)]
    assert unknown.confidence == 50
    assert not check(unknown, "metrics-present")
    assert any("no RequestCount datapoints in 14 days" in e for e in unknown.evidence)


def test_thresholds_and_lookback_are_parameters(seed, make_context, recorder):
    ec2, elbv2, cloudwatch = seed("ec2"), seed("elbv2"), seed("cloudwatch")
    vpc, subnets = _network(ec2)
    now = utcnow() + LATER
    quiet = _healthy_alb(ec2, elbv2, vpc, subnets, "quiet")
    _requests(cloudwatch, now, quiet, 3)
    nlb = _alb(elbv2, subnets, "bytes", lb_type="network")
    _traffic(cloudwatch, now, "AWS/NetworkELB", "ProcessedBytes", ("LoadBalancer", _rid(nlb)), 1000)
    params = DETECTOR.parameters(
        {"max_requests": 10, "max_processed_bytes": 20_000, "lookback_days": 7}
    )

    findings = by_id(list(DETECTOR.detect(make_context(now=now), params)))

    assert set(findings) == {_rid(nlb)}  # 7 000 bytes in 7 days; 21 requests are use
    assert any("ProcessedBytes 7,000 in 7 days" in e for e in findings[_rid(nlb)].evidence)
    # The sums over the 7 days settle the busy one; the idle one with traffic gets its days.
    window, daily = recorder.calls(operation="GetMetricData")
    for call in (window, daily):
        assert call.params["EndTime"] - call.params["StartTime"] == timedelta(days=7)
    assert len(window.params["MetricDataQueries"]) == 2
    assert len(daily.params["MetricDataQueries"]) == 1


def test_busy_load_balancers_cost_no_per_resource_call(seed, make_context, recorder):
    """Target health, instance health and attributes are read only for idle-looking ones; the
    traffic of all of them, ELBv2 and classic, comes in one GetMetricData call (sums over the
    lookback), and the daily series only of the idle one with datapoints in a second."""
    ec2, elbv2, elb, cloudwatch = seed("ec2"), seed("elbv2"), seed("elb"), seed("cloudwatch")
    vpc, subnets = _network(ec2)
    now = utcnow() + LATER
    for n in range(4):
        _requests(cloudwatch, now, _healthy_alb(ec2, elbv2, vpc, subnets, f"busy-{n}"), 1000)
    idle = _healthy_alb(ec2, elbv2, vpc, subnets, "idle")
    _requests(cloudwatch, now, idle, 0)
    listeners = [{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}]
    for n in range(3):
        name = f"classic-{n}"
        elb.create_load_balancer(
            LoadBalancerName=name, Listeners=listeners, AvailabilityZones=[f"{REGION}a"]
        )
        elb.register_instances_with_load_balancer(
            LoadBalancerName=name, Instances=[{"InstanceId": _instance(ec2)}]
        )
        _traffic(cloudwatch, now, "AWS/ELB", "RequestCount", ("LoadBalancerName", name), 1000)

    findings = list(DETECTOR.detect(make_context(now=now), DETECTOR.parameters()))

    assert [f.resource_id for f in findings] == [_rid(idle)]
    assert recorder.count(operation="DescribeTargetHealth") == 1
    assert recorder.count(operation="DescribeLoadBalancerAttributes") == 1
    assert recorder.count(operation="DescribeInstanceHealth") == 0
    assert recorder.count(operation="DescribeTargetGroups") == 1
    window, daily = recorder.calls(operation="GetMetricData")
    assert len(window.params["MetricDataQueries"]) == 5 + 2 * 3
    assert len(daily.params["MetricDataQueries"]) == 1
    assert recorder.count(service="elb", operation="DescribeTags") == 0


def test_target_groups_are_listed_only_once_a_load_balancer_looks_idle(
    seed, make_context, recorder
):
    """Issue 16: a region whose load balancers all carry traffic costs no DescribeTargetGroups."""
    ec2, elbv2, cloudwatch = seed("ec2"), seed("elbv2"), seed("cloudwatch")
    vpc, subnets = _network(ec2)
    now = utcnow() + LATER
    _requests(cloudwatch, now, _healthy_alb(ec2, elbv2, vpc, subnets, "busy"), 1000)

    assert list(DETECTOR.detect(make_context(now=now), DETECTOR.parameters())) == []
    assert recorder.count(operation="DescribeTargetGroups") == 0
    assert recorder.count(operation="DescribeLoadBalancerAttributes") == 0

    idle = _healthy_alb(ec2, elbv2, vpc, subnets, "idle")
    found = list(DETECTOR.detect(make_context(now=now), DETECTOR.parameters()))
    assert [f.resource_id for f in found] == [_rid(idle)]
    assert recorder.count(operation="DescribeTargetGroups") == 1
    assert found[0].details["target_groups"] == ["idle-tg"]
