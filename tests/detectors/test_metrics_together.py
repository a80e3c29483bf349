"""Every idleness detector's metrics of a region read together (``MetricsReader.read_together``,
which the scan runs before the region's detectors): fewer calls, and the same findings.

One world with instances, load balancers and NAT gateways; the detectors' declared needs are read
together, then each detector runs on that context (its reads come from the cache) and on a fresh
one (its own reads, as without the step): the findings must be equal.
"""

from __future__ import annotations

import pytest

from cloudsweep.aws import errors
from cloudsweep.detectors import ec2_instance, load_balancer, nat_gateway
from cloudsweep.domain import utcnow

from .. import faults
from .conftest import LATER
from .test_ec2_instance import _run, put_usage
from .test_load_balancer import _healthy_alb, _network, _requests
from .test_nat_gateway import make_nat, put_bytes

DETECTORS = (
    ec2_instance.Ec2InstanceDetector(),
    load_balancer.LoadBalancerDetector(),
    nat_gateway.NatGatewayDetector(),
)


def _world(seed, now):
    ec2, elbv2, cloudwatch = seed("ec2"), seed("elbv2"), seed("cloudwatch")
    put_usage(cloudwatch, _run(ec2), now, cpu=60)  # settled by the first look: busy
    put_usage(cloudwatch, _run(ec2), now, cpu=1, days=4)  # needs its daily series
    _run(ec2)  # settled by the first look: no metrics
    vpc, subnets = _network(ec2)
    _requests(cloudwatch, now, _healthy_alb(ec2, elbv2, vpc, subnets, "busy"), 1000)
    _requests(cloudwatch, now, _healthy_alb(ec2, elbv2, vpc, subnets, "quiet"), 1, days=3)
    nat, _ = make_nat(ec2)
    put_bytes(cloudwatch, nat, now, 0, days=5)


def _findings(ctx, detector, params):
    return sorted(detector.detect(ctx, params), key=lambda f: f.resource_id)


def test_one_first_look_then_one_batch_of_daily_series_and_the_same_findings(
    seed, make_context, recorder
):
    now = utcnow() + LATER
    _world(seed, now)
    ctx = make_context(now=now)
    selected = [(detector, detector.parameters()) for detector in DETECTORS]

    ctx.inventory.read_metrics_together(
        [detector.metric_needs(ctx, params) for detector, params in selected], now=now
    )

    first, later = recorder.calls(operation="GetMetricData")
    asked = [
        (q["MetricStat"]["Metric"]["Namespace"], q["MetricStat"]["Period"])
        for q in first.params["MetricDataQueries"]
    ]
    # The first looks (one period of 14 days) and the NAT gateway's daily series in one call.
    assert {("AWS/EC2", 14 * 86400), ("AWS/ApplicationELB", 14 * 86400)} < set(asked)
    assert ("AWS/NATGateway", 86400) in asked
    # Then the daily series of both detectors' unsettled resources, in one call: the quiet
    # instance (CPU and network) and the quiet load balancer.
    assert sorted(
        q["MetricStat"]["Metric"]["Namespace"] for q in later.params["MetricDataQueries"]
    ) == ["AWS/ApplicationELB", "AWS/EC2", "AWS/EC2", "AWS/EC2"]

    together = [_findings(ctx, detector, params) for detector, params in selected]
    assert recorder.count(operation="GetMetricData") == 2  # the detectors read the cache

    alone = [_findings(make_context(now=now), detector, params) for detector, params in selected]
    assert recorder.count(operation="GetMetricData") > 2
    assert together == alone
    # Instances: the quiet one, and three without metrics (one, and the two load balancers'
    # targets); the quiet load balancer; the NAT gateway.
    assert [len(found) for found in together] == [4, 1, 1]


def test_detectors_with_different_lookbacks_are_read_in_a_group_each(seed, make_context, recorder):
    """GetMetricData has one StartTime a call: a 7-day and a 14-day lookback are two groups."""
    now = utcnow() + LATER
    _world(seed, now)
    ctx = make_context(now=now)
    ec2_params = DETECTORS[0].parameters({"lookback_days": 7})
    nat_params = DETECTORS[2].parameters()

    ctx.inventory.read_metrics_together(
        [
            DETECTORS[0].metric_needs(ctx, ec2_params),
            DETECTORS[2].metric_needs(ctx, nat_params),
        ],
        now=now,
    )

    calls = recorder.calls(operation="GetMetricData")
    spans = [(c.params["EndTime"] - c.params["StartTime"]).days for c in calls]
    assert spans == [7, 7, 14]  # the instances' first look, their daily series; the NAT's
    before = len(calls)
    assert _findings(ctx, DETECTORS[0], ec2_params) == _findings(
        make_context(now=now), DETECTORS[0], ec2_params
    )
    assert recorder.count(operation="GetMetricData") == before + 2  # only the fresh context's


def test_a_failed_shared_read_is_not_asked_again_by_each_detector(
    seed, make_context, account_session
):
    """Issue 16: the shared read was throttled (every botocore attempt): each detector then
    fails with that error, as for a failed listing, without a GetMetricData call of its own."""
    now = utcnow() + LATER
    _world(seed, now)
    ctx = make_context(now=now)
    selected = [(detector, detector.parameters()) for detector in DETECTORS]
    injected = faults.throttle_json(account_session.events, "cloudwatch", "GetMetricData")
    needs = [detector.metric_needs(ctx, params) for detector, params in selected]

    with pytest.raises(errors.AwsError) as shared:
        ctx.inventory.read_metrics_together(needs, now=now)
    attempts = injected.hits
    assert attempts >= 1

    for detector, params in selected:
        with pytest.raises(errors.AwsError) as own:
            _findings(ctx, detector, params)
        assert own.value is shared.value, detector.name
    assert injected.hits == attempts  # not one more attempt
