"""SAFETY-TESTS AWS faults: throttling (bursty, sustained) on listings and deletes, 5xx then
success, NotFound after a recorded intent, DependencyViolation / IncorrectState, a delete whose
response was lost.

Faults are botocore event handlers (``tests/faults.py``) registered on the sessions CloudSweep
builds, through a ``session_factory`` wrapping ``aws.AccountSession``: ``before-send`` answers a
synthetic HTTP error (so botocore's own retries see it), ``after-call`` raises a read time-out
after moto applied the call. Clients retry at most ``aws_max_attempts`` = 2 times.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cloudsweep import aws, scanning
from cloudsweep.settings import Settings
from cloudsweep.store import Store
from tests import faults

from . import helpers

ORG = "faults-org"
ACCOUNT = "123456789012"


def factory(inject: Callable[[aws.AccountSession], Any]) -> Callable[..., aws.AccountSession]:
    def make(*args: Any, **kwargs: Any) -> aws.AccountSession:
        session = aws.AccountSession(*args, **kwargs)
        inject(session)
        return session

    return make


@pytest.fixture
def world(moto_endpoint: str, store: Store, settings: Settings) -> helpers.SmallWorld:
    world = helpers.seed_small_world(moto_endpoint, ACCOUNT)
    helpers.scan_world(store, ORG, world, settings)
    return world


# --- throttled listings ---------------------------------------------------------------------


@pytest.mark.parametrize("times", [1, None], ids=["bursty", "sustained"])
def test_throttled_listing_in_a_scan(
    times: int | None, moto_endpoint: str, store: Store, settings: Settings
) -> None:
    """DescribeVolumes throttled once (botocore's retry succeeds) or always: the scan completes,
    or the region fails cleanly saying "throttled" (not "no waste"); attempts are bounded; no
    mutating call."""
    world = helpers.seed_small_world(moto_endpoint, ACCOUNT)
    org = store.ensure_organization(ORG)
    record = store.register_account(
        org.id,
        account_id=ACCOUNT,
        role_arn=world.role_arn,
        external_id=world.external_id,
        regions=[helpers.REGION],
    )
    injected: list[faults.Injected] = []
    recorder = aws.CallRecorder()
    outcome = scanning.run_scan(
        store,
        record,
        helpers.scan_options(),
        settings=settings,
        recorder=recorder,
        session_factory=factory(
            lambda s: injected.append(
                faults.throttle(s.events, "ec2", "DescribeVolumes", times=times)
            )
        ),
    )
    assert recorder.mutating() == []
    calls = recorder.count(operation="DescribeVolumes")
    if times == 1:
        assert outcome.scan.status == "completed"
        assert injected[0].hits == 1
    else:
        assert outcome.scan.status in ("partial", "failed")
        assert "throttl" in (outcome.scan.error_message or "").lower()
        assert injected[0].hits == settings.aws_max_attempts * calls  # bounded, no loop
        assert not [
            f
            for f in store.findings(helpers_filter())
            if f.resource_type == "ebs-volume" and f.scan_id == outcome.scan.id
        ]


def helpers_filter() -> Any:
    from cloudsweep.store import FindingFilter

    return FindingFilter(ORG)


def test_sustained_throttling_of_the_recheck_fails_cleanly(
    world: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """DescribeAddresses (the cleanup's re-check listing) always throttled: each item fails with
    one outcome row, bounded attempts, and nothing is released."""
    injected: list[faults.Injected] = []
    recorder = aws.CallRecorder()
    report = helpers.run_cleanup(
        store,
        ORG,
        [helpers.address_policy()],
        settings,
        recorder,
        session_factory=factory(
            lambda s: injected.append(faults.throttle(s.events, "ec2", "DescribeAddresses"))
        ),
    )
    assert {r.outcome for r in report.results} == {"failed"}
    assert all("throttled" in r.message for r in report.results)
    assert injected[0].hits == settings.aws_max_attempts * len(world.addresses)
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == []
    rows = helpers.real_rows(database_url, ORG)
    assert sorted(r["resource_id"] for r in rows) == sorted(world.addresses)
    assert {r["status"] for r in rows} == {"failed"}


# --- throttled and failing deletes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "status", "code"),
    [
        ("DeleteVolume", 503, "RequestLimitExceeded"),
        ("ReleaseAddress", 503, "RequestLimitExceeded"),
        ("DeleteVolume", 500, "InternalError"),
        ("ReleaseAddress", 500, "InternalError"),
    ],
)
@pytest.mark.parametrize("times", [1, None], ids=["then-success", "sustained"])
def test_throttled_or_5xx_delete(
    operation: str,
    status: int,
    code: str,
    times: int | None,
    world: helpers.SmallWorld,
    store: Store,
    settings: Settings,
    database_url: str,
) -> None:
    """The destructive call answered ``code`` once (then moto answers) or always: botocore's
    bounded retries only, never a loop of mutations; one outcome row per item; a sustained fault
    leaves the resource in place and the row ``failed`` with the reason."""
    volumes = operation == "DeleteVolume"
    document = helpers.volume_policy() if volumes else helpers.address_policy()
    targets = world.volumes if volumes else world.addresses
    injected: list[faults.Injected] = []
    recorder = aws.CallRecorder()
    helpers.run_cleanup(
        store,
        ORG,
        [document],
        settings,
        recorder,
        session_factory=factory(
            lambda s: injected.append(
                faults.fail_with(
                    s.events,
                    f"before-send.ec2.{operation}",
                    status=status,
                    body=faults.ec2_error_body(code, "injected"),
                    times=times,
                )
            )
        ),
    )
    live = helpers.live_volumes(world) if volumes else helpers.live_addresses(world)
    rows = helpers.real_rows(database_url, ORG)
    assert sorted(r["resource_id"] for r in rows) == sorted(targets)  # one row per item
    sent = helpers.recorded_mutations(recorder, operation)
    assert sorted(sent) == sorted(targets)  # one API call per item (retries inside it)
    if times == 1:
        assert injected[0].hits == 1
        assert not set(targets) & live
        helpers.assert_ledger_complete(database_url, targets, org_slug=ORG)
    else:
        assert injected[0].hits == settings.aws_max_attempts * len(targets)
        assert set(targets) <= live
        assert {r["status"] for r in rows} == {"failed"}
        assert all(code in r["error_message"] for r in rows)


def test_not_found_on_delete_after_the_intent_counts_as_done_once(
    world: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """DeleteVolume answered ``InvalidVolume.NotFound`` (an earlier attempt took it): recorded
    as succeeded and already done, once per item, with no second delete."""
    recorder = aws.CallRecorder()
    report = helpers.run_cleanup(
        store,
        ORG,
        [helpers.volume_policy()],
        settings,
        recorder,
        session_factory=factory(
            lambda s: faults.fail_with(
                s.events,
                "before-send.ec2.DeleteVolume",
                status=400,
                body=faults.ec2_error_body("InvalidVolume.NotFound", "gone"),
            )
        ),
    )
    assert {r.outcome for r in report.results} == {"succeeded"}
    rows = helpers.assert_ledger_complete(database_url, world.volumes, org_slug=ORG)
    assert all(r["aws_response"]["already_done"] for r in rows.values())
    assert sorted(helpers.recorded_mutations(recorder, "DeleteVolume")) == sorted(world.volumes)


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        ("DeleteVolume", "IncorrectState"),
        ("ReleaseAddress", "DependencyViolation"),
        ("ReleaseAddress", "IncorrectState"),
    ],
)
def test_terminal_errors_end_failed_with_the_message(
    operation: str,
    code: str,
    world: helpers.SmallWorld,
    store: Store,
    settings: Settings,
    database_url: str,
) -> None:
    volumes = operation == "DeleteVolume"
    document = helpers.volume_policy() if volumes else helpers.address_policy()
    targets = world.volumes if volumes else world.addresses
    injected: list[faults.Injected] = []
    recorder = aws.CallRecorder()
    report = helpers.run_cleanup(
        store,
        ORG,
        [document],
        settings,
        recorder,
        session_factory=factory(
            lambda s: injected.append(
                faults.fail_with(
                    s.events,
                    f"before-send.ec2.{operation}",
                    status=400,
                    body=faults.ec2_error_body(code, f"injected {code} for the test"),
                )
            )
        ),
    )
    assert {r.outcome for r in report.results} == {"failed"}
    assert injected[0].hits == len(targets)  # a terminal error is not retried
    rows = helpers.real_rows(database_url, ORG)
    assert sorted(r["resource_id"] for r in rows) == sorted(targets)
    assert all(
        r["status"] == "failed" and f"injected {code} for the test" in r["error_message"]
        for r in rows
    )
    assert all(
        f.cleanup_status == "failed"
        for f in store.findings(helpers_filter())
        if f.resource_id in targets
    )


def test_lost_delete_response_then_rerun_deletes_once_and_records_it_done(
    world: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """DeleteVolume takes effect in moto, then its response is lost (read time-out from an
    ``after-call`` handler). The outcome is unknown, so the attempt keeps its intent open instead
    of recording a failure; the next real run reconciles it from AWS. Must hold: exactly one delete
    effect; the removal ends recorded as done once (SAFETY-TESTS: "NotFound after a recorded intent
    counts as done, recorded once"), so its snapshot stays reachable for ``cloudsweep rollback``."""
    document = helpers.volume_policy(maxItemsPerRun=1)
    recorder = aws.CallRecorder()
    first = helpers.run_cleanup(
        store,
        ORG,
        [document],
        settings,
        recorder,
        session_factory=factory(lambda s: faults.lose_response(s.events, "ec2", "DeleteVolume")),
    )
    [result] = first.results
    assert result.outcome == "interrupted" and "outcome unknown" in result.message
    gone = result.resource_id
    assert gone not in helpers.live_volumes(world)
    second = helpers.run_cleanup(store, ORG, [document], settings, recorder)
    assert [r.outcome for r in second.results if r.item_id == result.item_id] == ["recovered"]
    assert helpers.recorded_mutations(recorder, "DeleteVolume").count(gone) == 1
    assert len(helpers.cleanup_snapshots(world, gone)) == 1
    rows = [r for r in helpers.real_rows(database_url, ORG) if r["resource_id"] == gone]
    statuses = [r["status"] for r in rows]
    assert statuses.count("succeeded") == 1, (
        f"the deleted volume {gone} is recorded as {statuses} and its finding is "
        f"{rows[-1]['cleanup_status']!r}: the removal (and its snapshot "
        f"{rows[0]['rollback_data'].get('snapshot_id')}) is never recorded as done, so rollback "
        "refuses it"
    )
