"""CloudWatch metrics of many resources in few calls: the one reader every idleness judgement uses.

Held by ``detectors.inventory.Inventory`` (one per account and region) and called by the detectors
that judge idleness from traffic (``ec2-instance``, ``nat-gateway``, ``load-balancer``,
``rds-instance``) through ``Inventory.metric_series``. ``GetMetricData`` takes up to 500 queries a
call, so the metrics of N resources cost ``ceil(queries / 500)`` calls (per detector that asks),
plus a page per ``NextToken`` when AWS splits a large answer.

Every series is daily (``Period`` one day): a detector sees how many of the lookback's days have
a datapoint, which is how a finding tells "idle" (datapoints, all small) from "no metrics"
(missing datapoints are evidence, not proof).

``read_window`` is the cheap first look: one value per query over the whole lookback (one period
as long as the lookback, the same statistic). It settles most resources without daily series:
no datapoint in the window is no datapoint on any day (the same window), and a window sum or
maximum over the idle threshold is a busy resource, whatever its days were. The detectors read
daily series only for the rest (``load-balancer``, ``ec2-instance``): fewer metrics requested
(CloudWatch bills per metric), fewer datapoints returned, and the same findings.

``read_together`` reads what every idleness detector of a region will ask for (each declares it
as ``MetricNeeds`` through ``Detector.metric_needs``) before they run, so a region costs
``ceil(first-look queries / 500)`` calls, then ``ceil(daily series the first look did not
settle / 500)``, not a batch per detector; the detectors' own reads then come from the cache.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cloudsweep.aws import errors

MAX_QUERIES_PER_CALL = 500  # GetMetricData's documented limit of MetricDataQueries
DAY_SECONDS = 86400
_WINDOW, _SERIES = "window", "series"  # the two kinds of read of one query


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """One statistic of one metric of one resource, daily over a lookback.

    Example: ``MetricQuery("AWS/EC2", "CPUUtilization", (("InstanceId", "i-0abc"),), "Maximum")``.
    """

    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str  # Sum, Maximum, Average, Minimum, SampleCount

    def request(self, query_id: str, period: int = DAY_SECONDS) -> dict[str, Any]:
        return {
            "Id": query_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": self.namespace,
                    "MetricName": self.metric,
                    "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
                },
                "Period": period,
                "Stat": self.stat,
            },
            "ReturnData": True,
        }


@dataclass(frozen=True, slots=True)
class MetricSeries:
    """The daily values of one query over the lookback (one per day that had data)."""

    query: MetricQuery
    lookback_days: int
    values: tuple[float, ...] = field(default=())

    @property
    def datapoints(self) -> int:
        return len(self.values)

    @property
    def missing(self) -> bool:
        return not self.values

    @property
    def complete(self) -> bool:
        """A datapoint for (nearly) every day: one day short is the partial day at the edge."""
        return len(self.values) >= self.lookback_days - 1

    @property
    def peak(self) -> float:
        return max(self.values, default=0.0)

    @property
    def total(self) -> float:
        return float(sum(self.values))

    def coverage(self) -> str:
        """``"12 of 14 days"``: for a finding's evidence."""
        return f"{self.datapoints} of {self.lookback_days} days"


@dataclass(frozen=True, slots=True)
class MetricNeeds:
    """What one detector will read from CloudWatch in a region, declared before it runs.

    ``first_look``: whole-lookback values (``read_window``); ``series``: daily series needed
    whatever the first look says; ``after_first_look``: the daily series still needed once the
    first look's values are known (the resources it did not settle).
    """

    lookback_days: int
    first_look: tuple[MetricQuery, ...] = ()
    series: tuple[MetricQuery, ...] = ()
    after_first_look: (
        Callable[[Mapping[MetricQuery, float | None]], Sequence[MetricQuery]] | None
    ) = None


class MetricsReader:
    """Batched, cached ``GetMetricData`` for one account and region.

    Example::

        reader = MetricsReader(client, region="eu-west-1")
        cpu = MetricQuery("AWS/EC2", "CPUUtilization", (("InstanceId", "i-0abc"),), "Maximum")
        series = reader.read([cpu], now=now, lookback_days=14)
        series[cpu].peak, series[cpu].coverage()

    A query asked for twice (same window) is fetched once. A failed call raises
    ``aws.errors.AwsError``; the caller decides (the detectors let the region's detector fail, as
    for any unreadable listing). The failure is remembered for every query that call and the
    batches after it would have read, as the inventory remembers a failed listing: a later read
    of any of them raises the same error without a call, so a region whose shared read was
    throttled (botocore's retries spent) is not asked again once per detector.
    """

    def __init__(self, client: Callable[[str], Any], *, region: str) -> None:
        self._client = client
        self.region = region
        self._lock = threading.Lock()
        self._cache: dict[tuple[MetricQuery, datetime, int], MetricSeries] = {}
        self._windows: dict[tuple[MetricQuery, datetime, int], float | None] = {}
        # (query, end, lookback, period kind) -> the error of the read that should have got it
        self._failed: dict[tuple[MetricQuery, datetime, int, str], errors.AwsError] = {}
        self.calls = 0  # GetMetricData calls made, pages included
        self.queries = 0  # distinct queries sent

    def read(
        self, queries: Sequence[MetricQuery], *, now: datetime, lookback_days: int
    ) -> dict[MetricQuery, MetricSeries]:
        # Whole minutes: CloudWatch aligns windows to the period; the same ``now`` gives the same
        # window (and cache key) to every detector of a scan.
        end = now.replace(second=0, microsecond=0)
        wanted = list(dict.fromkeys(queries))
        out: dict[MetricQuery, MetricSeries] = {}
        missing: list[MetricQuery] = []
        with self._lock:
            for query in wanted:
                cached = self._cache.get((query, end, lookback_days))
                if cached is None:
                    missing.append(query)
                else:
                    out[query] = cached
        self._raise_failed(missing, end, lookback_days, _SERIES)
        for start in range(0, len(missing), MAX_QUERIES_PER_CALL):
            batch = missing[start : start + MAX_QUERIES_PER_CALL]
            with self._remember_failure(missing[start:], end, lookback_days, _SERIES):
                fetched = self._fetch(batch, end, lookback_days)
            with self._lock:
                for query, series in fetched.items():
                    self._cache[(query, end, lookback_days)] = series
                    out[query] = series
        return out

    def read_window(
        self, queries: Sequence[MetricQuery], *, now: datetime, lookback_days: int
    ) -> dict[MetricQuery, float | None]:
        """Each query's statistic over the whole lookback, or None when it has no datapoint.

        Only for statistics that a whole window gives exactly (Sum, Maximum, Minimum,
        SampleCount): an average of the window is not the average of any day.
        """
        end = now.replace(second=0, microsecond=0)
        for query in queries:
            if query.stat not in _WINDOW_STATS:
                raise ValueError(f"{query.stat} over a whole window is not a daily figure")
        wanted = list(dict.fromkeys(queries))
        out: dict[MetricQuery, float | None] = {}
        missing: list[MetricQuery] = []
        with self._lock:
            for query in wanted:
                key = (query, end, lookback_days)
                if key in self._windows:
                    out[query] = self._windows[key]
                else:
                    missing.append(query)
        self._raise_failed(missing, end, lookback_days, _WINDOW)
        for start in range(0, len(missing), MAX_QUERIES_PER_CALL):
            batch = missing[start : start + MAX_QUERIES_PER_CALL]
            with self._remember_failure(missing[start:], end, lookback_days, _WINDOW):
                fetched = self._fetch_values(batch, end, lookback_days, lookback_days * DAY_SECONDS)
            with self._lock:
                for query, values in fetched.items():
                    value = _window_value(query, values)
                    self._windows[(query, end, lookback_days)] = value
                    out[query] = value
        return out

    def read_together(self, needs: Sequence[MetricNeeds], *, now: datetime) -> None:
        """Read every detector's metrics of the region together, into the cache.

        GetMetricData takes one StartTime / EndTime a call, so the needs are grouped by lookback
        (the defaults all share 14 days: one group). Grouping, not reading the longest lookback
        and slicing, because a first-look value is one period as long as its own lookback and a
        daily series counts its own days: the same request a detector would send, so its
        findings cannot change. Within a group, the first looks and the daily series that do not
        depend on them share the batches (``Period`` is per query); then one set of batches
        for the daily series of what the first looks did not settle.
        """
        end = now.replace(second=0, microsecond=0)
        for lookback_days in sorted({need.lookback_days for need in needs}):
            group = [need for need in needs if need.lookback_days == lookback_days]
            windows = [q for need in group for q in need.first_look]
            series = [q for need in group for q in need.series]
            self._read_first(windows, series, end, lookback_days)
            with self._lock:
                values = {q: self._windows[(q, end, lookback_days)] for q in windows}
            later = [
                q
                for need in group
                if need.after_first_look is not None
                for q in need.after_first_look(values)
            ]
            if later:
                self.read(later, now=now, lookback_days=lookback_days)

    def _read_first(
        self,
        windows: Sequence[MetricQuery],
        series: Sequence[MetricQuery],
        end: datetime,
        lookback_days: int,
    ) -> None:
        """Uncached first-look values and daily series, packed together 500 queries a call."""
        for query in windows:
            if query.stat not in _WINDOW_STATS:
                raise ValueError(f"{query.stat} over a whole window is not a daily figure")
        with self._lock:
            wanted = [
                (q, lookback_days * DAY_SECONDS)
                for q in dict.fromkeys(windows)
                if (q, end, lookback_days) not in self._windows
            ] + [
                (q, DAY_SECONDS)
                for q in dict.fromkeys(series)
                if (q, end, lookback_days) not in self._cache
            ]
        for start in range(0, len(wanted), MAX_QUERIES_PER_CALL):
            batch = wanted[start : start + MAX_QUERIES_PER_CALL]
            try:
                fetched = self._fetch_periods(batch, end, lookback_days)
            except errors.AwsError as error:
                with self._lock:
                    for query, period in wanted[start:]:
                        kind = _SERIES if period == DAY_SECONDS else _WINDOW
                        self._failed[(query, end, lookback_days, kind)] = error
                raise
            with self._lock:
                for (query, period), values in zip(batch, fetched, strict=True):
                    key = (query, end, lookback_days)
                    if period == DAY_SECONDS:
                        self._cache[key] = MetricSeries(query, lookback_days, tuple(values))
                    else:
                        self._windows[key] = _window_value(query, values)

    def distinct_series(self) -> dict[int, int]:
        """Lookback days -> distinct metric series read (a query asked over the whole window and
        daily counts once: a daily series also gives the window's value)."""
        with self._lock:
            keys = {(q, days) for q, _, days in self._windows} | {
                (q, days) for q, _, days in self._cache
            }
        counts: dict[int, int] = {}
        for _, days in keys:
            counts[days] = counts.get(days, 0) + 1
        return counts

    def _raise_failed(
        self, queries: Sequence[MetricQuery], end: datetime, lookback_days: int, kind: str
    ) -> None:
        with self._lock:
            for query in queries:
                error = self._failed.get((query, end, lookback_days, kind))
                if error is not None:
                    raise error

    @contextmanager
    def _remember_failure(
        self, queries: Sequence[MetricQuery], end: datetime, lookback_days: int, kind: str
    ) -> Iterator[None]:
        """On a failed call, remember its error for ``queries`` (its batch and those after)."""
        try:
            yield
        except errors.AwsError as error:
            with self._lock:
                for query in queries:
                    self._failed[(query, end, lookback_days, kind)] = error
            raise

    def _fetch(
        self, batch: Sequence[MetricQuery], end: datetime, lookback_days: int
    ) -> dict[MetricQuery, MetricSeries]:
        values = self._fetch_values(batch, end, lookback_days, DAY_SECONDS)
        return {
            query: MetricSeries(query, lookback_days, tuple(found))
            for query, found in values.items()
        }

    def _fetch_values(
        self, batch: Sequence[MetricQuery], end: datetime, lookback_days: int, period: int
    ) -> dict[MetricQuery, list[float]]:
        fetched = self._fetch_periods([(q, period) for q in batch], end, lookback_days)
        return dict(zip(batch, fetched, strict=True))

    def _fetch_periods(
        self, batch: Sequence[tuple[MetricQuery, int]], end: datetime, lookback_days: int
    ) -> list[list[float]]:
        """The values of each (query, period), in order: one call (and its pages)."""
        by_id = {f"m{i}": asked for i, asked in enumerate(batch)}
        values: dict[str, list[float]] = {query_id: [] for query_id in by_id}
        request: dict[str, Any] = {
            "MetricDataQueries": [
                query.request(query_id, period) for query_id, (query, period) in by_id.items()
            ],
            "StartTime": end - timedelta(days=lookback_days),
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }
        client = self._client("cloudwatch")
        while True:
            with errors.translated("cloudwatch", "GetMetricData", self.region):
                response = client.get_metric_data(**request)
            with self._lock:
                self.calls += 1
            for result in response.get("MetricDataResults", []):
                if result.get("Id") in values:
                    values[result["Id"]].extend(float(v) for v in result.get("Values", []))
            token = response.get("NextToken")
            if not token:
                break
            request["NextToken"] = token
        with self._lock:
            self.queries += len(batch)
        return [values[query_id] for query_id in by_id]


# How the values of sub-periods make the whole window's value, per statistic.
_WINDOW_STATS: dict[str, Callable[[list[float]], float]] = {
    "Sum": lambda values: float(sum(values)),
    "SampleCount": lambda values: float(sum(values)),
    "Maximum": max,
    "Minimum": min,
}


def _window_value(query: MetricQuery, values: list[float]) -> float | None:
    # One period, but a server may cut it at the window's edges: combine.
    return _WINDOW_STATS[query.stat](values) if values else None
