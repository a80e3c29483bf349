"""Cleanup runs end to end: a scanned moto world, policies, the ledger, the recorded AWS calls.

Every test records every AWS call at the botocore layer and checks it against the ledger
(``cleanup_actions``): that is the oracle for "nothing mutating in a dry run", "nothing acted on
twice" and "every attempt recorded".
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import boto3
import pytest
import sqlalchemy as sa

from cloudsweep import aws, cleaning, domain, policies, scanning
from cloudsweep.demo import world as demo_world
from cloudsweep.settings import Settings
from cloudsweep.store import AccountRecord, FindingFilter, Store
from cloudsweep.store.engine import get_engine

from . import faults

ORG = "team-a"
ACTOR = "ann@example.com"


@pytest.fixture
def world(moto_endpoint: str) -> demo_world.DemoWorld:
    return demo_world.seed_demo_world(moto_endpoint, regions=("us-east-1",))


@pytest.fixture
def settings(moto_endpoint: str) -> Settings:
    # Takeover 0: a rerun reconciles an interrupted attempt at once (its worker is gone for good);
    # the grace period for live workers is tested in tests/safety.
    return Settings(aws_endpoint_url=moto_endpoint, aws_max_attempts=2, cleanup_takeover_seconds=0)


@pytest.fixture
def store(database_url: str) -> Store:
    return Store(database_url)


@pytest.fixture
def account(store: Store, world: demo_world.DemoWorld, settings: Settings) -> AccountRecord:
    org = store.ensure_organization(ORG)
    record = store.register_account(
        org.id,
        account_id=world.account_id,
        role_arn=world.scanner_role_arn,
        external_id=world.external_id,
        regions=list(world.regions),
    )
    outcome = scanning.run_scan(store, record, settings=settings)
    assert outcome.scan.status == "completed"
    return record


def eip_policy(**overrides: Any) -> policies.CleanupPolicy:
    document: dict[str, Any] = {
        "name": "idle-ips",
        "resourceType": "elastic-ip",
        "action": "release",
        "rules": {"minAgeDays": 0, "minConfidence": 50},
        "dryRun": False,
    }
    document.update(overrides)
    return policies.parse_policy(document)


def run(
    store: Store, settings: Settings, recorder: aws.CallRecorder, pols: list[Any], **kwargs: Any
) -> cleaning.RunReport:
    options = cleaning.CleanupOptions(settings=settings, recorder=recorder, **kwargs)
    return cleaning.run_cleanup(store, ORG, pols, options)


def addresses(endpoint: str, world: demo_world.DemoWorld) -> set[str]:
    ec2 = seeder_client(endpoint, world, "ec2", "us-east-1")
    return {a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]}


def seeder_client(endpoint: str, world: demo_world.DemoWorld, service: str, region: str) -> Any:
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


def ledger(store: Store) -> list[dict[str, Any]]:
    with get_engine(store.url).connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT a.id, w.resource_id, a.action, a.status, a.dry_run, a.success, a.error_message, "
                "a.rollback_data, a.aws_response FROM cleanup_actions a "
                "JOIN waste_items w ON w.id = a.waste_item_id ORDER BY a.executed_at"
            )
        )
        return [dict(row._mapping) for row in rows]


def releases(recorder: aws.CallRecorder) -> list[str]:
    return [
        c.params["AllocationId"]
        for c in recorder.calls(operation="ReleaseAddress")
        if not c.params.get("DryRun")
    ]


def waste_ips(world: demo_world.DemoWorld) -> set[str]:
    return set(world.ids(kind="elastic-ip", verdict=demo_world.Verdict.WASTE))


# --- invariant 1 and 4: nothing without a policy, approval and dry run off; all recorded ---------


def test_dry_run_is_the_default_and_changes_nothing(
    store, account, settings, world, moto_endpoint
) -> None:
    before = addresses(moto_endpoint, world)
    recorder = aws.CallRecorder()
    report = run(store, settings, recorder, [eip_policy()], actor_email=ACTOR)  # no dry_run=False

    assert report.dry_run
    assert addresses(moto_endpoint, world) == before
    assert all(c.params.get("DryRun") for c in recorder.mutating())
    rows = ledger(store)
    assert {r["resource_id"] for r in rows} == waste_ips(world)
    assert all(r["dry_run"] and r["status"] == "succeeded" for r in rows)
    assert {i.cleanup_status for i in store.findings(FindingFilter(ORG))} == {"pending"}


def test_a_policy_in_dry_run_mode_wins_over_execute(
    store, account, settings, world, moto_endpoint
) -> None:
    recorder = aws.CallRecorder()
    report = run(
        store, settings, recorder, [eip_policy(dryRun=True)], dry_run=False, actor_email=ACTOR
    )
    assert releases(recorder) == []
    assert {r.outcome for r in report.results} == {"dry-run-ok"}


def test_execute_releases_exactly_the_waste_once_and_records_it(
    store, account, settings, world, moto_endpoint
) -> None:
    before = addresses(moto_endpoint, world)
    recorder = aws.CallRecorder()
    report = run(store, settings, recorder, [eip_policy()], dry_run=False, actor_email=ACTOR)

    released = set(releases(recorder))
    assert released == waste_ips(world)
    assert {r.outcome for r in report.results} == {"succeeded"} and len(report.results) == len(
        released
    )
    assert addresses(moto_endpoint, world) == before - released
    assert len(releases(recorder)) == len(released)  # once each
    rows = ledger(store)
    assert sorted(r["resource_id"] for r in rows if r["status"] == "succeeded") == sorted(released)
    assert all(not r["dry_run"] and r["success"] for r in rows)
    for row in rows:
        assert row["rollback_data"]["public_ip"]  # the address is recorded, though AWS can't undo
    cleaned = {i.resource_id for i in store.findings(FindingFilter(ORG, cleanup_status="cleaned"))}
    assert cleaned == released

    # Protected and associated addresses were never touched.
    protected = set(world.ids(kind="elastic-ip", verdict=demo_world.Verdict.PROTECTED))
    assert protected and not protected & released
    # A second run finds nothing left to do and calls nothing mutating.
    again = aws.CallRecorder()
    second = run(store, settings, again, [eip_policy()], dry_run=False, actor_email=ACTOR)
    assert again.mutating() == [] and second.results == []


def test_without_a_policy_nothing_happens(store, account, settings) -> None:
    recorder = aws.CallRecorder()
    report = run(store, settings, recorder, [], dry_run=False, actor_email=ACTOR)
    assert recorder.records == [] and report.results == [] and ledger(store) == []


def test_a_real_manual_run_needs_an_identity(store, account, settings) -> None:
    with pytest.raises(cleaning.CleanupRefused, match="--as EMAIL"):
        run(store, settings, aws.CallRecorder(), [eip_policy()], dry_run=False)


def test_items_above_the_approval_threshold_wait_for_an_approval(
    store, account, settings, world
) -> None:
    strict = eip_policy(requireApprovalAbove="1.00", maxMonthlyCost="0.00")
    recorder = aws.CallRecorder()
    report = run(store, settings, recorder, [strict], dry_run=False, actor_email=ACTOR)
    assert recorder.mutating() == [] and report.results == []
    assert report.plan.counts()["needs-approval"] == len(waste_ips(world))

    target = next(
        i
        for i in store.findings(FindingFilter(ORG, resource_type="elastic-ip"))
        if i.safety_checks_passed
    )
    org = store.organization(ORG)
    assert org is not None
    assert store.decide_items(
        org.id, [target.id], approve=True, approver_email="Bob@Example.com", now=domain.utcnow()
    )
    report = run(store, settings, recorder, [strict], dry_run=False, actor_email=ACTOR)
    assert releases(recorder) == [target.resource_id]
    [row] = [r for r in ledger(store) if r["status"] == "succeeded"]
    assert row["resource_id"] == target.resource_id


def test_automated_runs_need_both_auto_cleanup_flags(store, account, settings) -> None:
    auto = eip_policy(autoExecute=True, maxMonthlyCost="10.00")
    recorder = aws.CallRecorder()
    report = run(
        store, settings, recorder, [auto], dry_run=False, method=domain.ExecutionMethod.AUTOMATED
    )
    assert recorder.mutating() == []
    gated = [d for d in report.plan.decisions if d.kind is not policies.DecisionKind.SKIP]
    assert gated and all("auto cleanup is off" in d.reason for d in gated)


def test_the_run_keeps_the_mode_it_started_with(
    store, account, settings, world, moto_endpoint
) -> None:
    options = cleaning.CleanupOptions(
        settings=settings, recorder=aws.CallRecorder(), actor_email=ACTOR, dry_run=True
    )
    flipped = threading.Event()

    def flip(_: cleaning.ItemResult) -> None:
        options.dry_run = False  # someone switches dry run off while the run is in flight
        flipped.set()

    options.progress = flip
    before = addresses(moto_endpoint, world)
    report = cleaning.run_cleanup(store, ORG, [eip_policy()], options)
    assert flipped.is_set()
    assert report.dry_run and addresses(moto_endpoint, world) == before


# --- invariant 2: exactly once -----------------------------------------------------------------


def test_two_workers_at_once_act_once_per_item(
    store, account, settings, world, moto_endpoint
) -> None:
    recorder = aws.CallRecorder()
    barrier = threading.Barrier(2)
    reports: list[cleaning.RunReport] = []

    def worker() -> None:
        barrier.wait()
        reports.append(
            run(store, settings, recorder, [eip_policy()], dry_run=False, actor_email=ACTOR)
        )

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    released = releases(recorder)
    assert sorted(released) == sorted(set(released)) == sorted(waste_ips(world))
    succeeded = [r for r in ledger(store) if r["status"] == "succeeded"]
    assert sorted(r["resource_id"] for r in succeeded) == sorted(released)


def test_a_lost_response_is_recognised_not_repeated(
    store, account, settings, world, moto_endpoint
) -> None:
    """ReleaseAddress takes effect in moto, then its response is lost (read time-out): the outcome
    is unknown, so the intent stays open; the next real run re-checks AWS, sees the address gone
    and records success once, without a second release."""
    recorder = aws.CallRecorder()

    def lossy(*args: Any, **kwargs: Any) -> aws.AccountSession:
        session = aws.AccountSession(*args, **kwargs)
        faults.lose_response(session.events, "ec2", "ReleaseAddress", times=1)
        return session

    one = eip_policy(maxItemsPerRun=1)
    first = run(
        store, settings, recorder, [one], dry_run=False, actor_email=ACTOR, session_factory=lossy
    )
    [result] = first.results
    assert result.outcome == "interrupted"
    gone = result.resource_id
    assert gone not in addresses(moto_endpoint, world)  # it took effect

    second = run(store, settings, recorder, [one], dry_run=False, actor_email=ACTOR)
    [again] = [r for r in second.results if r.item_id == result.item_id]
    assert again.outcome == "recovered"
    assert releases(recorder).count(gone) == 1
    rows = [r for r in ledger(store) if r["resource_id"] == gone]
    assert [r["status"] for r in rows] == ["succeeded"]


def test_throttling_on_release_fails_cleanly_and_bounded(
    store, account, settings, world, moto_endpoint
) -> None:
    recorder = aws.CallRecorder()
    injected: list[faults.Injected] = []

    def throttled(*args: Any, **kwargs: Any) -> aws.AccountSession:
        session = aws.AccountSession(*args, **kwargs)
        injected.append(faults.throttle(session.events, "ec2", "ReleaseAddress"))
        return session

    before = addresses(moto_endpoint, world)
    report = run(
        store,
        settings,
        recorder,
        [eip_policy()],
        dry_run=False,
        actor_email=ACTOR,
        session_factory=throttled,
    )
    assert {r.outcome for r in report.results} == {"failed"}
    assert all(
        "throttl" in r.message.lower() or "limit" in r.message.lower() for r in report.results
    )
    assert injected[0].hits == 2 * len(report.results)  # aws_max_attempts=2 per item, no loop
    assert addresses(moto_endpoint, world) == before
    rows = ledger(store)
    assert len(rows) == len(report.results) and all(
        r["status"] == "failed" and r["error_message"] for r in rows
    )
    # Each item's one row holds the error its result reports, and what kind of error it was.
    by_id = {r["id"]: r for r in rows}
    for result in report.results:
        row = by_id[result.action_id]
        assert (row["resource_id"], row["error_message"]) == (result.resource_id, result.message)
        assert row["aws_response"] == {"error_kind": "throttled", "code": "RequestLimitExceeded"}
    assert {
        i.cleanup_status
        for i in store.findings(FindingFilter(ORG, resource_type="elastic-ip"))
        if i.resource_id in waste_ips(world)
    } == {"failed"}


def test_an_item_no_longer_waste_is_refused_and_recorded(
    store, account, settings, world, moto_endpoint
) -> None:
    target = sorted(waste_ips(world))[0]
    ec2 = seeder_client(moto_endpoint, world, "ec2", "us-east-1")
    ec2.create_tags(Resources=[target], Tags=[{"Key": "cloudsweep.io/protect", "Value": "true"}])
    recorder = aws.CallRecorder()
    report = run(store, settings, recorder, [eip_policy()], dry_run=False, actor_email=ACTOR)
    refused = [r for r in report.results if r.resource_id == target]
    assert refused and refused[0].outcome == "refused"
    assert target not in releases(recorder)
    assert target in addresses(moto_endpoint, world)
    row = next(r for r in ledger(store) if r["resource_id"] == target)
    assert row["status"] == "refused" and "protect" in row["error_message"]


def test_a_dry_run_reports_an_item_no_longer_waste_as_refused(
    store, account, settings, world, moto_endpoint
) -> None:
    """The dry run is what people approve from: an item its re-check would refuse must not be
    reported as one the real run would act on."""
    target = sorted(waste_ips(world))[0]
    ec2 = seeder_client(moto_endpoint, world, "ec2", "us-east-1")
    ec2.create_tags(Resources=[target], Tags=[{"Key": "cloudsweep.io/protect", "Value": "true"}])
    report = run(store, settings, aws.CallRecorder(), [eip_policy()])
    [result] = [r for r in report.results if r.resource_id == target]
    assert result.outcome == "dry-run-fail" and result.message.startswith("would refuse: ")
    assert target in addresses(moto_endpoint, world)


def test_every_call_is_made_under_the_accounts_own_credentials(
    store, account, settings, world
) -> None:
    recorder = aws.CallRecorder()
    run(store, settings, recorder, [eip_policy()], dry_run=False, actor_email=ACTOR)
    accounts = {c.caller_account for c in recorder.records if c.service != "sts"}
    assert accounts == {world.account_id}
    assume, probe = recorder.calls(operation="AssumeRole")
    assert assume.params["RoleSessionName"] == f"cloudsweep-{world.account_id}-cleanup"
    assert assume.params["ExternalId"] == world.external_id
    assert "ExternalId" not in probe.params and probe.error_code == "AccessDenied"


def test_actions_are_listed_per_organization(store, account, settings) -> None:
    run(store, settings, aws.CallRecorder(), [eip_policy()], dry_run=False, actor_email=ACTOR)
    listed = store.actions(ORG)
    assert listed and all(a.organization_slug == ORG and a.executed_by == ACTOR for a in listed)
    assert store.actions("someone-else") == []


def test_rollback_of_a_release_is_refused_with_the_reason(store, account, settings) -> None:
    run(
        store,
        settings,
        aws.CallRecorder(),
        [eip_policy(maxItemsPerRun=1)],
        dry_run=False,
        actor_email=ACTOR,
    )
    [action] = [a for a in store.actions(ORG) if a.status == "succeeded"]
    with pytest.raises(cleaning.CleanupRefused, match="cannot be undone"):
        cleaning.rollback(
            store,
            ORG,
            action.id,
            cleaning.CleanupOptions(settings=settings, dry_run=False, actor_email=ACTOR),
        )
    with pytest.raises(cleaning.CleanupRefused, match="no cleanup action"):
        cleaning.rollback(store, "other-org", action.id, cleaning.CleanupOptions(settings=settings))
    with pytest.raises(cleaning.CleanupRefused, match="no cleanup action"):
        cleaning.rollback(store, ORG, uuid.uuid4(), cleaning.CleanupOptions(settings=settings))


# --- invariant 3: undo data first; rollback; savings -------------------------------------------


def volume_policy(**overrides: Any) -> policies.CleanupPolicy:
    document: dict[str, Any] = {
        "name": "old-volumes",
        "resourceType": "ebs-volume",
        "action": "snapshot-and-delete",
        "rules": {"minAgeDays": 30, "maxRiskLevel": "medium", "minConfidence": 80},
        "requireApprovalAbove": "1000.00",
        "maxCostPerRun": "5000.00",
        "maxItemsPerRun": 1,
        "dryRun": False,
    }
    document.update(overrides)
    return policies.parse_policy(document)


def test_snapshot_then_delete_then_savings_then_rollback(
    store, account, settings, world, moto_endpoint
) -> None:
    recorder = aws.CallRecorder()
    report = run(store, settings, recorder, [volume_policy()], dry_run=False, actor_email=ACTOR)
    [result] = report.results
    assert result.outcome == "succeeded", result.message
    volume_id = result.resource_id
    # Undo data first: the snapshot was created (and completed) before the delete was sent.
    operations = [c.operation for c in recorder.records if c.service == "ec2"]
    assert operations.index("CreateSnapshot") < operations.index("DeleteVolume")
    action = store.action(result.action_id)  # type: ignore[arg-type]
    assert action is not None and action.rollback_possible
    snapshot_id = action.rollback_data["snapshot_id"]  # type: ignore[index]
    ec2 = seeder_client(moto_endpoint, world, "ec2", "us-east-1")
    assert not [v for v in ec2.describe_volumes()["Volumes"] if v["VolumeId"] == volume_id]
    snapshots = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert snapshots[0]["VolumeId"] == volume_id

    # The next full scan confirms the volume is gone: actual savings are recorded; the snapshot
    # CloudSweep keeps is listed (it costs money) but is never safe to clean.
    scanning.run_scan(
        store, account, scanning.ScanOptions(scan_type=domain.ScanType.FULL), settings=settings
    )
    action = store.action(result.action_id)  # type: ignore[arg-type]
    assert action is not None and action.actual_monthly_savings == action.estimated_monthly_savings
    assert action.estimated_monthly_savings is not None and action.estimated_monthly_savings > 0
    kept = {
        i.resource_id: i for i in store.findings(FindingFilter(ORG, resource_type="ebs-snapshot"))
    }
    assert snapshot_id in kept and not kept[snapshot_id].safety_checks_passed
    assert any(
        c["name"] == "cleanup-undo-data"
        for c in kept[snapshot_id].resource_details["safety_checks"]
    )
    store.refresh_views()
    with get_engine(store.url).connect() as conn:
        summary = conn.execute(sa.text("SELECT * FROM savings_summary")).one()
    assert summary.actual_monthly_savings == action.actual_monthly_savings

    # Rollback: dry run first (nothing happens), then for real: a working volume from the snapshot.
    dry = cleaning.rollback(store, ORG, action.id, cleaning.CleanupOptions(settings=settings))
    assert dry.outcome == "dry-run" and dry.rollback_id is None
    assert dry.response["snapshot_id"] == snapshot_id  # what it would restore from
    undone = cleaning.rollback(
        store,
        ORG,
        action.id,
        cleaning.CleanupOptions(settings=settings, dry_run=False, actor_email=ACTOR),
    )
    assert undone.outcome == "succeeded", undone.message
    restored = ec2.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [snapshot_id]}])[
        "Volumes"
    ]
    assert len(restored) == 1 and restored[0]["State"] == "available"
    original = next(r for r in world.resources if r.resource_id == volume_id)
    assert restored[0]["Size"] == int(original.attributes["size"])
    assert restored[0]["VolumeType"] == original.attributes["volume_type"]
    assert {t["Key"]: t["Value"] for t in restored[0].get("Tags", [])}.get(
        "team"
    ) == original.tags.get("team")
    assert store.action(action.id).rollback_executed  # type: ignore[union-attr]
    with pytest.raises(cleaning.CleanupRefused, match="already rolled back"):
        cleaning.rollback(
            store,
            ORG,
            action.id,
            cleaning.CleanupOptions(settings=settings, dry_run=False, actor_email=ACTOR),
        )
    rollback_rows = [a for a in store.actions(ORG) if a.rollback_of == action.id]
    assert len(rollback_rows) == 1 and rollback_rows[0].status == "succeeded"
