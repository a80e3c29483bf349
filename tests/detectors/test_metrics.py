"""The batched CloudWatch reader (detectors.metrics) against moto over HTTP.

moto answers GetMetricData in one page; AWS pages large answers with NextToken. The paging test
splits moto's answer at the botocore event layer (``after-call``): the first answer keeps each
series' first value and gets a NextToken, the second (asked with the token) keeps the rest.
"""

from __future__ import annotations

from datetime import timedelta

from cloudsweep.detectors.metrics import MetricQuery
from cloudsweep.domain import utcnow

from .conftest import LATER


def _cpu(instance_id: str) -> MetricQuery:
    return MetricQuery("AWS/EC2", "CPUUtilization", (("InstanceId", instance_id),), "Maximum")


def _put(cloudwatch, instance_id, now, values):
    cloudwatch.put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                "Value": value,
                "Timestamp": now - timedelta(days=day, hours=1),
            }
            for day, value in enumerate(values)
        ],
    )


def test_series_of_many_resources_in_batches_of_500_and_cached(seed, make_context, recorder):
    now = utcnow() + LATER
    _put(seed("cloudwatch"), "i-0000000000000001", now, [3.0, 7.5, 1.0])
    ctx = make_context(now=now)
    queries = [_cpu(f"i-{n:016x}") for n in range(1, 1102)]

    series = ctx.inventory.metric_series(queries, now=now, lookback_days=14)
    again = ctx.inventory.metric_series(queries[:10], now=now, lookback_days=14)

    calls = recorder.calls(operation="GetMetricData")
    assert [len(c.params["MetricDataQueries"]) for c in calls] == [500, 500, 101]
    assert again[queries[0]] is series[queries[0]]  # cached: no fourth call
    first = series[queries[0]]
    assert sorted(first.values) == [1.0, 3.0, 7.5] and first.peak == 7.5
    assert first.coverage() == "3 of 14 days" and not first.complete
    assert series[queries[1]].missing
    assert calls[0].params["EndTime"] - calls[0].params["StartTime"] == timedelta(days=14)
    query = calls[0].params["MetricDataQueries"][0]
    assert query["MetricStat"]["Period"] == 86400 and query["MetricStat"]["Stat"] == "Maximum"


def test_next_token_pages_are_followed_and_merged(seed, make_context, recorder, account_session):
    now = utcnow() + LATER
    _put(seed("cloudwatch"), "i-00000000000000aa", now, [2.0, 4.0, 6.0])
    ctx = make_context(now=now)
    pages = []

    def split(parsed, **_):
        if not pages:
            for result in parsed.get("MetricDataResults", []):
                result["Values"] = result.get("Values", [])[:1]
            parsed["NextToken"] = "page-2"
        else:
            for result in parsed.get("MetricDataResults", []):
                result["Values"] = result.get("Values", [])[1:]
        pages.append(parsed.get("NextToken"))

    ctx.client("cloudwatch").meta.events.register("after-call.cloudwatch.GetMetricData", split)

    series = ctx.inventory.metric_series([_cpu("i-00000000000000aa")], now=now, lookback_days=7)

    calls = recorder.calls(operation="GetMetricData")
    assert len(calls) == 2 and calls[1].params["NextToken"] == "page-2"
    assert sorted(series[_cpu("i-00000000000000aa")].values) == [2.0, 4.0, 6.0]
