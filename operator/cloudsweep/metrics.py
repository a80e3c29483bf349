"""CloudSweep's Prometheus metrics: a collector over the database, and per-process AWS call counters.

Called by the operator: at startup it calls ``start_metrics_server(port, store_url)`` and adds
``observe_aws_call`` as a listener of the ``aws.CallRecorder`` its sessions share. Tests and the
benchmark build a registry with ``build_registry`` and serve it with ``serve``.

Everything about waste, cleanups, scans and accounts is read from PostgreSQL on each scrape
(``store.metrics_queries``: five aggregate queries), so every replica and every restart exposes the
same values. Only the ``cloudsweep_aws_api_*`` counters live in the process: they count the calls
this process made since it started, as Prometheus counters usually do. Every metric, its labels
and their bounds: ``docs/metrics.md``.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from cloudsweep import domain
from cloudsweep.aws import budget as aws_budget
from cloudsweep.aws.errors import ErrorKind, kind_of_code
from cloudsweep.aws.recorder import CallRecord
from cloudsweep.store import metrics_queries

log = logging.getLogger(__name__)

PREFIX = "cloudsweep"
# The top-items gauge is the one metric with a resource ID label: at most this many per namespace.
TOP_ITEMS_PER_NAMESPACE = 20

WASTE_LABELS = ("namespace", "account", "region", "resource_type", "risk_level", "cleanup_status")
TOP_ITEM_LABELS = ("namespace", "account", "region", "resource_type", "resource_id")
PROTECTED_LABELS = ("namespace", "account", "region", "resource_type")
ACTION_LABELS = ("namespace", "account", "resource_type", "action", "result", "dry_run")
SAVINGS_LABELS = ("namespace", "account", "resource_type", "action")
ACCOUNT_LABELS = ("namespace", "account")
AWS_CALL_LABELS = ("service", "operation")

SCAN_OUTCOMES = tuple(
    status.value for status in domain.ScanStatus if status is not domain.ScanStatus.RUNNING
)
CONNECTION_STATES = tuple(state.value for state in domain.ConnectionStatus)


def _dollars(amount: Decimal) -> float:
    """Money becomes a float here, at the exposition boundary, and nowhere else."""
    return float(amount)


def _timestamp(moment: datetime) -> float:
    return moment.timestamp()


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _budget_counters() -> Iterator[Metric]:
    """This process's AWS requests through the shared budget, time waited, throttling answers."""
    requests, waited, throttled = aws_budget.STATS.snapshot()
    sent = CounterMetricFamily(
        f"{PREFIX}_aws_requests",
        "AWS requests this process sent through the shared request budget, by service.",
        labels=["service"],
    )
    wait = CounterMetricFamily(
        f"{PREFIX}_aws_budget_wait_seconds",
        "Seconds this process's AWS requests waited for the shared request budget.",
        labels=["service"],
    )
    slowed = CounterMetricFamily(
        f"{PREFIX}_aws_throttled_requests",
        "AWS answers that said to slow down (each halves the service's shared rate).",
        labels=["service"],
    )
    for service in sorted(set(requests) | set(throttled)):
        sent.add_metric([service], float(requests.get(service, 0)))
        wait.add_metric([service], waited.get(service, 0.0))
        slowed.add_metric([service], float(throttled.get(service, 0)))
    yield sent
    yield wait
    yield slowed


class CloudSweepCollector(Collector):
    """Reads the database on every ``collect()`` and yields CloudSweep's metric families.

    A database that cannot be read yields ``cloudsweep_database_up 0`` (and no other database
    metric) rather than failing the scrape, so the per-process metrics and the alert still get out.
    """

    def __init__(
        self,
        store_url: str,
        *,
        top_items: int = TOP_ITEMS_PER_NAMESPACE,
        now: Callable[[], datetime] = domain.utcnow,
    ) -> None:
        self._url = store_url
        self._top_items = top_items
        self._now = now

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        try:
            snapshot = metrics_queries.read_snapshot(
                self._url, top_n=self._top_items, now=self._now()
            )
        except Exception:
            log.exception("metrics: the database could not be read")
            snapshot = None
        up = GaugeMetricFamily(
            f"{PREFIX}_database_up",
            "1 if the last scrape read the database, 0 if it could not (database metrics missing).",
        )
        up.add_metric([], 1.0 if snapshot is not None else 0.0)
        yield up
        if snapshot is not None:
            yield from self._waste(snapshot)
            yield from self._cleanups(snapshot)
            yield from self._scans(snapshot)
            yield from self._accounts(snapshot)
        yield from _budget_counters()
        duration = GaugeMetricFamily(
            f"{PREFIX}_metrics_query_duration_seconds",
            "Time the last scrape spent reading the database.",
        )
        duration.add_metric([], time.perf_counter() - started)
        yield duration

    def _waste(self, snapshot: metrics_queries.MetricsSnapshot) -> Iterator[Metric]:
        items = GaugeMetricFamily(
            f"{PREFIX}_waste_items",
            "Wasted resources still out there (not seen gone by a full scan).",
            labels=WASTE_LABELS,
        )
        cost = GaugeMetricFamily(
            f"{PREFIX}_waste_monthly_cost_dollars",
            "Monthly cost of the wasted resources still out there, in US dollars.",
            labels=WASTE_LABELS,
        )
        protected_items = GaugeMetricFamily(
            f"{PREFIX}_protected_items",
            "Waste-shaped resources a protection tag excludes: shown, never counted as waste.",
            labels=PROTECTED_LABELS,
        )
        protected_cost = GaugeMetricFamily(
            f"{PREFIX}_protected_monthly_cost_dollars",
            "Monthly cost of the resources protection tags exclude from waste, in US dollars.",
            labels=PROTECTED_LABELS,
        )
        protected: dict[tuple[str, ...], tuple[int, Decimal]] = {}
        for group in snapshot.waste:
            if group.protected:
                key = (group.namespace, group.account, group.region, group.resource_type)
                count, total = protected.get(key, (0, Decimal(0)))
                protected[key] = (count + group.items, total + group.monthly_cost)
                continue
            labels = [
                group.namespace,
                group.account,
                group.region,
                group.resource_type,
                group.risk_level,
                group.cleanup_status,
            ]
            items.add_metric(labels, float(group.items))
            cost.add_metric(labels, _dollars(group.monthly_cost))
        top = GaugeMetricFamily(
            f"{PREFIX}_top_waste_item_monthly_cost_dollars",
            f"Monthly cost of each namespace's {self._top_items} most expensive wasted resources "
            "that are not cleaned yet, in US dollars (bounded: the only resource ID label).",
            labels=TOP_ITEM_LABELS,
        )
        for item in snapshot.top_items:
            top.add_metric(
                [item.namespace, item.account, item.region, item.resource_type, item.resource_id],
                _dollars(item.monthly_cost),
            )
        for group_labels, (count, total) in sorted(protected.items()):
            protected_items.add_metric(list(group_labels), float(count))
            protected_cost.add_metric(list(group_labels), _dollars(total))
        yield items
        yield cost
        yield protected_items
        yield protected_cost
        yield top

    def _cleanups(self, snapshot: metrics_queries.MetricsSnapshot) -> Iterator[Metric]:
        attempts = CounterMetricFamily(
            f"{PREFIX}_cleanup_actions",
            "Cleanup attempts in the audit trail, by action type, result and dry run.",
            labels=ACTION_LABELS,
        )
        estimated = GaugeMetricFamily(
            f"{PREFIX}_cleanup_estimated_monthly_savings_dollars",
            "Estimated monthly savings of successful real cleanups not rolled back, in US dollars.",
            labels=SAVINGS_LABELS,
        )
        actual = GaugeMetricFamily(
            f"{PREFIX}_cleanup_actual_monthly_savings_dollars",
            "Monthly savings of successful real cleanups that a later full scan confirmed, "
            "in US dollars.",
            labels=SAVINGS_LABELS,
        )
        last_failure = GaugeMetricFamily(
            f"{PREFIX}_cleanup_last_failure_timestamp_seconds",
            "When the latest real cleanup attempt that failed finished (Unix time).",
            labels=SAVINGS_LABELS,
        )
        for group in snapshot.actions:
            attempts.add_metric(
                [
                    group.namespace,
                    group.account,
                    group.resource_type,
                    group.action,
                    group.result,
                    _flag(group.dry_run),
                ],
                float(group.attempts),
            )
            key = [group.namespace, group.account, group.resource_type, group.action]
            real = not group.dry_run and group.action != domain.ActionType.ROLLBACK.value
            if real and group.result == domain.AttemptStatus.SUCCEEDED.value:
                estimated.add_metric(key, _dollars(group.estimated_monthly_savings))
                actual.add_metric(key, _dollars(group.actual_monthly_savings))
            if (
                not group.dry_run
                and group.result == domain.AttemptStatus.FAILED.value
                and group.last_at is not None
            ):
                last_failure.add_metric(key, _timestamp(group.last_at))
        yield attempts
        yield estimated
        yield actual
        yield last_failure

    def _scans(self, snapshot: metrics_queries.MetricsSnapshot) -> Iterator[Metric]:
        total = CounterMetricFamily(
            f"{PREFIX}_scans",
            "Finished scans kept in the database (12 months), by outcome.",
            labels=(*ACCOUNT_LABELS, "outcome"),
        )
        per_account: dict[tuple[str, str], tuple[list[int], Decimal]] = {}
        for group in snapshot.scans:
            total.add_metric([group.namespace, group.account, group.outcome], float(group.scans))
            if group.outcome not in (
                domain.ScanStatus.COMPLETED.value,
                domain.ScanStatus.PARTIAL.value,
            ):
                continue
            buckets, seconds = per_account.setdefault(
                (group.namespace, group.account),
                ([0] * len(group.window_buckets), Decimal(0)),
            )
            for index, count in enumerate(group.window_buckets):
                buckets[index] += count
            per_account[(group.namespace, group.account)] = (
                buckets,
                seconds + group.window_sum_seconds,
            )
        duration = HistogramMetricFamily(
            f"{PREFIX}_scan_duration_seconds",
            "Duration of the completed and partial scans that finished in the last 7 days "
            "(a sliding window: read it without rate()).",
            labels=ACCOUNT_LABELS,
        )
        bounds = [*(_bound(b) for b in metrics_queries.SCAN_DURATION_BUCKETS), "+Inf"]
        for (namespace, account), (buckets, seconds) in sorted(per_account.items()):
            duration.add_metric(
                [namespace, account],
                buckets=[
                    (bound, float(count)) for bound, count in zip(bounds, buckets, strict=True)
                ],
                sum_value=float(seconds),
            )
        yield total
        yield duration

    def _accounts(self, snapshot: metrics_queries.MetricsSnapshot) -> Iterator[Metric]:
        connection = GaugeMetricFamily(
            f"{PREFIX}_account_connection_state",
            "1 for the account's current connection state (pending, connected, failed), else 0.",
            labels=(*ACCOUNT_LABELS, "state"),
        )
        outcome = GaugeMetricFamily(
            f"{PREFIX}_last_scan_outcome",
            "1 for the outcome of the account's latest finished scan, 0 for the other outcomes.",
            labels=(*ACCOUNT_LABELS, "outcome"),
        )
        finished = GaugeMetricFamily(
            f"{PREFIX}_last_scan_timestamp_seconds",
            "When the account's latest finished scan (any outcome) finished (Unix time).",
            labels=ACCOUNT_LABELS,
        )
        successful = GaugeMetricFamily(
            f"{PREFIX}_last_successful_scan_timestamp_seconds",
            "When the account's latest completed scan finished (Unix time).",
            labels=ACCOUNT_LABELS,
        )
        for account in snapshot.accounts:
            labels = [account.namespace, account.account]
            for state in CONNECTION_STATES:
                connection.add_metric(
                    [*labels, state], 1.0 if account.connection_status == state else 0.0
                )
            if account.last_outcome is not None:
                for name in SCAN_OUTCOMES:
                    outcome.add_metric(
                        [*labels, name], 1.0 if account.last_outcome == name else 0.0
                    )
            if account.last_finished_at is not None:
                finished.add_metric(labels, _timestamp(account.last_finished_at))
            if account.last_successful_at is not None:
                successful.add_metric(labels, _timestamp(account.last_successful_at))
        yield connection
        yield outcome
        yield finished
        yield successful


def _bound(value: float) -> str:
    return str(float(value))


# --- per-process AWS call counters --------------------------------------------------------------

AWS_API_CALLS = Counter(
    f"{PREFIX}_aws_api_calls",
    "AWS API calls this process made (retries inside one call count once).",
    AWS_CALL_LABELS,
    registry=None,
)
AWS_API_ERRORS = Counter(
    f"{PREFIX}_aws_api_errors",
    "AWS API calls of this process that ended in an error, after botocore's retries.",
    AWS_CALL_LABELS,
    registry=None,
)
AWS_API_THROTTLES = Counter(
    f"{PREFIX}_aws_api_throttles",
    "AWS API calls of this process that ended throttled, after botocore's retries.",
    AWS_CALL_LABELS,
    registry=None,
)
AWS_API_RETRIES = Counter(
    f"{PREFIX}_aws_api_retries",
    "Retries botocore made inside this process's AWS API calls (throttling and transient errors).",
    AWS_CALL_LABELS,
    registry=None,
)
_AWS_COUNTERS = (AWS_API_CALLS, AWS_API_ERRORS, AWS_API_THROTTLES, AWS_API_RETRIES)


def observe_aws_call(record: CallRecord) -> None:
    """Count one finished AWS call; a ``CallRecorder`` listener (``recorder.add_listener``)."""
    labels = (record.service, record.operation)
    AWS_API_CALLS.labels(*labels).inc()
    if record.retries:
        AWS_API_RETRIES.labels(*labels).inc(record.retries)
    if record.outcome == "error":
        AWS_API_ERRORS.labels(*labels).inc()
        if record.error_code and kind_of_code(record.error_code) is ErrorKind.THROTTLED:
            AWS_API_THROTTLES.labels(*labels).inc()


# --- serving -------------------------------------------------------------------------------------


def build_registry(store_url: str, **collector_options: Any) -> CollectorRegistry:
    """A fresh registry with the database collector and the per-process AWS counters."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CloudSweepCollector(store_url, **collector_options))
    for counter in _AWS_COUNTERS:
        registry.register(counter)
    return registry


@dataclass
class MetricsServer:
    """A running ``/metrics`` HTTP server; ``port`` is the one bound (useful with port 0)."""

    port: int
    registry: CollectorRegistry
    _server: Any
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# (bearer token or None, path) -> (HTTP status, message): 200 serves the metrics. The operator
# passes Kubernetes' answer (handlers.metrics_access); this module knows nothing of Kubernetes.
Authorizer = Callable[[str | None, str], tuple[int, str]]
_REASONS = {401: "Unauthorized", 403: "Forbidden", 503: "Service Unavailable"}


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """One line per scrape on standard error would bury the operator's own log."""


def _guarded(app: Any, authorize: Authorizer) -> Any:
    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        header = str(environ.get("HTTP_AUTHORIZATION") or "")
        scheme, _, credentials = header.partition(" ")
        token = credentials.strip() if scheme.lower() == "bearer" else None
        status, message = authorize(token or None, str(environ.get("PATH_INFO") or "/"))
        if status != 200:
            headers = [("Content-Type", "text/plain; charset=utf-8")]
            if status == 401:
                headers.append(("WWW-Authenticate", 'Bearer realm="cloudsweep-metrics"'))
            start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
            return [(message + "\n").encode()]
        return app(environ, start_response)

    return guarded


def serve(
    port: int,
    store_url: str,
    *,
    addr: str = "0.0.0.0",
    authorize: Authorizer | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    **collector_options: Any,
) -> MetricsServer:
    """Serve a fresh registry over HTTP(S) in a daemon thread (``/metrics``, and any other path).

    With ``authorize`` every request is checked first (its bearer token); with ``certfile`` and
    ``keyfile`` it is served over TLS, so the token never crosses the network in clear text.
    """
    registry = build_registry(store_url, **collector_options)
    app = make_wsgi_app(registry)
    if authorize is not None:
        app = _guarded(app, authorize)
    server = make_server(addr, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    if certfile and keyfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certfile, keyfile)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="cloudsweep-metrics")
    thread.start()
    return MetricsServer(
        port=int(server.server_address[1]), registry=registry, _server=server, _thread=thread
    )


def start_metrics_server(
    port: int,
    store_url: str,
    *,
    authorize: Authorizer | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> None:
    """What the operator calls at startup: serve the metrics on 0.0.0.0:``port`` until exit."""
    serve(port, store_url, authorize=authorize, certfile=certfile, keyfile=keyfile)
    log.info(
        "metrics: serving on port %d (%s, %s)",
        port,
        "https" if certfile else "http",
        "authorized scrapes only" if authorize else "open to anyone who reaches the port",
    )


def label_names() -> Iterable[str]:
    """Every label name CloudSweep's metrics use (the bounded set ``docs/metrics.md`` lists)."""
    return sorted(
        {
            *WASTE_LABELS,
            *TOP_ITEM_LABELS,
            *ACTION_LABELS,
            *SAVINGS_LABELS,
            *ACCOUNT_LABELS,
            *AWS_CALL_LABELS,
            "outcome",
            "state",
        }
    )
