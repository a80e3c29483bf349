"""The whole-lookback first look (``MetricsReader.read_window``) changes no finding.

The load-balancer and ec2-instance detectors settle the resources with no datapoint, and those
over a threshold, from one value per query over the whole lookback, and read daily series only for
the rest. This runs each detector on one world twice: as it is, and with the first look made to
settle nothing (every resource then gets its daily series, as before the first look existed), and
asserts the same findings, at the thresholds' edges too.
"""

from __future__ import annotations

from cloudsweep.detectors import ec2_instance, load_balancer
from cloudsweep.detectors.metrics import MetricsReader
from cloudsweep.domain import utcnow

from .conftest import LATER, REGION
from .test_ec2_instance import _run, put_usage
from .test_load_balancer import _alb, _healthy_alb, _network, _requests, _traffic


def _detect_both_ways(detector, make_context, monkeypatch, now):
    params = detector.parameters()
    first_look = sorted(detector.detect(make_context(now=now), params), key=lambda f: f.resource_id)

    def settles_nothing(self, queries, *, now, lookback_days):
        return dict.fromkeys(queries, 0.0)  # a datapoint, under every threshold

    monkeypatch.setattr(MetricsReader, "read_window", settles_nothing)
    daily = sorted(detector.detect(make_context(now=now), params), key=lambda f: f.resource_id)
    return first_look, daily


def test_load_balancer_findings_are_those_of_daily_series(seed, make_context, monkeypatch):
    ec2, elbv2, elb, cloudwatch = seed("ec2"), seed("elbv2"), seed("elb"), seed("cloudwatch")
    vpc, subnets = _network(ec2)
    now = utcnow() + LATER
    _requests(cloudwatch, now, _healthy_alb(ec2, elbv2, vpc, subnets, "busy"), 1000)
    _requests(cloudwatch, now, _healthy_alb(ec2, elbv2, vpc, subnets, "at-limit"), 10, days=10)
    _requests(cloudwatch, now, _healthy_alb(ec2, elbv2, vpc, subnets, "over-limit"), 101, days=1)
    _requests(cloudwatch, now, _healthy_alb(ec2, elbv2, vpc, subnets, "quiet"), 1, days=3)
    _healthy_alb(ec2, elbv2, vpc, subnets, "no-metrics")
    _alb(elbv2, subnets, "no-targets")
    listeners = [{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}]
    for name, per_day in (("classic-busy", 500), ("classic-quiet", 2), ("classic-none", None)):
        elb.create_load_balancer(
            LoadBalancerName=name, Listeners=listeners, AvailabilityZones=[f"{REGION}a"]
        )
        if per_day is not None:
            _traffic(
                cloudwatch, now, "AWS/ELB", "RequestCount", ("LoadBalancerName", name), per_day
            )

    first_look, daily = _detect_both_ways(
        load_balancer.LoadBalancerDetector(), make_context, monkeypatch, now
    )

    assert len(first_look) == 6  # at-limit, quiet, no-metrics, no-targets, classic-quiet/none
    assert first_look == daily


def test_ec2_instance_findings_are_those_of_daily_series(seed, make_context, monkeypatch):
    ec2, cloudwatch = seed("ec2"), seed("cloudwatch")
    now = utcnow() + LATER
    put_usage(cloudwatch, _run(ec2), now, cpu=60)
    put_usage(cloudwatch, _run(ec2), now, cpu=5)  # at the threshold: idle
    put_usage(cloudwatch, _run(ec2), now, cpu=5.5, days=1)  # one day over it: busy
    put_usage(cloudwatch, _run(ec2), now, cpu=1, network_bytes=10**9)  # busy network
    put_usage(cloudwatch, _run(ec2), now, cpu=1, days=4)
    _run(ec2)  # no metrics

    first_look, daily = _detect_both_ways(
        ec2_instance.Ec2InstanceDetector(), make_context, monkeypatch, now
    )

    assert len(first_look) == 3
    assert first_look == daily
