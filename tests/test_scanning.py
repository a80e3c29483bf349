"""Scan runs against a moto server over HTTP, into a real PostgreSQL.

moto does not check trust policies or ExternalIds; identity faults are injected at the botocore
event layer (see tests/faults.py) on the assumed-role session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from bench import scan as bench_scan
from cloudsweep import aws, detectors, domain, scanning
from cloudsweep.demo import compute
from cloudsweep.demo import world as demo_world
from cloudsweep.settings import Settings
from cloudsweep.store import AccountRecord, FindingFilter, Store

from . import faults
from .detectors.conftest import assumed_boto3_session

ORG = "team-a"


@pytest.fixture
def world(moto_endpoint: str) -> demo_world.DemoWorld:
    seeded = demo_world.seed_demo_world(moto_endpoint, regions=("us-east-1", "eu-west-1"))
    # What is in use also looks in use to the idleness detectors, which read CloudWatch.
    session = assumed_boto3_session(moto_endpoint, seeded.account_id)
    compute.seed_usage(
        lambda region: session.client("cloudwatch", region_name=region, endpoint_url=moto_endpoint),
        [
            (r.region, r.kind, r.resource_id, r.attributes.get("type"))
            for r in seeded.select(verdict=demo_world.Verdict.IN_USE)
        ],
        seeded.now,
    )
    return seeded


@pytest.fixture
def settings(moto_endpoint: str) -> Settings:
    # Two attempts keep injected throttling fast; the retry itself is tested in tests/aws.
    return Settings(aws_endpoint_url=moto_endpoint, aws_max_attempts=2, scan_concurrency=4)


@pytest.fixture
def store(database_url: str) -> Store:
    return Store(database_url)


@pytest.fixture
def account(store: Store, world: demo_world.DemoWorld) -> AccountRecord:
    org = store.ensure_organization(ORG)
    return store.register_account(
        org.id,
        account_id=world.account_id,
        role_arn=world.scanner_role_arn,
        external_id=world.external_id,
        regions=list(world.regions),
    )


def _scan(
    store: Store, account: AccountRecord, settings: Settings, **kwargs: Any
) -> scanning.ScanOutcome:
    recorder = kwargs.pop("recorder", None) or aws.CallRecorder()
    options = kwargs.pop("options", None)
    return scanning.run_scan(
        store, account, options, settings=settings, recorder=recorder, **kwargs
    )


def _with_session_hook(hook: Callable[[aws.AccountSession], None]) -> scanning.SessionFactory:
    def factory(*args: Any, **kwargs: Any) -> aws.AccountSession:
        session = aws.AccountSession(*args, **kwargs)
        hook(session)
        return session

    return factory


def _key(resource: demo_world.SeededResource) -> str:
    """Findings key ELBv2 load balancers by their ARN's resource part (app/name/id)."""
    if resource.kind == "load-balancer":
        return resource.resource_id.split(":loadbalancer/", 1)[1]
    return resource.resource_id


def _current(store: Store) -> dict[str, Any]:
    return {item.resource_id: item for item in store.findings(FindingFilter(ORG))}


def test_scan_finds_the_waste_and_leaves_what_is_in_use(store, account, settings, world) -> None:
    outcome = _scan(store, account, settings)

    assert outcome.error is None
    assert outcome.scan.status == "completed"
    found = _current(store)
    for resource in world.select(verdict=demo_world.Verdict.WASTE):
        key = _key(resource)
        assert key in found, f"missed waste {resource.kind} {resource.name}"
        item = found[key]
        assert item.safety_checks_passed, (
            f"{resource.name}: {item.resource_details['safety_checks']}"
        )
        assert item.monthly_cost > 0
    in_use = {_key(r) for r in world.select(verdict=demo_world.Verdict.IN_USE)}
    assert not in_use & set(found), "resources in use were reported as waste"
    # Protected and too-recent resources may be listed, but never as safe to clean.
    for verdict in (demo_world.Verdict.PROTECTED, demo_world.Verdict.TOO_RECENT):
        for resource in world.select(verdict=verdict):
            if _key(resource) in found:
                assert not found[_key(resource)].safety_checks_passed
    run = outcome.scan
    assert run.total_waste_items_found == len(found)
    assert run.total_monthly_waste_cost == sum(i.monthly_cost for i in found.values())
    assert run.total_resources_scanned > len(found)
    assert set(run.metadata["regions_failed"]) == set()


def test_scan_runs_under_a_read_only_session_policy_with_the_external_id(
    store, account, settings, world
) -> None:
    recorder = aws.CallRecorder()
    outcome = _scan(store, account, settings, recorder=recorder)

    assume, probe = recorder.calls(operation="AssumeRole")
    assert assume.params["ExternalId"] == world.external_id
    assert assume.params["RoleSessionName"] == f"cloudsweep-{world.account_id}-scan"
    # The role must refuse CloudSweep without the ExternalId: one probe, which may do nothing.
    assert "ExternalId" not in probe.params and probe.error_code == "AccessDenied"
    assert '"Action":["sts:GetCallerIdentity"]' in probe.params["Policy"]
    assert (
        '"Effect": "Allow"' in assume.params["Policy"]
        or '"Effect":"Allow"' in assume.params["Policy"]
    )
    assert "ec2:DeleteVolume" not in assume.params["Policy"]
    assert recorder.mutating() == []
    assert {c.caller_account for c in recorder.records if c.operation != "AssumeRole"} == {
        world.account_id
    }
    assert outcome.api_calls == len(recorder.records)


def test_listings_are_shared_by_detectors_in_a_region(store, account, settings) -> None:
    recorder = aws.CallRecorder()
    _scan(store, account, settings, recorder=recorder)
    # ebs-volume and ebs-snapshot both read volumes and snapshots: one listing each per region.
    for operation in ("DescribeVolumes", "DescribeSnapshots", "DescribeImages"):
        for region in ("us-east-1", "eu-west-1"):
            assert recorder.count(operation=operation, region=region) == 1, operation


def test_rescan_is_idempotent(store, account, settings) -> None:
    first = _scan(store, account, settings)
    before = _current(store)
    second = _scan(store, account, settings)
    after = _current(store)

    assert second.scan.status == "completed"
    assert set(before) == set(after)
    assert {k: v.monthly_cost for k, v in before.items()} == {
        k: v.monthly_cost for k, v in after.items()
    }
    assert second.scan.total_waste_items_found == first.scan.total_waste_items_found
    assert all(item.id == before[key].id for key, item in after.items())


def test_resources_removed_in_aws_are_closed_by_the_next_full_scan_only(
    store, account, settings, world, moto_endpoint
) -> None:
    _scan(store, account, settings)
    volume = world.select(kind="ebs-volume", verdict=demo_world.Verdict.WASTE, region="us-east-1")[
        0
    ]
    ec2 = _seeder_client(moto_endpoint, world, "ec2", "us-east-1")
    ec2.delete_volume(VolumeId=volume.resource_id)

    incremental = scanning.ScanOptions(scan_type=domain.ScanType.INCREMENTAL)
    _scan(store, account, settings, options=incremental)
    assert volume.resource_id in _current(store), "an incremental scan closed an item"

    _scan(store, account, settings, options=scanning.ScanOptions(scan_type=domain.ScanType.FULL))
    assert volume.resource_id not in _current(store)
    gone = {i.resource_id: i for i in store.findings(FindingFilter(ORG, include_gone=True))}
    assert gone[volume.resource_id].gone_at is not None


def test_a_throttled_region_fails_alone_and_closes_nothing(store, account, settings, world) -> None:
    _scan(store, account, settings)  # a clean first scan: both regions have open items
    before = _current(store)
    injected: list[faults.Injected] = []

    def hook(session: aws.AccountSession) -> None:
        injected.append(
            faults.throttle(session.events, "ec2", "DescribeVolumes", region="eu-west-1")
        )

    recorder = aws.CallRecorder()
    outcome = _scan(
        store,
        account,
        settings,
        recorder=recorder,
        session_factory=_with_session_hook(hook),
        options=scanning.ScanOptions(scan_type=domain.ScanType.FULL),
    )

    assert outcome.scan.status == "partial"
    failed = {(t.region, t.detector) for t in outcome.failed_tasks}
    # The detectors that read the one (failed) volume listing of eu-west-1 failed: the EBS ones,
    # and the stopped-instance one, which prices a stopped instance by its volumes (the demo world
    # holds one); nothing else failed.
    assert failed == {
        ("eu-west-1", "ebs-volume"),
        ("eu-west-1", "ebs-snapshot"),
        ("eu-west-1", "ebs-gp3-candidate"),
        ("eu-west-1", "ec2-stopped-instance"),
    }
    assert {t.error_kind for t in outcome.failed_tasks} == {"throttled"}
    assert outcome.scan.metadata["regions_failed"] == ["eu-west-1"]
    assert (
        "throttl" in (outcome.scan.error_message or "").lower()
        or "limit" in (outcome.scan.error_message or "").lower()
    )
    # Attempts were bounded: two per listing (settings.aws_max_attempts), not a loop.
    assert injected[0].hits == 2
    assert recorder.mutating() == []
    # Nothing in the failed region was closed; everything else still there too.
    assert set(_current(store)) == set(before)


def test_declared_account_differing_from_caller_identity_is_refused_before_any_other_call(
    store, account, settings
) -> None:
    def hook(session: aws.AccountSession) -> None:
        faults.fail_with(
            session.events,
            "before-send.sts.GetCallerIdentity",
            status=200,
            body=(
                b"<GetCallerIdentityResponse><GetCallerIdentityResult>"
                b"<Arn>arn:aws:sts::999999999999:assumed-role/x/y</Arn><UserId>AROA:y</UserId>"
                b"<Account>999999999999</Account></GetCallerIdentityResult>"
                b"<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
                b"</GetCallerIdentityResponse>"
            ),
        )

    recorder = aws.CallRecorder()
    outcome = _scan(
        store, account, settings, recorder=recorder, session_factory=_with_session_hook(hook)
    )

    assert outcome.scan.status == "failed"
    assert "999999999999" in (outcome.error or "")
    assert {c.service for c in recorder.records} == {"sts"}
    stored = store.account(account.organization_id, account.account_id)
    assert stored is not None and stored.connection_status == "failed"
    assert _current(store) == {}


def test_access_denied_on_assume_role_names_the_role_and_fix(store, account, settings) -> None:
    recorder = aws.CallRecorder()

    class DeniedBase:
        """The operator's own session, whose STS answers AccessDenied (moto never does)."""

    def factory(*args: Any, **kwargs: Any) -> aws.AccountSession:
        base = boto3.Session()
        faults.fail_with(
            base.events,
            "before-send.sts.AssumeRole",
            status=403,
            body=faults.query_error_body(
                "AccessDenied", "not authorized to perform sts:AssumeRole"
            ),
        )
        return aws.AccountSession(*args, base_session=base, **kwargs)

    outcome = _scan(store, account, settings, recorder=recorder, session_factory=factory)

    assert outcome.scan.status == "failed"
    assert account.role_arn in (outcome.error or "")
    assert "ExternalId" in (outcome.error or "")
    assert {c.operation for c in recorder.records} <= {"AssumeRole"}


def test_bad_parameters_are_refused_before_anything_happens(store, account, settings) -> None:
    recorder = aws.CallRecorder()
    options = scanning.ScanOptions(parameters={"ebs-volume": {"min_age_days": -1, "bogus": 1}})
    with pytest.raises(scanning.ScanRefused, match="ebs-volume") as refused:
        _scan(store, account, settings, recorder=recorder, options=options)
    assert "bogus" in str(refused.value) and "min_age_days" in str(refused.value)
    with pytest.raises(domain.InvalidInput, match="unknown resource type 'sqs-queue'"):
        _scan(store, account, settings, options=scanning.ScanOptions(detectors=["sqs-queue"]))
    assert recorder.records == []
    assert store.latest_scan(account.id) is None


def test_detector_parameters_are_applied(store, account, settings) -> None:
    # With a 400-day minimum age every EBS volume counts as recent: none is safe to clean.
    options = scanning.ScanOptions(
        detectors=["ebs-volume"], parameters={"ebs-volume": {"min_age_days": 400}}
    )
    _scan(store, account, settings, options=options)
    items = _current(store)
    assert items and all(not i.safety_checks_passed for i in items.values())
    assert {i.resource_type for i in items.values()} == {"ebs-volume"}


def test_a_cancelled_scan_is_recorded_as_cancelled(store, account, settings) -> None:
    """A scan cancelled before it began is ``cancelled``, never ``completed`` (even when its
    tasks, already submitted, finish first): the run loop reads the event before it records any
    task. A cancelled scan's listings are not trusted to close unseen findings."""
    first = _scan(store, account, settings)
    assert first.scan.status == "completed"
    open_before = set(_current(store))
    assert open_before
    cancel = threading.Event()
    cancel.set()
    outcome = _scan(store, account, settings, cancel=cancel)
    assert outcome.scan.status == "cancelled"
    assert store.latest_scan(account.id).status == "cancelled"  # type: ignore[union-attr]
    assert set(_current(store)) == open_before


def test_progress_reports_every_task(store, account, settings) -> None:
    events: list[scanning.ScanProgress] = []
    _scan(store, account, settings, progress=events.append)
    assert [e.done for e in events] == list(range(1, len(events) + 1))
    assert events[-1].done == events[-1].total == 2 * len(detectors.names())  # regions x detectors


def _seeder_client(endpoint: str, world: demo_world.DemoWorld, service: str, region: str) -> Any:
    """A client in the world's account (through the seeder role), to change AWS behind the scan."""
    sts = boto3.client("sts", region_name=region, endpoint_url=endpoint)
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{world.account_id}:role/cloudsweep-demo-seeder",
        RoleSessionName="test",
    )["Credentials"]
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def _regions_answer(regions: dict[str, str]) -> Callable[..., None]:
    """After DescribeRegions: the account's regions and opt-in states, as AWS would answer for an
    account with opt-in regions (moto reports every region as not needing opt-in)."""

    def handler(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Regions"] = [
            {"RegionName": name, "OptInStatus": status} for name, status in regions.items()
        ]

    return handler


def _deny_region(events: Any, region: str) -> None:
    """Every call in ``region`` answered AccessDenied, as an SCP denying the region does."""
    message = "explicit deny in a service control policy"
    for service in ("ec2", "elbv2", "elb", "rds", "cloudwatch", "autoscaling"):
        body = (faults.ec2_error_body if service == "ec2" else faults.query_error_body)(
            "UnauthorizedOperation" if service == "ec2" else "AccessDenied", message
        )
        faults.fail_with(events, f"before-send.{service}", status=403, body=body, region=region)
    # CloudWatch Logs speaks JSON, S3 its own XML.
    logs = f'{{"__type": "AccessDeniedException", "message": "{message}"}}'.encode()
    faults.fail_with(events, "before-send.cloudwatch-logs", status=400, body=logs, region=region)
    s3 = f"<Error><Code>AccessDenied</Code><Message>{message}</Message></Error>".encode()
    faults.fail_with(events, "before-send.s3", status=403, body=s3, region=region)


def test_all_regions_scans_the_enabled_ones_and_skips_the_others_with_the_reason(
    store, settings, world
) -> None:
    org = store.ensure_organization(ORG)
    account = store.register_account(
        org.id,
        account_id=world.account_id,
        role_arn=world.scanner_role_arn,
        external_id=world.external_id,
        regions=["all"],
    )

    def hook(session: aws.AccountSession) -> None:
        session.events.register(
            "after-call.ec2.DescribeRegions",
            _regions_answer(
                {
                    "us-east-1": "opt-in-not-required",
                    "eu-west-1": "opt-in-not-required",
                    "ap-southeast-1": "opt-in-not-required",
                    "af-south-1": "not-opted-in",
                }
            ),
        )
        _deny_region(session.events, "ap-southeast-1")

    recorder = aws.CallRecorder()
    outcome = _scan(
        store, account, settings, session_factory=_with_session_hook(hook), recorder=recorder
    )

    assert outcome.scan.status == domain.ScanStatus.COMPLETED, outcome.scan.error_message
    assert outcome.failed_tasks == []
    assert set(outcome.skipped_regions) == {"af-south-1", "ap-southeast-1"}
    assert "not enabled" in outcome.skipped_regions["af-south-1"]
    assert "access denied" in outcome.skipped_regions["ap-southeast-1"]
    scanned = {r.region for r in recorder.records if r.service != "sts"}
    assert "af-south-1" not in scanned  # never called: not enabled
    assert {"us-east-1", "eu-west-1"} <= scanned
    found = {item.region for item in store.findings(FindingFilter(ORG))}
    assert found == {"us-east-1", "eu-west-1"}
    [describe] = [r for r in recorder.records if r.operation == "DescribeRegions"]
    assert describe.caller_account == world.account_id and describe.params == {"AllRegions": True}


def test_a_named_region_that_denies_access_is_a_failure_not_a_skip(
    store, account, settings
) -> None:
    outcome = _scan(
        store,
        account,
        settings,
        session_factory=_with_session_hook(lambda s: _deny_region(s.events, "eu-west-1")),
    )
    assert outcome.skipped_regions == {}
    assert outcome.scan.status == domain.ScanStatus.PARTIAL
    assert {t.region for t in outcome.failed_tasks} == {"eu-west-1"}


def test_the_detectors_of_a_region_read_their_metrics_together(store, account, settings) -> None:
    """Issue 15's target: every idleness detector's CloudWatch queries of a region in one set of
    batches (the first look), then the daily series of what it did not settle; not a batch per
    detector. Counted from the recorded calls, with the benchmark's own check."""
    recorder = aws.CallRecorder()
    outcome = _scan(store, account, settings, recorder=recorder)

    assert outcome.scan.status == "completed"
    assert bench_scan._check_idleness_calls(recorder)
    for region in ("us-east-1", "eu-west-1"):
        calls = recorder.calls(operation="GetMetricData", region=region)
        namespaces = [
            {q["MetricStat"]["Metric"]["Namespace"] for q in c.params["MetricDataQueries"]}
            for c in calls
        ]
        # The first batch asks for every idleness detector's resources of the region.
        assert namespaces[0] == {
            "AWS/EC2",
            "AWS/ApplicationELB",
            "AWS/NetworkELB",
            "AWS/ELB",
            "AWS/NATGateway",
            "AWS/RDS",
        }, region
        # Then only the daily series of the instances the CPU first look did not settle.
        assert namespaces[1:] == [{"AWS/EC2"}], region


def test_a_throttled_shared_metric_read_is_not_asked_again_by_each_detector(
    store, account, settings
) -> None:
    """Issue 16: the region's shared CloudWatch read failed (botocore's attempts spent), so every
    detector that reads metrics fails there with its error, without a GetMetricData call of its
    own; the other region is untouched."""
    injected: list[faults.Injected] = []

    def hook(session: aws.AccountSession) -> None:
        injected.append(
            faults.throttle_json(session.events, "cloudwatch", "GetMetricData", region="eu-west-1")
        )

    outcome = _scan(store, account, settings, session_factory=_with_session_hook(hook))

    readers = {d.name for d in detectors.all_detectors() if d.reads_metrics}
    assert {(t.region, t.detector) for t in outcome.failed_tasks} == {
        ("eu-west-1", name) for name in readers
    }
    assert {t.error_kind for t in outcome.failed_tasks} == {"throttled"}
    # The shared read's attempts only (settings.aws_max_attempts), not two more per detector.
    assert injected[0].hits == settings.aws_max_attempts == 2
