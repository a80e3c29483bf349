"""The collector's values on hand-built data in a real PostgreSQL, and its label bounds."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry

from cloudsweep import domain, metrics
from cloudsweep.aws.recorder import CallRecorder
from cloudsweep.store import FindingFilter, Intent, ScanRecord, Store

from .. import faults
from .conftest import named, samples, value

A, B, C = "111111111111", "222222222222", "333333333333"
NOW = datetime.now(UTC).replace(microsecond=0)


def _finding(kind: str, rid: str, region: str, cost: str, risk: domain.RiskLevel) -> domain.Finding:
    return domain.Finding(
        resource_type=kind,
        resource_id=rid,
        region=region,
        monthly_cost=Decimal(cost),
        confidence=90,
        risk=risk,
    )


def _scan(
    store: Store,
    account: uuid.UUID,
    started: datetime,
    seconds: float,
    status: domain.ScanStatus,
    found: list[domain.Finding],
) -> ScanRecord:
    scan = store.open_scan(
        account, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=started
    )
    if found:
        store.upsert_findings(scan, found, seen_at=started)
    return store.close_scan(
        scan,
        status=status,
        completed_at=started + timedelta(seconds=seconds),
        resources_scanned=len(found),
    )


def _intent(item: uuid.UUID, action: domain.ActionType, cost: str, *, dry_run: bool) -> Intent:
    return Intent(
        item_id=item,
        run_id=None,
        action=action.value,
        action_type=action,
        description="test",
        method=domain.ExecutionMethod.MANUAL,
        executed_by=None,
        policy_name="p",
        decision_reason="test",
        rollback_possible=False,
        estimated_monthly_savings=Decimal(cost),
        dry_run=dry_run,
    )


@pytest.fixture
def world(database_url: str) -> dict[str, object]:
    """Two namespaces, three accounts (one deleted), scans, a dry run, a success and a failure."""
    store = Store(database_url)
    team_a = store.ensure_organization("team-a")
    team_b = store.ensure_organization("team-b")

    def register(org: uuid.UUID, account_id: str) -> uuid.UUID:
        return store.register_account(
            org,
            account_id=account_id,
            role_arn=f"arn:aws:iam::{account_id}:role/r",
            external_id=None,
            regions=["us-east-1", "eu-west-1"],
        ).id

    a, b, c = register(team_a.id, A), register(team_b.id, B), register(team_a.id, C)
    low, medium, safe = domain.RiskLevel.LOW, domain.RiskLevel.MEDIUM, domain.RiskLevel.SAFE
    a_items = [
        _finding("ebs-volume", "vol-1", "us-east-1", "10.50", low),
        _finding("ebs-volume", "vol-2", "us-east-1", "4.25", low),
        _finding("ebs-volume", "vol-3", "eu-west-1", "7.00", medium),
        _finding("elastic-ip", "eip-1", "us-east-1", "3.60", safe),
    ]
    t0 = NOW - timedelta(hours=3)
    _scan(store, a, t0, 30, domain.ScanStatus.COMPLETED, a_items)
    b_items = [
        _finding("ebs-snapshot", "snap-1", "us-east-1", "1.10", low),
        _finding("ebs-snapshot", "snap-2", "us-east-1", "0.90", low),
    ]
    b_ok = _scan(store, b, t0, 2, domain.ScanStatus.COMPLETED, b_items)
    _scan(store, b, t0 + timedelta(hours=1), 0.5, domain.ScanStatus.FAILED, [])
    # Old scans count in scans_total but not in the 7-day duration histogram.
    _scan(store, b, NOW - timedelta(days=30), 4000, domain.ScanStatus.COMPLETED, [])
    _scan(
        store,
        c,
        t0,
        1,
        domain.ScanStatus.COMPLETED,
        [_finding("ebs-volume", "vol-c", "us-east-1", "99.00", low)],
    )
    store.mark_account_deleted(c, NOW)
    store.set_connection(a, domain.ConnectionStatus.CONNECTED)
    store.set_connection(b, domain.ConnectionStatus.FAILED, "AccessDenied")

    ids = {i.resource_id: i.id for i in store.findings(FindingFilter("team-a"))}
    t1 = t0 + timedelta(minutes=30)
    store.record_dry_run(
        _intent(ids["vol-2"], domain.ActionType.DELETE, "4.25", dry_run=True),
        would_succeed=True,
        message="ok",
        response={},
        now=t1,
    )
    released = store.claim(
        _intent(ids["eip-1"], domain.ActionType.RELEASE, "3.60", dry_run=False),
        allowed=["pending", "approved"],
        now=t1,
    )
    assert released is not None
    store.finish(
        released,
        status=domain.AttemptStatus.SUCCEEDED,
        now=t1,
        item_status=domain.CleanupStatus.CLEANED,
    )
    failed = store.claim(
        _intent(ids["vol-3"], domain.ActionType.DELETE, "7.00", dry_run=False),
        allowed=["pending", "approved"],
        now=t1,
    )
    assert failed is not None
    failed_at = t1 + timedelta(seconds=5)
    store.finish(
        failed,
        status=domain.AttemptStatus.FAILED,
        now=failed_at,
        error="boom",
        item_status=domain.CleanupStatus.FAILED,
    )
    # The next full scan no longer sees the released address: gone, and its savings confirmed.
    t2 = t0 + timedelta(hours=1)
    second = _scan(store, a, t2, 10, domain.ScanStatus.COMPLETED, a_items[:3])
    store.close_unseen(second, regions=["us-east-1"], resource_types=["elastic-ip"], now=t2)
    assert store.confirm_savings(a) == 1
    return {"url": database_url, "failed_at": failed_at, "a_done": second, "b_ok": b_ok}


def _collect(url: str, **options: object) -> dict:
    return samples(metrics.CloudSweepCollector(url, **options).collect())  # type: ignore[arg-type]


def test_waste_gauges_sum_current_items_per_label_set(world) -> None:
    found = _collect(world["url"])
    assert value(found, "cloudsweep_database_up") == 1
    items = named(found, "cloudsweep_waste_items")
    cost = named(found, "cloudsweep_waste_monthly_cost_dollars")
    base = {"namespace": "team-a", "account": A, "region": "us-east-1"}
    pending_volumes = frozenset(
        {
            **base,
            "resource_type": "ebs-volume",
            "risk_level": "low",
            "cleanup_status": "pending",
        }.items()
    )
    failed_volume = frozenset(
        {
            **base,
            "region": "eu-west-1",
            "resource_type": "ebs-volume",
            "risk_level": "medium",
            "cleanup_status": "failed",
        }.items()
    )
    snapshots = frozenset(
        {
            "namespace": "team-b",
            "account": B,
            "region": "us-east-1",
            "resource_type": "ebs-snapshot",
            "risk_level": "low",
            "cleanup_status": "pending",
        }.items()
    )
    # eip-1 is gone and account C is deleted: neither is current waste.
    assert items == {pending_volumes: 2, failed_volume: 1, snapshots: 2}
    assert cost == pytest.approx({pending_volumes: 14.75, failed_volume: 7.0, snapshots: 2.0})


def test_top_items_are_bounded_per_namespace_and_skip_cleaned_and_gone(world) -> None:
    top = named(
        _collect(world["url"], top_items=2), "cloudsweep_top_waste_item_monthly_cost_dollars"
    )
    by_id = {dict(labels)["resource_id"]: v for labels, v in top.items()}
    assert by_id == {"vol-1": 10.5, "vol-3": 7.0, "snap-1": 1.1, "snap-2": 0.9}
    assert dict(next(k for k in top if dict(k)["resource_id"] == "vol-1")) == {
        "namespace": "team-a",
        "account": A,
        "region": "us-east-1",
        "resource_type": "ebs-volume",
        "resource_id": "vol-1",
    }


def test_cleanup_counters_savings_and_last_failure(world) -> None:
    found = _collect(world["url"])
    actions = named(found, "cloudsweep_cleanup_actions_total")
    as_dicts = sorted((tuple(sorted(dict(k).items())), v) for k, v in actions.items())
    key = {"namespace": "team-a", "account": A}
    expected = [
        (
            {
                **key,
                "resource_type": "ebs-volume",
                "action": "delete",
                "result": "succeeded",
                "dry_run": "true",
            },
            1.0,
        ),
        (
            {
                **key,
                "resource_type": "elastic-ip",
                "action": "release",
                "result": "succeeded",
                "dry_run": "false",
            },
            1.0,
        ),
        (
            {
                **key,
                "resource_type": "ebs-volume",
                "action": "delete",
                "result": "failed",
                "dry_run": "false",
            },
            1.0,
        ),
    ]
    assert as_dicts == sorted((tuple(sorted(d.items())), v) for d, v in expected)
    release = {**key, "resource_type": "elastic-ip", "action": "release"}
    assert value(
        found, "cloudsweep_cleanup_estimated_monthly_savings_dollars", **release
    ) == pytest.approx(3.6)
    assert value(
        found, "cloudsweep_cleanup_actual_monthly_savings_dollars", **release
    ) == pytest.approx(3.6)
    # A dry run saves nothing, and neither does a failure.
    assert len(named(found, "cloudsweep_cleanup_estimated_monthly_savings_dollars")) == 1
    failure = named(found, "cloudsweep_cleanup_last_failure_timestamp_seconds")
    assert failure == {
        frozenset({**key, "resource_type": "ebs-volume", "action": "delete"}.items()): world[
            "failed_at"
        ].timestamp()
    }


def test_scan_counters_histogram_and_latest_outcome(world) -> None:
    found = _collect(world["url"])
    assert named(found, "cloudsweep_scans_total") == {
        frozenset({"namespace": "team-a", "account": A, "outcome": "completed"}.items()): 2,
        frozenset({"namespace": "team-b", "account": B, "outcome": "completed"}.items()): 2,
        frozenset({"namespace": "team-b", "account": B, "outcome": "failed"}.items()): 1,
    }
    a = {"namespace": "team-a", "account": A}
    b = {"namespace": "team-b", "account": B}
    buckets_a = {
        dict(k)["le"]: v
        for k, v in named(found, "cloudsweep_scan_duration_seconds_bucket").items()
        if dict(k)["account"] == A
    }
    assert buckets_a == {
        "1.0": 0,
        "5.0": 0,
        "15.0": 1,
        "30.0": 2,
        "60.0": 2,
        "120.0": 2,
        "300.0": 2,
        "600.0": 2,
        "1800.0": 2,
        "3600.0": 2,
        "+Inf": 2,
    }
    assert value(found, "cloudsweep_scan_duration_seconds_count", **a) == 2
    assert value(found, "cloudsweep_scan_duration_seconds_sum", **a) == pytest.approx(40)
    # B: the 30-day-old scan is outside the window, the failed one is not a duration sample.
    assert value(found, "cloudsweep_scan_duration_seconds_count", **b) == 1
    assert value(found, "cloudsweep_scan_duration_seconds_bucket", **b, le="5.0") == 1
    assert value(found, "cloudsweep_last_scan_outcome", **b, outcome="failed") == 1
    assert value(found, "cloudsweep_last_scan_outcome", **b, outcome="completed") == 0
    assert value(found, "cloudsweep_last_scan_outcome", **a, outcome="completed") == 1
    assert (
        value(found, "cloudsweep_last_successful_scan_timestamp_seconds", **a)
        == world["a_done"].completed_at.timestamp()
    )
    assert (
        value(found, "cloudsweep_last_successful_scan_timestamp_seconds", **b)
        == world["b_ok"].completed_at.timestamp()
    )
    assert value(found, "cloudsweep_account_connection_state", **a, state="connected") == 1
    assert value(found, "cloudsweep_account_connection_state", **b, state="failed") == 1
    assert value(found, "cloudsweep_account_connection_state", **b, state="connected") == 0
    assert all(dict(k)["account"] != C for k in named(found, "cloudsweep_account_connection_state"))


def test_labels_are_the_documented_bounded_set(world) -> None:
    found = _collect(world["url"])
    allowed = set(metrics.label_names()) | {"le"}
    for name, labels in found:
        keys = {k for k, _ in labels}
        assert keys <= allowed, name
        if "resource_id" in keys:
            assert name == "cloudsweep_top_waste_item_monthly_cost_dollars"
        for key, label_value in labels:
            if key == "account":
                assert domain.ACCOUNT_ID_RE.fullmatch(label_value)
    # The one resource-ID metric stays within N per namespace however many items there are.
    top = named(found, "cloudsweep_top_waste_item_monthly_cost_dollars")
    per_namespace: dict[str, int] = {}
    for labels in top:
        ns = dict(labels)["namespace"]
        per_namespace[ns] = per_namespace.get(ns, 0) + 1
    assert max(per_namespace.values()) <= metrics.TOP_ITEMS_PER_NAMESPACE


def test_an_unreachable_database_gives_database_up_zero_not_a_failed_scrape() -> None:
    found = _collect("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    assert value(found, "cloudsweep_database_up") == 0
    assert not named(found, "cloudsweep_waste_items")


def test_aws_calls_are_counted_per_process_through_the_recorder_listener(moto_endpoint) -> None:
    session = boto3.Session(region_name="us-east-1")
    recorder = CallRecorder()
    recorder.add_listener(metrics.observe_aws_call)
    recorder.attach(session, caller_account=None)
    faults.throttle(session.events, "ec2", "DescribeAddresses")
    config = Config(retries={"mode": "standard", "max_attempts": 2})
    ec2 = session.client("ec2", endpoint_url=moto_endpoint, config=config)
    labels = {"volumes": ("ec2", "DescribeVolumes"), "addresses": ("ec2", "DescribeAddresses")}
    before = _aws_samples(labels)

    ec2.describe_volumes()
    with pytest.raises(ClientError):
        ec2.describe_volumes(VolumeIds=["vol-0123456789abcdef0"])  # not found: an error
    with pytest.raises(ClientError):
        ec2.describe_addresses()  # throttled on every attempt: one call, retries, a throttle

    after = _aws_samples(labels)
    delta = {key: after[key] - before[key] for key in after}
    (throttled,) = recorder.calls(operation="DescribeAddresses")
    assert throttled.retries >= 1
    assert delta == {
        ("volumes", "calls"): 2,
        ("volumes", "errors"): 1,
        ("volumes", "throttles"): 0,
        ("volumes", "retries"): 0,
        ("addresses", "calls"): 1,
        ("addresses", "errors"): 1,
        ("addresses", "throttles"): 1,
        ("addresses", "retries"): throttled.retries,
    }


def _aws_samples(labels: dict[str, tuple[str, str]]) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    for counter in (
        metrics.AWS_API_CALLS,
        metrics.AWS_API_ERRORS,
        metrics.AWS_API_THROTTLES,
        metrics.AWS_API_RETRIES,
    ):
        registry.register(counter)
    return {
        (key, kind): registry.get_sample_value(
            f"cloudsweep_aws_api_{kind}_total", {"service": service, "operation": operation}
        )
        or 0.0
        for key, (service, operation) in labels.items()
        for kind in ("calls", "errors", "throttles", "retries")
    }
