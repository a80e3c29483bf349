"""SAFETY-TESTS "PostgreSQL restart between intent and AWS call, between call and outcome, during
commit": no AWS mutation without a committed intent; after the restart the run reconciles from
AWS and completes the ledger; no duplicate rows.

The fault: at a step of the first item's cleanup (the same steps as the SIGKILL scenarios), a
handler breaks every other connection to the test database from a connection of its own
(``pg_terminate_backend``), as a restart would; the run goes on (or fails) in this process, then a
normal run recovers. Each mutating send is checked, at the moment it leaves, against the database:
a committed ``started`` intent for its target must exist.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from cloudsweep import aws
from cloudsweep.settings import Settings
from cloudsweep.store import Store

from . import helpers

ORG = "db-org"
ACCOUNT = "123456789012"


def break_database_then_recover(
    *,
    resource_type: str,
    step: str,
    endpoint: str,
    database_url: str,
    store: Store,
    settings: Settings,
    account_id: str = ACCOUNT,
    org: str = ORG,
) -> dict[str, Any]:
    target = helpers.scanned_target(resource_type, endpoint, account_id, store, org, settings)
    world, volumes = target.world, target.volumes
    document, operation, eligible = target.document, target.operation, target.eligible
    before = target.live()

    broken: list[int] = []
    hooks = helpers.StepHooks(
        step, resource_type, lambda: broken.append(helpers.terminate_other_backends(database_url))
    )
    first_recorder = aws.CallRecorder()
    journal = helpers.Journal(database_url=database_url)
    hooks.install_database()
    try:
        helpers.run_cleanup(
            store,
            org,
            [document],
            settings,
            first_recorder,
            session_factory=hooks.session_factory(journal),
        )
    except Exception as error:  # the run may fail on the broken connection; it must not act
        first_error: Exception | None = error
    else:
        first_error = None
    finally:
        hooks.uninstall_database()
    assert hooks.fired and broken and broken[0] > 0, "the database was not broken at the step"
    helpers.assert_no_mutation_without_intent(journal.entries)

    recorder = aws.CallRecorder()
    helpers.run_cleanup(
        store,
        org,
        [document],
        settings,
        recorder,
        session_factory=helpers.StepHooks("none", resource_type, lambda: None).session_factory(
            journal
        ),
    )
    after = target.live()
    deleted = before - after
    assert deleted == eligible
    effects = Counter(
        helpers.recorded_mutations(first_recorder, operation)
        + helpers.recorded_mutations(recorder, operation)
    )
    assert effects == Counter(dict.fromkeys(eligible, 1)), f"{operation} sent {effects}"
    helpers.assert_no_mutation_without_intent(journal.entries)
    rows = helpers.assert_ledger_complete(database_url, deleted, org_slug=org)
    if volumes:
        for volume_id, row in rows.items():
            snapshots = helpers.cleanup_snapshots(world, volume_id)
            assert len(snapshots) == 1, f"{volume_id} has {len(snapshots)} snapshots"
            assert row["rollback_data"]["snapshot_id"] == snapshots[0]["SnapshotId"]
    return {"first_error": first_error}


@pytest.mark.parametrize("step", helpers.VOLUME_STEPS)
def test_database_broken_during_snapshot_and_delete(
    step: str, moto_endpoint: str, database_url: str, store: Store, settings: Settings
) -> None:
    break_database_then_recover(
        resource_type="ebs-volume",
        step=step,
        endpoint=moto_endpoint,
        database_url=database_url,
        store=store,
        settings=settings,
    )


@pytest.mark.parametrize("step", helpers.ADDRESS_STEPS)
def test_database_broken_during_release(
    step: str, moto_endpoint: str, database_url: str, store: Store, settings: Settings
) -> None:
    break_database_then_recover(
        resource_type="elastic-ip",
        step=step,
        endpoint=moto_endpoint,
        database_url=database_url,
        store=store,
        settings=settings,
    )


def test_lock_lost_just_before_the_delete_while_another_worker_recovers(
    moto_endpoint: str, database_url: str, store: Store, settings: Settings, tmp_path
) -> None:
    """Invariant 2 under a database restart: worker A passed its last ``lock.alive()`` check and
    is about to send DeleteVolume when PostgreSQL drops every connection (A's advisory lock goes
    with it). Worker B, another process, starts meanwhile, finds A's ``started`` attempt with no
    lock held, and reconciles it. Then A's DeleteVolume leaves.

    Fault: a ``before-call.ec2.DeleteVolume`` handler in A terminates the backends, then runs B
    to completion in a child process before letting A's call go. Must hold: at most one
    DeleteVolume sent per item, across both workers.
    """
    world = helpers.seed_small_world(moto_endpoint, ACCOUNT, volumes=1, addresses=0)
    helpers.scan_world(store, ORG, world, settings)
    document = helpers.volume_policy()
    journal_b = tmp_path / "b.jsonl"
    outputs: list[tuple[int, str]] = []

    def restart_and_let_b_run() -> None:
        helpers.terminate_other_backends(database_url)
        worker_b = helpers.spawn_worker(
            {
                "database_url": database_url,
                "endpoint": moto_endpoint,
                "org": ORG,
                "policies": [document],
                "resource_type": "ebs-volume",
                "journal": str(journal_b),
                # B runs with the real grace period: A is alive and its call may be in flight.
                "takeover_seconds": 900,
            },
            tmp_path,
            "b",
        )
        outputs.append(helpers.finish_worker(worker_b))

    hooks = helpers.StepHooks("before-delete", "ebs-volume", restart_and_let_b_run)
    recorder = aws.CallRecorder()
    try:
        helpers.run_cleanup(
            store, ORG, [document], settings, recorder, session_factory=hooks.session_factory()
        )
    except Exception as error:
        a_error: Exception | None = error
    else:
        a_error = None
    assert hooks.fired and outputs and outputs[0][0] == 0, outputs
    sent = Counter(
        helpers.recorded_mutations(recorder, "DeleteVolume")
        + helpers.sends(helpers.Journal.read(journal_b), "DeleteVolume")
    )
    [volume_id] = world.volumes
    assert volume_id not in helpers.live_volumes(world)
    assert len(helpers.cleanup_snapshots(world, volume_id)) == 1
    assert sent[volume_id] == 1, (
        f"DeleteVolume was sent {sent[volume_id]} times for {volume_id}: worker A sent it after "
        f"losing its lock, worker B had already reconciled and deleted it (A then raised "
        f"{a_error!r})"
    )
    helpers.assert_ledger_complete(database_url, {volume_id}, org_slug=ORG)


@pytest.mark.parametrize(
    ("resource_type", "cut", "fault", "message"),
    [
        (
            "elastic-ip",
            "after-call.ec2.DescribeAddresses",
            "restart",
            "lost the database before the destructive call",
        ),
        (
            "ebs-volume",
            "after-call.ec2.DescribeVolumes",
            "restart",
            "lost the database before the destructive call",
        ),
        (
            "elastic-ip",
            "after-call.ec2.DescribeAddresses",
            "lock-connection",
            "lost the database before the destructive call",
        ),
        (
            "elastic-ip",
            "after-claim",
            "lock-connection",
            "lost the database before the re-check",
        ),
    ],
    ids=[
        "restart-after-recheck-eip",
        "restart-after-recheck-volume",
        "lock-after-recheck",
        "lock-before-recheck",
    ],
)
def test_a_lost_lock_stops_the_run_before_the_destructive_call(
    resource_type: str,
    cut: str,
    fault: str,
    message: str,
    moto_endpoint: str,
    database_url: str,
    store: Store,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Guards: both ``lock.alive()`` checks in ``_carry_out``. The database connection is cut
    (a restart: every backend; or only the lock's connection) between the re-check and the
    destructive call, or before the re-check. The first run must stop that item with its intent
    open and say why (its result is asserted, not swallowed), send no destructive call; the next
    real run reconciles it with exactly one destructive call."""
    world = helpers.seed_small_world(
        moto_endpoint,
        ACCOUNT,
        volumes=1 if resource_type == "ebs-volume" else 0,
        addresses=1 if resource_type == "elastic-ip" else 0,
        protected=False,
    )
    helpers.scan_world(store, ORG, world, settings)
    target = helpers.Target(world, resource_type == "ebs-volume")
    [resource_id] = target.eligible
    fired: list[int] = []

    def cut_connection(**_: Any) -> None:
        if fired:
            return
        fired.append(
            helpers.terminate_other_backends(database_url)
            if fault == "restart"
            else helpers.terminate_lock_holders(database_url)
        )

    def extra(session: aws.AccountSession) -> None:
        if cut != "after-claim":
            session.events.register(cut, cut_connection)

    def after_claim(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        # The claim's INSERT of the intent (in its own transaction, on a pooled connection).
        if statement.lstrip().upper().startswith("INSERT INTO CLEANUP_ACTIONS"):
            cut_connection()

    recorder = aws.CallRecorder()
    journal = helpers.Journal(database_url=database_url)
    factory = helpers.StepHooks("none", resource_type, lambda: None).session_factory(
        journal, extra=extra
    )
    if cut == "after-claim":
        sa.event.listen(sa.engine.Engine, "after_cursor_execute", after_claim)
    try:
        report = helpers.run_cleanup(
            store, ORG, [target.document], settings, recorder, session_factory=factory
        )
    finally:
        if cut == "after-claim":
            sa.event.remove(sa.engine.Engine, "after_cursor_execute", after_claim)
    assert fired and fired[0] > 0, "the connection was not cut"
    [result] = report.results
    assert (result.resource_id, result.outcome, result.message) == (
        resource_id,
        "interrupted",
        message,
    )
    # The operator's log names what stopped, and why: the intent is left for the next run.
    assert (logging.ERROR, f"cleanup of {resource_id} stopped: {message}") in [
        (r.levelno, r.getMessage()) for r in caplog.records if r.name == "cloudsweep.cleaning"
    ]
    assert helpers.recorded_mutations(recorder, target.operation) == []
    if message.endswith("re-check"):
        rechecks = [c for c in recorder.records if c.operation.startswith("Describe")]
        assert rechecks == [], "the re-check ran after the lock was lost"
    assert resource_id in target.live()
    [intent] = helpers.real_rows(database_url, ORG)
    assert (intent["status"], intent["id"]) == ("started", result.action_id)

    second = aws.CallRecorder()
    report = helpers.run_cleanup(store, ORG, [target.document], settings, second)
    assert report.interrupted_found == 1
    assert helpers.recorded_mutations(second, target.operation) == [resource_id]
    assert resource_id not in target.live()
    helpers.assert_ledger_complete(database_url, {resource_id}, org_slug=ORG)
