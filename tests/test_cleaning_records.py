"""What a cleanup run and a rollback leave for the people who read them: the report each item gets
(the CLI's table, the policy's status, the notifications), the ``cleanup_actions`` and
``cleanup_runs`` rows of the audit trail, the interrupted attempts a rerun reconciles, and the
refusals of ``cloudsweep rollback``.

``tests/test_cleaning.py`` proves what is deleted; these tests prove that what is written about it
is exactly what happened. A small moto world (``tests/safety/helpers.py``): one account, a few
addresses or one volume, scanned into a fresh database; AWS is observed in moto and through the
call recorder.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from botocore.exceptions import ReadTimeoutError

from cloudsweep import aws, cleaning, domain, scanning
from cloudsweep.cleanup import elastic_ip
from cloudsweep.cleanup.base import Outcome
from cloudsweep.settings import Settings
from cloudsweep.store import FindingFilter, Store
from cloudsweep.store.engine import get_engine

from . import faults
from .safety import helpers, worlds

ORG = "records-org"
ACCOUNT = "123456789012"
SCANNED = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)  # long enough ago for any minAgeDays


@pytest.fixture
def store(database_url: str) -> Store:
    return Store(database_url)


@pytest.fixture
def settings(moto_endpoint: str) -> Settings:
    return helpers.settings_for(moto_endpoint)


@pytest.fixture
def addresses(moto_endpoint: str, store: Store, settings: Settings) -> helpers.SmallWorld:
    world = helpers.seed_small_world(
        moto_endpoint, ACCOUNT, volumes=0, addresses=2, protected=False
    )
    helpers.scan_world(store, ORG, world, settings)
    return world


@pytest.fixture
def volume(moto_endpoint: str, store: Store, settings: Settings) -> helpers.SmallWorld:
    world = helpers.seed_small_world(
        moto_endpoint, ACCOUNT, volumes=1, addresses=0, protected=False
    )
    helpers.scan_world(store, ORG, world, settings)
    return world


def rows(url: str, table: str) -> list[dict[str, Any]]:
    order = "executed_at, id" if table == "cleanup_actions" else "started_at, id"
    with get_engine(url).connect() as conn:
        found = conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY {order}"))
        return [dict(row._mapping) for row in found]


def user_id(url: str, email: str) -> uuid.UUID:
    with get_engine(url).connect() as conn:
        found = conn.execute(sa.text("SELECT id FROM users WHERE email = :e"), {"e": email})
        return uuid.UUID(str(found.scalar_one()))


def as_json(value: Any) -> Any:
    """What PostgreSQL's JSONB gives back for ``value``."""
    return json.loads(json.dumps(value, default=str))


def failing_before_send(
    operation: str, *, times: int = 1, service: str = "ec2"
) -> cleaning.SessionFactory:
    """Sessions whose first ``times`` calls of ``operation`` end in a read time-out before the
    request leaves: the outcome is unknown to CloudSweep, and nothing happened in AWS.
    ``service`` is botocore's event name of the service ("cloudwatch-logs")."""

    def factory(*args: Any, **kwargs: Any) -> aws.AccountSession:
        session = aws.AccountSession(*args, **kwargs)
        left = [times]

        def lost(**_: Any) -> None:
            if left[0] > 0:
                left[0] -= 1
                raise ReadTimeoutError(endpoint_url="injected://never-sent")

        session.events.register(f"before-call.{service}.{operation}", lost)
        return session

    return factory


def losing_response(service: str, operation: str) -> cleaning.SessionFactory:
    """Sessions whose first ``operation`` takes effect in moto and then loses its answer."""

    def factory(*args: Any, **kwargs: Any) -> aws.AccountSession:
        session = aws.AccountSession(*args, **kwargs)
        faults.lose_response(session.events, service, operation, times=1)
        return session

    return factory


def denying(operation: str) -> cleaning.SessionFactory:
    """Sessions on which ``operation`` is refused by AWS (AccessDenied)."""

    def factory(*args: Any, **kwargs: Any) -> aws.AccountSession:
        session = aws.AccountSession(*args, **kwargs)
        faults.fail_with(
            session.events,
            f"before-send.ec2.{operation}",
            status=403,
            body=faults.ec2_error_body("UnauthorizedOperation", "not for you"),
        )
        return session

    return factory


def released(recorder: aws.CallRecorder) -> list[str]:
    """The addresses of the ReleaseAddress calls that reached moto and were answered."""
    return [
        str(c.params["AllocationId"])
        for c in recorder.calls(operation="ReleaseAddress")
        if not c.params.get("DryRun") and c.outcome == "ok"
    ]


# --- the run's report, its attempts and its own row ---------------------------------------------


def test_a_real_run_reports_and_records_each_attempt_and_the_run(
    addresses: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    seen: list[cleaning.ItemResult] = []
    recorder = aws.CallRecorder()
    policy = helpers.address_policy()
    report = helpers.run_cleanup(store, ORG, [policy], settings, recorder, progress=seen.append)

    assert sorted(released(recorder)) == sorted(addresses.addresses)
    assert seen == report.results and report.interrupted_found == 0
    decisions = {d.candidate.id: d for d in report.plan.decisions}
    attempts = {row["id"]: row for row in rows(database_url, "cleanup_actions")}
    actor = user_id(database_url, helpers.ACTOR)
    for result in report.results:
        decision = decisions[result.item_id]
        candidate = decision.candidate
        assert result.action_id is not None
        row = attempts[result.action_id]
        public_ip = row["rollback_data"]["public_ip"]
        note = f"released {public_ip} ({candidate.resource_id})"
        assert result == cleaning.ItemResult(
            item_id=candidate.id,
            resource_type="elastic-ip",
            resource_id=candidate.resource_id,
            region=helpers.REGION,
            account_id=ACCOUNT,
            policy="idle-ips",
            action="release",
            outcome="succeeded",
            message=note,
            action_id=row["id"],
            monthly_cost=candidate.monthly_cost,
        )
        assert candidate.monthly_cost > 0
        # The audit trail: what was about to be done, by whom, under which decision.
        assert row["action_description"] == (
            f"release elastic-ip {candidate.resource_id} in {helpers.REGION} of account {ACCOUNT}"
        )
        assert row["decision_reason"] == f"{decision.kind.value}: {decision.reason}"
        assert decision.reason
        assert (row["action"], row["action_type"], row["policy_name"]) == (
            "release",
            "release",
            "idle-ips",
        )
        assert (row["execution_method"], row["executed_by"], row["run_id"]) == (
            "manual",
            actor,
            report.run_id,
        )
        assert (row["status"], row["success"], row["dry_run"], row["rollback_possible"]) == (
            "succeeded",
            True,
            False,
            False,
        )
        assert row["estimated_monthly_savings"] == candidate.monthly_cost
        assert row["aws_response"]["already_done"] is False
        assert row["aws_response"]["note"] == note

    [run] = rows(database_url, "cleanup_runs")
    assert run["id"] == report.run_id
    assert (run["dry_run"], run["execution_method"], run["executed_by"], run["status"]) == (
        False,
        "manual",
        actor,
        "completed",
    )
    assert run["summary"] == {"outcomes": {"succeeded": 2}, "interrupted_found": 0}
    assert run["policies"] == as_json([p.to_document() for p in helpers.parse([policy])])
    assert run["plan"] == as_json(report.plan.document())
    assert len(run["plan"]["actionable"]) == 2
    assert run["completed_at"] is not None and run["completed_at"] >= run["started_at"]


def test_a_dry_run_reports_and_records_what_it_checked(
    addresses: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    recorder = aws.CallRecorder()
    clock = datetime.now(UTC) + timedelta(hours=1)  # the run's own clock, not the database's
    report = helpers.run_cleanup(
        store,
        ORG,
        [helpers.address_policy()],
        settings,
        recorder,
        dry_run=True,
        now=lambda: clock,
    )
    assert released(recorder) == [] and helpers.live_addresses(addresses) >= set(
        addresses.addresses
    )
    attempts = {row["id"]: row for row in rows(database_url, "cleanup_actions")}
    assert len(attempts) == 2
    for result in report.results:
        assert result.action_id is not None
        row = attempts[result.action_id]
        assert (result.outcome, result.policy, result.action) == (
            "dry-run-ok",
            "idle-ips",
            "release",
        )
        assert row["dry_run"] and row["status"] == "succeeded" and row["run_id"] == report.run_id
        assert row["executed_by"] == user_id(database_url, helpers.ACTOR)
        assert row["error_message"] is None
        assert (row["executed_at"], row["completed_at"]) == (clock, clock)  # the run's clock
        # What the dry run asked AWS, and the re-check's facts it judged by.
        assert row["aws_response"]["checked"] == ["ec2:ReleaseAddress"]
        facts = row["aws_response"]["recheck"]
        assert facts["public_ip"] and facts["tags"]["team"] == "net"
    [run] = rows(database_url, "cleanup_runs")
    assert (run["dry_run"], run["execution_method"], run["status"]) == (
        True,
        "manual",
        "completed",
    )
    assert run["summary"] == {"outcomes": {"dry-run-ok": 2}, "interrupted_found": 0}


def test_a_dry_run_describes_the_action_with_the_policys_parameters(
    moto_endpoint: str, store: Store, settings: Settings
) -> None:
    """A dry run shows what the real run would do with the policy's own parameters: a log group
    policy asking for 7 days is described as 7 days, not the action's default of 30."""
    world = worlds.WORLDS[("cloudwatch-log-group", "set-retention")]
    seeded = world.seed(moto_endpoint, ACCOUNT)
    worlds.scan(store, ORG, world, moto_endpoint, ACCOUNT, settings)
    report = helpers.run_cleanup(
        store,
        ORG,
        [world.document(parameters={"retention_days": 7})],
        settings,
        aws.CallRecorder(),
        dry_run=True,
    )
    assert sorted(r.resource_id for r in report.results) == sorted(seeded)
    for result in report.results:
        assert (result.outcome, result.message) == (
            "dry-run-ok",
            f"would set a retention of 7 days on {result.resource_id} (CloudWatch Logs has no "
            "DryRun: checked by reading the group)",
        )
    assert world.awaiting(moto_endpoint, ACCOUNT) >= set(seeded)  # AWS unchanged


def test_a_dry_run_refuses_what_the_run_would_refuse_for_every_protection_tag(
    addresses: helpers.SmallWorld, store: Store, settings: Settings
) -> None:
    """Tagged after the scan: one address with a built-in protection tag, the other with a tag
    only this run names (``protection_tags``). The dry run refuses both, each with the action's
    own re-check saying why, as the real run would."""
    first, second = sorted(addresses.addresses)
    ec2 = helpers.account_client(addresses.endpoint, ACCOUNT, "ec2")
    ec2.create_tags(Resources=[first], Tags=[{"Key": "do-not-delete", "Value": "true"}])
    ec2.create_tags(Resources=[second], Tags=[{"Key": "hold-me", "Value": "yes"}])
    recorder = aws.CallRecorder()
    report = helpers.run_cleanup(
        store,
        ORG,
        [helpers.address_policy()],
        settings,
        recorder,
        dry_run=True,
        protection_tags=("hold-me",),
    )
    assert {r.resource_id: (r.outcome, r.message) for r in report.results} == {
        first: ("dry-run-fail", "would refuse: address is now protected by tag do-not-delete=true"),
        second: ("dry-run-fail", "would refuse: address is now protected by tag hold-me=yes"),
    }
    assert released(recorder) == []


def test_a_dry_run_whose_check_fails_in_aws_reports_the_error(
    addresses: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    report = helpers.run_cleanup(
        store,
        ORG,
        [helpers.address_policy()],
        settings,
        aws.CallRecorder(),
        dry_run=True,
        session_factory=denying("DescribeAddresses"),
    )
    assert {r.outcome for r in report.results} == {"dry-run-fail"} and len(report.results) == 2
    for result in report.results:
        assert "not for you" in result.message
        [row] = [r for r in rows(database_url, "cleanup_actions") if r["id"] == result.action_id]
        assert row["status"] == "failed" and row["error_message"] == result.message
        assert row["aws_response"] == {
            "error_kind": aws.ErrorKind.ACCESS_DENIED.value,
            "code": "UnauthorizedOperation",
        }


def test_a_run_that_raises_is_recorded_as_failed(
    addresses: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    def broken(_: cleaning.ItemResult) -> None:
        raise RuntimeError("the status update failed")

    with pytest.raises(RuntimeError, match="the status update failed"):
        helpers.run_cleanup(
            store, ORG, [helpers.address_policy()], settings, aws.CallRecorder(), progress=broken
        )
    [run] = rows(database_url, "cleanup_runs")
    assert run["status"] == "failed" and run["completed_at"] is not None
    assert run["summary"] == {"outcomes": {"succeeded": 1}, "interrupted_found": 0}


# --- run_cleanup_isolated: one bad policy cannot stop the others --------------------------------


def test_one_policy_whose_run_fails_is_named_with_its_error(
    addresses: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """One policy: its failure is reported on one line, and the run is not repeated."""
    long = "x" * 400

    def broken(_: cleaning.ItemResult) -> None:
        raise RuntimeError(f"  the status update failed {long}\nSELECT secret FROM somewhere")

    options = cleaning.CleanupOptions(settings=settings, progress=broken)
    policy = helpers.parse([helpers.address_policy(dryRun=True)])
    runs = cleaning.run_cleanup_isolated(store, ORG, policy, options)
    assert runs.reports == [] and runs.results == []
    assert runs.failed == {
        "idle-ips": f"RuntimeError: {('the status update failed ' + long)[:300]}"
    }
    assert len(rows(database_url, "cleanup_runs")) == 1


def test_a_policy_whose_run_fails_without_a_message_is_named_with_the_errors_type(
    addresses: helpers.SmallWorld, store: Store, settings: Settings
) -> None:
    """An exception with no text still names the policy's failure: its type, and nothing made
    up after it."""

    def broken(_: cleaning.ItemResult) -> None:
        raise RuntimeError()

    options = cleaning.CleanupOptions(settings=settings, progress=broken)
    policy = helpers.parse([helpers.address_policy(dryRun=True)])
    runs = cleaning.run_cleanup_isolated(store, ORG, policy, options)
    assert runs.failed == {"idle-ips": "RuntimeError: "}


def test_a_failed_run_of_several_policies_is_rerun_policy_by_policy(
    moto_endpoint: str,
    store: Store,
    settings: Settings,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = helpers.seed_small_world(
        moto_endpoint, ACCOUNT, volumes=1, addresses=1, protected=False
    )
    helpers.scan_world(store, ORG, world, settings)

    def fails_on_volumes(result: cleaning.ItemResult) -> None:
        if result.resource_type == "ebs-volume":
            raise RuntimeError("no status for volumes")

    options = cleaning.CleanupOptions(settings=settings, progress=fails_on_volumes)
    documents = [
        helpers.volume_policy(name="b-volumes", dryRun=True),
        helpers.address_policy(name="a-addresses", dryRun=True),
    ]
    runs = cleaning.run_cleanup_isolated(store, ORG, helpers.parse(documents), options)
    # Together (failed), then each alone, in name order.
    assert [r["status"] for r in rows(database_url, "cleanup_runs")] == [
        "failed",
        "completed",
        "failed",
    ]
    assert runs.failed == {"b-volumes": "RuntimeError: no status for volumes"}
    [report] = runs.reports
    assert [(r.policy, r.resource_id, r.outcome) for r in runs.results] == [
        ("a-addresses", world.addresses[0], "dry-run-ok")
    ]
    assert report.results == runs.results
    # What the operator's log says (its warnings are what an operator reads to find the policy).
    warnings = [r.getMessage() for r in caplog.records if r.name == "cloudsweep.cleaning"]
    assert (
        f"cleanup run of {ORG}'s 2 policies failed (RuntimeError: no status for volumes); "
        "running each policy alone"
    ) in warnings
    assert f"policy b-volumes of {ORG} failed: RuntimeError: no status for volumes" in warnings

    with pytest.raises(cleaning.CleanupRefused, match="'nobody' has no findings; scan it first"):
        cleaning.run_cleanup_isolated(store, "nobody", helpers.parse(documents), options)


def test_an_attempt_whose_outcome_another_worker_recorded_says_so(
    addresses: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """Two workers that both finish one attempt (one took it over while the other was still in
    its call): the one that comes second records nothing and reports the outcome reconciled."""

    class RecordedByAnother(Store):
        def finish(self, action_id: uuid.UUID, **kwargs: Any) -> bool:
            assert super().finish(action_id, **kwargs)  # the other worker, first
            return super().finish(action_id, **kwargs)

    recorder = aws.CallRecorder()
    report = helpers.run_cleanup(
        RecordedByAnother(database_url),
        ORG,
        [helpers.address_policy(maxItemsPerRun=1)],
        settings,
        recorder,
    )
    [result] = report.results
    [row] = rows(database_url, "cleanup_actions")
    assert (result.outcome, result.message, result.action_id) == (
        "reconciled",
        "another worker recorded this attempt's outcome",
        row["id"],
    )
    assert (row["waste_item_id"], row["status"]) == (result.item_id, "succeeded")
    assert released(recorder) == [result.resource_id]


def test_an_action_that_raises_is_recorded_failed_and_logged(
    addresses: helpers.SmallWorld,
    store: Store,
    settings: Settings,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A defect (not an AWS error) inside the action: the attempt gets its one outcome, failed,
    with the error's type and text; the item is failed, not left claimed; the log has the
    traceback and names the resource. Nothing was released."""

    def raising(*args: Any, **kwargs: Any) -> aws.AccountSession:
        session = aws.AccountSession(*args, **kwargs)

        def boom() -> None:
            raise ValueError("a defect in the action")

        faults.on_call(session.events, "ec2", "ReleaseAddress", boom)
        return session

    recorder = aws.CallRecorder()
    report = helpers.run_cleanup(
        store,
        ORG,
        [helpers.address_policy(maxItemsPerRun=1)],
        settings,
        recorder,
        session_factory=raising,
    )
    [result] = report.results
    message = "internal error: ValueError: a defect in the action"
    [row] = rows(database_url, "cleanup_actions")
    assert (result.outcome, result.message, result.action_id) == ("failed", message, row["id"])
    assert (row["status"], row["error_message"], row["aws_response"]) == ("failed", message, None)
    with get_engine(database_url).connect() as conn:
        item = conn.execute(
            sa.text("SELECT cleanup_status, cleanup_error FROM waste_items WHERE id = :id"),
            {"id": result.item_id},
        ).one()
    assert tuple(item) == ("failed", message)
    [logged] = [
        r for r in caplog.records if r.name == "cloudsweep.cleaning" and r.levelno == logging.ERROR
    ]
    assert logged.getMessage() == f"cleanup of {result.resource_id} raised"
    # The traceback: on the record, or (once cloudsweep.redaction is installed, as the operator
    # and the CLI install it) already rendered, redacted, into exc_text.
    rendered = logging.Formatter().formatException(logged.exc_info) if logged.exc_info else ""
    traceback_text = logged.exc_text or rendered
    assert "ValueError: a defect in the action" in traceback_text
    assert released(recorder) == []
    assert result.resource_id in helpers.live_addresses(addresses)


@pytest.mark.parametrize(
    ("already_done", "note"), [(False, "done"), (True, "already done by an earlier attempt")]
)
def test_an_outcome_without_a_note_is_reported_with_what_happened(
    addresses: helpers.SmallWorld,
    store: Store,
    settings: Settings,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    already_done: bool,
    note: str,
) -> None:
    """An action whose outcome carries no note (a new action, written to the base contract
    alone): the report and the ledger still say whether this attempt did it or found it done."""
    released_by = elastic_ip.ReleaseAddress.execute

    def without_note(self: Any, *args: Any) -> Outcome:
        outcome = released_by(self, *args)
        return Outcome(outcome.response, already_done=already_done)

    monkeypatch.setattr(elastic_ip.ReleaseAddress, "execute", without_note)
    recorder = aws.CallRecorder()
    report = helpers.run_cleanup(
        store, ORG, [helpers.address_policy(maxItemsPerRun=1)], settings, recorder
    )
    [result] = report.results
    [row] = rows(database_url, "cleanup_actions")
    assert (result.outcome, result.message) == ("succeeded", note)
    assert (row["status"], row["aws_response"]["note"]) == ("succeeded", note)
    assert row["aws_response"]["already_done"] is already_done


def test_a_policy_acts_only_in_the_accounts_it_selects(
    addresses: helpers.SmallWorld, store: Store, settings: Settings, moto_endpoint: str
) -> None:
    """Two accounts of one organization, each with idle addresses; the policy selects the first
    (``accounts``, as its CRD's account selector resolves it). The run plans and releases the
    first account's addresses only; the other's stay, seen in moto."""
    other = helpers.seed_small_world(
        moto_endpoint, "210987654321", volumes=0, addresses=2, protected=False
    )
    helpers.scan_world(store, ORG, other, settings)
    recorder = aws.CallRecorder()
    report = helpers.run_cleanup(
        store, ORG, [helpers.address_policy(accounts=[ACCOUNT])], settings, recorder
    )
    assert {d.candidate.account_id for d in report.plan.decisions} == {ACCOUNT}
    assert sorted(r.resource_id for r in report.results if r.outcome == "succeeded") == sorted(
        addresses.addresses
    )
    assert helpers.live_addresses(addresses) == set()
    assert helpers.live_addresses(other) == set(other.addresses)


def test_a_manual_run_that_acts_needs_who_runs_it(
    addresses: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """A manual run (the CLI's) that would act names nobody: refused before anything is planned
    or recorded, saying how to name the person."""
    options = cleaning.CleanupOptions(
        settings=settings, method=domain.ExecutionMethod.MANUAL, dry_run=False
    )
    with pytest.raises(cleaning.CleanupRefused) as refused:
        cleaning.run_cleanup(store, ORG, helpers.parse([helpers.address_policy()]), options)
    assert str(refused.value) == (
        "a manual cleanup that acts needs the identity of who runs it (--as EMAIL)"
    )
    assert rows(database_url, "cleanup_runs") == []
    assert helpers.live_addresses(addresses) == set(addresses.addresses)


def test_a_run_is_dated_by_its_clock_and_its_calls_share_the_request_budget(
    addresses: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """The run's record starts at the run's own clock (the operator's, not the database's), and
    its AWS calls take from the request budget every process shares."""
    assert settings.aws_rate_budget
    with get_engine(database_url).begin() as conn:
        conn.execute(sa.text("DELETE FROM aws_request_budgets"))
    at = domain.utcnow().replace(microsecond=0) + timedelta(hours=1)  # not the database's now
    report = helpers.run_cleanup(
        store, ORG, [helpers.address_policy()], settings, aws.CallRecorder(), now=lambda: at
    )
    assert {r.outcome for r in report.results} == {"succeeded"}
    [run] = rows(database_url, "cleanup_runs")
    assert (run["id"], run["started_at"], run["completed_at"]) == (report.run_id, at, at)
    with get_engine(database_url).connect() as conn:
        budgets = set(
            conn.execute(sa.text("SELECT account_id, region, service FROM aws_request_budgets"))
        )
    assert (ACCOUNT, helpers.REGION, "ec2") in budgets


# --- interrupted attempts, reconciled by the next real run ---------------------------------------


def test_an_attempt_whose_release_took_effect_is_recorded_done_once(
    addresses: helpers.SmallWorld,
    store: Store,
    settings: Settings,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = aws.CallRecorder()
    one = helpers.address_policy(maxItemsPerRun=1)
    first = helpers.run_cleanup(
        store,
        ORG,
        [one],
        settings,
        recorder,
        session_factory=losing_response("ec2", "ReleaseAddress"),
    )
    [lost] = first.results
    assert lost.outcome == "interrupted"
    assert lost.message.startswith("outcome unknown, will be reconciled: ")
    assert lost.resource_id not in helpers.live_addresses(addresses)
    # The operator's log names the resource and the error, and says it is left, not failed.
    error = lost.message.removeprefix("outcome unknown, will be reconciled: ")
    assert "ReleaseAddress" in error
    assert (
        logging.WARNING,
        f"cleanup of {lost.resource_id}: outcome unknown ({error}); left for reconciliation",
    ) in [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "cloudsweep.cleaning"]

    # A worker still holds the item: its attempt is left alone.
    with store.item_lock(lost.item_id) as held:
        assert held is not None
        busy = helpers.run_cleanup(store, ORG, [one], settings, recorder)
    assert busy.interrupted_found == 1
    assert lost.item_id not in {r.item_id for r in busy.results}
    assert [
        r["status"] for r in rows(database_url, "cleanup_actions") if r["id"] == lost.action_id
    ] == ["started"]

    second = helpers.run_cleanup(store, ORG, [one], settings, recorder)
    assert second.interrupted_found == 1
    [again] = [r for r in second.results if r.item_id == lost.item_id]
    assert again == cleaning.ItemResult(
        item_id=lost.item_id,
        resource_type="elastic-ip",
        resource_id=lost.resource_id,
        region=helpers.REGION,
        account_id=ACCOUNT,
        policy="idle-ips",
        action="release",
        outcome="recovered",
        message="completed by an interrupted attempt (the resource is gone)",
        action_id=lost.action_id,
        monthly_cost=lost.monthly_cost,
    )
    # The lost call was the only one: the rerun saw the address gone and sent nothing.
    assert helpers.recorded_mutations(recorder, "ReleaseAddress").count(lost.resource_id) == 1
    [row] = [r for r in rows(database_url, "cleanup_actions") if r["id"] == lost.action_id]
    assert (row["status"], row["success"]) == ("succeeded", True)
    assert row["aws_response"] == {
        "recovered": True,
        "note": "the resource was gone when the attempt was reconciled",
    }
    cleaned = store.findings(FindingFilter(ORG, cleanup_status="cleaned"))
    assert lost.resource_id in {i.resource_id for i in cleaned}
    run = next(r for r in rows(database_url, "cleanup_runs") if r["id"] == second.run_id)
    assert run["summary"]["interrupted_found"] == 1
    assert run["summary"]["outcomes"]["recovered"] == 1


def test_an_attempt_whose_release_never_left_is_carried_on_by_the_next_run(
    addresses: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    recorder = aws.CallRecorder()
    one = helpers.address_policy(maxItemsPerRun=1)
    first = helpers.run_cleanup(
        store, ORG, [one], settings, recorder, session_factory=failing_before_send("ReleaseAddress")
    )
    [lost] = first.results
    assert lost.outcome == "interrupted" and released(recorder) == []
    assert lost.resource_id in helpers.live_addresses(addresses)
    [intent] = [r for r in rows(database_url, "cleanup_actions") if r["id"] == lost.action_id]
    public_ip = intent["rollback_data"]["public_ip"]

    # The re-check of the reconciliation fails in AWS: nothing is decided, the intent stays.
    denied = helpers.run_cleanup(
        store, ORG, [one], settings, recorder, session_factory=denying("DescribeAddresses")
    )
    [stuck] = [r for r in denied.results if r.item_id == lost.item_id]
    assert (stuck.outcome, stuck.policy, stuck.action_id) == (
        "interrupted",
        "idle-ips",
        lost.action_id,
    )
    assert stuck.message.startswith("could not reconcile: ") and "not for you" in stuck.message
    assert released(recorder) == []

    second = helpers.run_cleanup(store, ORG, [one], settings, recorder)
    [again] = [r for r in second.results if r.item_id == lost.item_id]
    assert again == cleaning.ItemResult(
        item_id=lost.item_id,
        resource_type="elastic-ip",
        resource_id=lost.resource_id,
        region=helpers.REGION,
        account_id=ACCOUNT,
        policy="idle-ips",
        action="release",
        outcome="succeeded",
        message=f"resumed an interrupted attempt: released {public_ip} ({lost.resource_id})",
        action_id=lost.action_id,
        monthly_cost=lost.monthly_cost,
    )
    assert released(recorder) == [lost.resource_id]
    assert lost.resource_id not in helpers.live_addresses(addresses)
    [row] = [r for r in rows(database_url, "cleanup_actions") if r["id"] == lost.action_id]
    assert (row["status"], row["aws_response"]["note"]) == (
        "succeeded",
        f"released {public_ip} ({lost.resource_id})",
    )


def test_a_run_and_a_resumed_attempt_act_with_the_policys_parameters(
    moto_endpoint: str, store: Store, settings: Settings
) -> None:
    """A policy asking for 7 days of retention: the first run sets 7 on one log group and is
    interrupted before its PutRetentionPolicy of the other leaves; the next run carries that
    attempt on, with 7 days too. AWS ends with 7 on both, never the action's default of 30."""
    world = worlds.WORLDS[("cloudwatch-log-group", "set-retention")]
    seeded = world.seed(moto_endpoint, ACCOUNT)
    worlds.scan(store, ORG, world, moto_endpoint, ACCOUNT, settings)
    policy = world.document(parameters={"retention_days": 7})
    recorder = aws.CallRecorder()
    lose = failing_before_send("PutRetentionPolicy", service="cloudwatch-logs")

    first = helpers.run_cleanup(store, ORG, [policy], settings, recorder, session_factory=lose)
    outcomes = {r.resource_id: r.outcome for r in first.results}
    assert sorted(outcomes.values()) == ["interrupted", "succeeded"], first.results
    [lost] = [r for r in first.results if r.outcome == "interrupted"]
    second = helpers.run_cleanup(store, ORG, [policy], settings, recorder)

    [again] = [r for r in second.results if r.item_id == lost.item_id]
    assert (again.outcome, again.action_id) == ("succeeded", lost.action_id), again.message
    assert again.message.startswith("resumed an interrupted attempt: "), again.message
    logs = helpers.account_client(moto_endpoint, ACCOUNT, "logs")
    retention = {
        name: [
            g.get("retentionInDays")
            for g in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        ]
        for name in seeded
    }
    assert retention == {name: [7] for name in seeded}


def test_a_run_refuses_what_a_protection_tag_only_it_names_holds(
    addresses: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """The run's own protection tags (a ScanSchedule's, ``--protect-tag``) hold an address
    tagged after the scan, as the built-in ones do; the other address is released."""
    held, free = sorted(addresses.addresses)
    ec2 = helpers.account_client(addresses.endpoint, ACCOUNT, "ec2")
    ec2.create_tags(Resources=[held], Tags=[{"Key": "hold-me", "Value": "yes"}])
    recorder = aws.CallRecorder()

    report = helpers.run_cleanup(
        store, ORG, [helpers.address_policy()], settings, recorder, protection_tags=("hold-me",)
    )

    outcomes = {r.resource_id: (r.outcome, r.message) for r in report.results}
    assert outcomes[held] == ("refused", "address is now protected by tag hold-me=yes")
    # the refusal names its ledger row
    [refused] = [r for r in report.results if r.resource_id == held]
    [row] = [r for r in rows(database_url, "cleanup_actions") if r["id"] == refused.action_id]
    assert (row["status"], row["error_message"]) == (
        "refused",
        "refused: address is now protected by tag hold-me=yes",
    )
    assert outcomes[free][0] == "succeeded", outcomes
    assert released(recorder) == [free]
    assert held in helpers.live_addresses(addresses)


def test_a_run_hands_the_action_the_protection_tags_its_scan_named(
    moto_endpoint: str, store: Store, settings: Settings
) -> None:
    """A protection tag only the scan's parameters name, put on an address after the scan: the
    action's own re-check refuses it, in its own words (the executor's check of the scan's tags
    stands behind it, in other words)."""
    world = helpers.seed_small_world(
        moto_endpoint, ACCOUNT, volumes=0, addresses=1, protected=False
    )
    only_the_scan = scanning.ScanOptions(
        detectors=["elastic-ip"],
        parameters={"elastic-ip": {"protection_tags": ["cloudsweep.io/protect", "finops/keep"]}},
    )
    helpers.scan_world(store, ORG, world, settings, options=only_the_scan)
    [address] = world.addresses
    ec2 = helpers.account_client(moto_endpoint, ACCOUNT, "ec2")
    ec2.create_tags(Resources=[address], Tags=[{"Key": "finops/keep", "Value": "yes"}])
    recorder = aws.CallRecorder()

    report = helpers.run_cleanup(store, ORG, [helpers.address_policy()], settings, recorder)

    assert [(r.outcome, r.message) for r in report.results] == [
        ("refused", "address is now protected by tag finops/keep=yes")
    ]
    assert released(recorder) == []


def test_an_item_another_worker_holds_is_skipped_and_left_alone(
    addresses: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """While another worker holds an item's lock, a run skips it, records no attempt for it,
    and makes no call on it."""
    recorder = aws.CallRecorder()
    [busy_item, _] = sorted(
        store.findings(FindingFilter(ORG, resource_type="elastic-ip")), key=lambda f: f.id
    )
    with store.item_lock(busy_item.id) as held:
        assert held is not None
        report = helpers.run_cleanup(store, ORG, [helpers.address_policy()], settings, recorder)

    [skipped] = [r for r in report.results if r.item_id == busy_item.id]
    assert (skipped.outcome, skipped.message, skipped.action_id) == (
        "skipped",
        "another worker is acting on this item",
        None,
    )
    assert busy_item.resource_id not in released(recorder)
    assert busy_item.resource_id in helpers.live_addresses(addresses)
    assert [
        r for r in rows(database_url, "cleanup_actions") if r["waste_item_id"] == busy_item.id
    ] == []


def test_a_resumed_attempt_applies_every_tag_rule_and_protection_of_its_run(
    moto_endpoint: str, store: Store, settings: Settings, database_url: str
) -> None:
    """Three attempts interrupted before their release; before the rerun one address gets the
    policy's excluded tag, one a protection tag only the rerun names, one a built-in protection
    tag. The rerun refuses all three, each for its own reason as the action's re-check gives
    it, and releases nothing."""
    world = helpers.seed_small_world(
        moto_endpoint, ACCOUNT, volumes=0, addresses=3, protected=False
    )
    helpers.scan_world(store, ORG, world, settings)
    policy = helpers.address_policy(
        rules={"minAgeDays": 0, "minConfidence": 50, "excludeTags": {"keep": "yes"}}
    )
    recorder = aws.CallRecorder()
    first = helpers.run_cleanup(
        store,
        ORG,
        [policy],
        settings,
        recorder,
        session_factory=failing_before_send("ReleaseAddress", times=3),
    )
    assert [r.outcome for r in first.results] == ["interrupted"] * 3
    excluded, held, protected = sorted(r.resource_id for r in first.results)
    ec2 = helpers.account_client(moto_endpoint, ACCOUNT, "ec2")
    for resource, key, value in (
        (excluded, "keep", "yes"),
        (held, "hold-me", "yes"),
        (protected, "do-not-delete", "true"),
    ):
        ec2.create_tags(Resources=[resource], Tags=[{"Key": key, "Value": value}])
    rerun = helpers.run_cleanup(
        store, ORG, [policy], settings, recorder, protection_tags=("hold-me",)
    )
    resumed = "resumed an interrupted attempt: "
    assert {r.resource_id: (r.outcome, r.message) for r in rerun.results} == {
        excluded: ("refused", f"{resumed}now has the policy's excluded tags keep"),
        held: ("refused", f"{resumed}address is now protected by tag hold-me=yes"),
        protected: ("refused", f"{resumed}address is now protected by tag do-not-delete=true"),
    }
    assert released(recorder) == []
    assert helpers.live_addresses(world) >= {excluded, held, protected}


def test_an_attempt_whose_policy_left_the_run_is_refused_with_its_undo_data(
    addresses: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    recorder = aws.CallRecorder()
    one = helpers.address_policy(maxItemsPerRun=1)
    first = helpers.run_cleanup(
        store, ORG, [one], settings, recorder, session_factory=failing_before_send("ReleaseAddress")
    )
    [lost] = first.results
    [intent] = [r for r in rows(database_url, "cleanup_actions") if r["id"] == lost.action_id]
    rerun = helpers.run_cleanup(store, ORG, [], settings, recorder)
    [refused] = rerun.results
    assert refused == cleaning.ItemResult(
        item_id=lost.item_id,
        resource_type="elastic-ip",
        resource_id=lost.resource_id,
        region=helpers.REGION,
        account_id=ACCOUNT,
        policy="idle-ips",
        action="release",
        outcome="refused",
        message="interrupted; its policy is not in this run",
        action_id=lost.action_id,
        monthly_cost=lost.monthly_cost,
    )
    [row] = [r for r in rows(database_url, "cleanup_actions") if r["id"] == lost.action_id]
    assert row["status"] == "refused"
    assert (
        row["error_message"] == "interrupted, and no longer allowed: its policy is not in this run"
    )
    assert row["aws_response"] == {"recovered": True, "rollback_data_kept": intent["rollback_data"]}
    assert intent["rollback_data"]["public_ip"]
    assert lost.resource_id in helpers.live_addresses(addresses) and released(recorder) == []


def test_an_attempt_recorded_without_its_policys_name_is_refused_and_named_unknown(
    addresses: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """An interrupted attempt whose record has no policy name (as rows from before the ledger
    kept it): no policy of the run can be its own, so it is refused, and the report says its
    policy is unknown ("?") rather than naming one."""
    recorder = aws.CallRecorder()
    one = helpers.address_policy(maxItemsPerRun=1)
    first = helpers.run_cleanup(
        store, ORG, [one], settings, recorder, session_factory=failing_before_send("ReleaseAddress")
    )
    [lost] = first.results
    with get_engine(database_url).begin() as conn:
        conn.execute(
            sa.text("UPDATE cleanup_actions SET policy_name = NULL WHERE id = :id"),
            {"id": lost.action_id},
        )
    rerun = helpers.run_cleanup(store, ORG, [one], settings, recorder)
    [refused] = [r for r in rerun.results if r.action_id == lost.action_id]
    assert (refused.policy, refused.action, refused.outcome, refused.message) == (
        "?",
        "release",
        "refused",
        "interrupted; its policy is not in this run",
    )
    assert lost.resource_id in helpers.live_addresses(addresses)
    assert lost.resource_id not in released(recorder)


def lost_while_the_snapshot_completes() -> cleaning.SessionFactory:
    """Sessions on which CreateSnapshot answers ``pending``, as AWS does (moto's snapshots are
    complete at once), and the wait for it then ends in a read time-out: a worker lost in the
    middle of its prepare, after it made the snapshot."""

    def factory(*args: Any, **kwargs: Any) -> aws.AccountSession:
        session = aws.AccountSession(*args, **kwargs)
        made: list[bool] = []

        def pending(parsed: dict[str, Any], **_: Any) -> None:
            parsed["State"] = "pending"
            made.append(True)

        def lost(**_: Any) -> None:
            if made:  # the lookup of an earlier snapshot before it goes through
                raise ReadTimeoutError(endpoint_url="injected://never-sent")

        session.events.register("after-call.ec2.CreateSnapshot", pending)
        session.events.register("before-call.ec2.DescribeSnapshots", lost)
        return session

    return factory


def assert_snapshot_checkpointed(
    volume: helpers.SmallWorld, database_url: str, lost: cleaning.ItemResult
) -> None:
    """The one snapshot tagged with the lost attempt's ID is in its record, which is still
    ``started``, and the volume is still there."""
    ec2 = helpers.account_client(volume.endpoint, ACCOUNT, "ec2")
    [made] = ec2.describe_snapshots(
        Filters=[{"Name": f"tag:{helpers.ACTION_TAG}", "Values": [str(lost.action_id)]}]
    )["Snapshots"]
    [row] = [r for r in rows(database_url, "cleanup_actions") if r["id"] == lost.action_id]
    assert row["status"] == "started"
    assert row["rollback_data"]["snapshot_id"] == made["SnapshotId"]
    assert lost.resource_id in helpers.live_volumes(volume)


def test_an_attempt_checkpoints_what_it_makes_before_it_finishes_the_step(
    volume: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """A first attempt lost while waiting for its snapshot to complete: the snapshot is in the
    attempt's record already (its checkpoint), so the next run finds it there and makes none."""
    recorder = aws.CallRecorder()
    first = helpers.run_cleanup(
        store,
        ORG,
        [helpers.volume_policy()],
        settings,
        recorder,
        session_factory=lost_while_the_snapshot_completes(),
    )
    [lost] = first.results
    assert lost.outcome == "interrupted"
    assert_snapshot_checkpointed(volume, database_url, lost)


def test_a_resumed_attempt_checkpoints_what_it_makes_before_it_finishes_the_step(
    volume: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """The first attempt stops before its snapshot; the rerun that resumes it makes the snapshot
    and is lost while waiting for it to complete: the snapshot is in the attempt's record
    already (its checkpoint), so the next run finds it there."""
    policy = helpers.volume_policy()
    recorder = aws.CallRecorder()
    first = helpers.run_cleanup(
        store,
        ORG,
        [policy],
        settings,
        recorder,
        session_factory=failing_before_send("CreateSnapshot"),
    )
    [lost] = first.results
    assert lost.outcome == "interrupted"
    second = helpers.run_cleanup(
        store,
        ORG,
        [policy],
        settings,
        recorder,
        session_factory=lost_while_the_snapshot_completes(),
    )
    [again] = [r for r in second.results if r.action_id == lost.action_id]
    assert again.outcome == "interrupted"
    assert_snapshot_checkpointed(volume, database_url, lost)


def test_a_live_workers_attempt_is_not_taken_over_before_the_grace_period(
    addresses: helpers.SmallWorld, store: Store, moto_endpoint: str, database_url: str
) -> None:
    """An attempt whose lock is free (a database restart freed it) but whose worker gave a sign of
    life less than ``cleanup_takeover_seconds`` ago may still have its call in flight."""
    patient = helpers.settings_for(moto_endpoint, takeover_seconds=600)
    recorder = aws.CallRecorder()
    one = helpers.address_policy(maxItemsPerRun=1)
    first = helpers.run_cleanup(
        store, ORG, [one], patient, recorder, session_factory=failing_before_send("ReleaseAddress")
    )
    [lost] = first.results
    assert lost.outcome == "interrupted"

    soon = domain.utcnow() + timedelta(seconds=590)
    early = helpers.run_cleanup(store, ORG, [one], patient, recorder, now=lambda: soon)
    assert early.interrupted_found == 0 and lost.item_id not in {r.item_id for r in early.results}
    later = domain.utcnow() + timedelta(seconds=610)
    late = helpers.run_cleanup(store, ORG, [one], patient, recorder, now=lambda: later)
    assert late.interrupted_found == 1
    [resumed] = [r for r in late.results if r.item_id == lost.item_id]
    assert resumed.outcome == "succeeded" and released(recorder).count(lost.resource_id) == 1


# --- rollback ----------------------------------------------------------------------------------


def cleaned_volume(store: Store, settings: Settings, database_url: str) -> dict[str, Any]:
    report = helpers.run_cleanup(
        store, ORG, [helpers.volume_policy()], settings, aws.CallRecorder()
    )
    [result] = report.results
    assert result.outcome == "succeeded", result.message
    [row] = [r for r in rows(database_url, "cleanup_actions") if r["id"] == result.action_id]
    return row


def rollback(store: Store, settings: Settings, action_id: uuid.UUID, **options: Any) -> Any:
    options.setdefault("dry_run", False)
    options.setdefault("actor_email", helpers.ACTOR)
    return cleaning.rollback(
        store, ORG, action_id, cleaning.CleanupOptions(settings=settings, **options)
    )


def test_a_rollback_waits_for_the_item_then_records_what_it_restored(
    volume: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    action = cleaned_volume(store, settings, database_url)
    snapshot_id = action["rollback_data"]["snapshot_id"]
    [volume_id] = volume.volumes
    recorder = aws.CallRecorder()
    with store.item_lock(action["waste_item_id"]) as held:
        assert held is not None
        with pytest.raises(cleaning.CleanupRefused) as refused:
            rollback(store, settings, action["id"], recorder=recorder)
    assert str(refused.value) == (
        f"another worker is acting on or rolling back the item of {action['id']}; try later"
    )
    assert recorder.mutating() == []
    assert [
        r for r in rows(database_url, "cleanup_actions") if r["action_type"] == "rollback"
    ] == []

    undone = rollback(store, settings, action["id"], recorder=recorder)
    assert len([c for c in recorder.mutating() if c.operation == "CreateVolume"]) == 1
    [row] = [r for r in rows(database_url, "cleanup_actions") if r["action_type"] == "rollback"]
    ec2 = helpers.account_client(volume.endpoint, ACCOUNT, "ec2")
    [made] = ec2.describe_volumes(
        Filters=[{"Name": f"tag:{helpers.ACTION_TAG}", "Values": [str(row["id"])]}]
    )["Volumes"]
    restored = made["VolumeId"]
    assert restored != volume_id and made["SnapshotId"] == snapshot_id
    note = f"volume {restored} recreated from {snapshot_id} (was {volume_id})"
    assert undone == cleaning.RollbackResult(
        action["id"],
        row["id"],
        "succeeded",
        note,
        {
            "VolumeId": restored,
            "SnapshotId": snapshot_id,
            "AvailabilityZone": f"{helpers.REGION}a",
        },
    )
    assert restored in helpers.live_volumes(volume)
    assert row["aws_response"]["note"] == note
    # What the rollback made, checkpointed the moment it existed (a resumed rollback's record).
    assert row["rollback_data"] == {"restored_volume_id": restored}
    assert row["aws_response"]["already_done"] is False
    assert row["aws_response"]["resumed"] is False
    assert (row["status"], row["action"], row["rollback_of"], row["run_id"]) == (
        "succeeded",
        "rollback-snapshot-and-delete",
        action["id"],
        None,
    )
    assert row["action_description"] == f"undo snapshot-and-delete of ebs-volume {volume_id}"
    assert row["decision_reason"] == f"rollback of {action['id']} requested"
    assert row["policy_name"] == "scratch-volumes" and not row["rollback_possible"]
    assert row["executed_by"] == user_id(database_url, helpers.ACTOR)
    assert row["estimated_monthly_savings"] is None


def interrupted_rollback(
    store: Store, settings: Settings, database_url: str, recorder: aws.CallRecorder
) -> tuple[dict[str, Any], cleaning.RollbackResult]:
    """A cleaned volume and a rollback of it whose CreateVolume took effect, then lost its
    answer: the action's row and the rollback's (interrupted) result."""
    action = cleaned_volume(store, settings, database_url)
    first = rollback(
        store,
        settings,
        action["id"],
        recorder=recorder,
        session_factory=losing_response("ec2", "CreateVolume"),
    )
    return action, first


def test_a_rollback_whose_answer_was_lost_is_resumed_under_the_same_id(
    volume: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    recorder = aws.CallRecorder()
    action, first = interrupted_rollback(store, settings, database_url, recorder)
    assert (first.action_id, first.outcome) == (action["id"], "interrupted")
    assert first.message.startswith("outcome unknown, rerun the rollback to resume it: ")
    [started] = [r for r in rows(database_url, "cleanup_actions") if r["action_type"] == "rollback"]
    assert started["status"] == "started" and first.rollback_id == started["id"]

    again = rollback(store, settings, action["id"], recorder=recorder)
    assert (again.outcome, again.rollback_id) == ("succeeded", started["id"])
    assert again.message.endswith(" (resumed an interrupted rollback)")
    assert len([c for c in recorder.mutating() if c.operation == "CreateVolume"]) == 1
    [row] = [r for r in rows(database_url, "cleanup_actions") if r["action_type"] == "rollback"]
    assert row["aws_response"]["resumed"] is True and row["aws_response"]["already_done"] is True


def test_a_live_rollback_is_not_taken_over_before_the_grace_period(
    volume: helpers.SmallWorld, store: Store, moto_endpoint: str, database_url: str
) -> None:
    """A rollback whose answer was lost may still have its call in flight while its worker gave
    a sign of life less than ``cleanup_takeover_seconds`` ago: a second rollback then is refused;
    after the grace period it resumes the first, and the volume is made once."""
    patient = helpers.settings_for(moto_endpoint, takeover_seconds=600)
    recorder = aws.CallRecorder()
    action, first = interrupted_rollback(store, patient, database_url, recorder)
    assert first.outcome == "interrupted"

    soon = domain.utcnow() + timedelta(seconds=590)
    with pytest.raises(cleaning.CleanupRefused) as refused:
        rollback(store, patient, action["id"], recorder=recorder, now=lambda: soon)
    assert str(refused.value) == f"a rollback of {action['id']} is already under way or done"
    later = domain.utcnow() + timedelta(seconds=610)
    resumed = rollback(store, patient, action["id"], recorder=recorder, now=lambda: later)
    assert (resumed.outcome, resumed.rollback_id) == ("succeeded", first.rollback_id)
    assert len([c for c in recorder.mutating() if c.operation == "CreateVolume"]) == 1


def test_a_rollback_that_aws_refuses_is_recorded_failed(
    volume: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    action = cleaned_volume(store, settings, database_url)
    ec2 = helpers.account_client(volume.endpoint, ACCOUNT, "ec2")
    ec2.delete_snapshot(SnapshotId=action["rollback_data"]["snapshot_id"])
    clock = datetime.now(UTC) + timedelta(hours=1)  # the rollback's own clock
    failed = rollback(store, settings, action["id"], now=lambda: clock)
    [row] = [r for r in rows(database_url, "cleanup_actions") if r["action_type"] == "rollback"]
    assert (row["executed_at"], row["completed_at"]) == (clock, clock)
    assert (failed.action_id, failed.rollback_id, failed.outcome) == (
        action["id"],
        row["id"],
        "failed",
    )
    assert row["status"] == "failed" and row["error_message"] == failed.message
    assert "InvalidSnapshot.NotFound" in failed.message
    assert row["aws_response"]["code"] == "InvalidSnapshot.NotFound"
    assert row["aws_response"]["error_kind"]


def test_rollbacks_that_cannot_be_done_are_refused_with_the_reason(
    volume: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    helpers.run_cleanup(
        store, ORG, [helpers.volume_policy()], settings, aws.CallRecorder(), dry_run=True
    )
    [dry] = rows(database_url, "cleanup_actions")
    with pytest.raises(cleaning.CleanupRefused) as refused:
        rollback(store, settings, dry["id"])
    assert str(refused.value) == f"action {dry['id']} is a dry run attempt: nothing to undo"

    action = cleaned_volume(store, settings, database_url)
    with pytest.raises(cleaning.CleanupRefused) as refused:
        rollback(store, settings, action["id"], actor_email=None)
    assert str(refused.value) == "a rollback needs the identity of who runs it (--as EMAIL)"
    dry_rollback = rollback(store, settings, action["id"], dry_run=True)
    assert (dry_rollback.outcome, dry_rollback.rollback_id) == ("dry-run", None)
    assert dry_rollback.response == action["rollback_data"]  # what it would restore from
    assert [
        r for r in rows(database_url, "cleanup_actions") if r["action_type"] == "rollback"
    ] == []

    undone = rollback(store, settings, action["id"])
    assert undone.outcome == "succeeded"
    with pytest.raises(cleaning.CleanupRefused) as refused:
        rollback(store, settings, undone.rollback_id)
    assert str(refused.value) == f"action {undone.rollback_id} is itself a rollback"
    with pytest.raises(cleaning.CleanupRefused) as refused:
        rollback(store, settings, action["id"])
    assert str(refused.value) == f"action {action['id']} was already rolled back"


def test_a_rollback_refuses_a_record_without_undo_and_an_item_deleted_meanwhile(
    volume: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """Refused before any AWS call: a record whose attempt noted it cannot be undone (as a
    version whose action had no undo wrote it), even though today's action has one; and an item
    deleted between reading the action and reading its finding (an account purged meanwhile)."""
    action = cleaned_volume(store, settings, database_url)
    volumes = helpers.live_volumes(volume)
    with get_engine(database_url).begin() as conn:
        conn.execute(
            sa.text("UPDATE cleanup_actions SET rollback_possible = false WHERE id = :id"),
            {"id": action["id"]},
        )
    recorder = aws.CallRecorder()
    with pytest.raises(cleaning.CleanupRefused) as refused:
        rollback(store, settings, action["id"], recorder=recorder)
    assert str(refused.value).startswith("ebs-volume snapshot-and-delete cannot be undone: ")

    class PurgedMeanwhile(Store):
        def candidate(self, item_id: uuid.UUID) -> Any:
            with get_engine(self.url).begin() as conn:
                conn.execute(sa.text("DELETE FROM waste_items WHERE id = :id"), {"id": item_id})
            return super().candidate(item_id)

    with get_engine(database_url).begin() as conn:
        conn.execute(
            sa.text("UPDATE cleanup_actions SET rollback_possible = true WHERE id = :id"),
            {"id": action["id"]},
        )
    with pytest.raises(cleaning.CleanupRefused) as refused:
        rollback(PurgedMeanwhile(database_url), settings, action["id"], recorder=recorder)
    assert str(refused.value) == f"the finding of action {action['id']} no longer exists"
    assert recorder.calls() == []
    assert helpers.live_volumes(volume) == volumes


def test_a_rollback_whose_outcome_another_worker_recorded_says_so(
    volume: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """Two workers that both finish one rollback (one took it over while the other was still in
    its call): the one that comes second records nothing and reports the outcome reconciled."""
    action = cleaned_volume(store, settings, database_url)

    class RecordedByAnother(Store):
        def finish(self, action_id: uuid.UUID, **kwargs: Any) -> bool:
            assert super().finish(action_id, **kwargs)  # the other worker, first
            return super().finish(action_id, **kwargs)

    result = rollback(RecordedByAnother(database_url), settings, action["id"])
    [row] = [r for r in rows(database_url, "cleanup_actions") if r["action_type"] == "rollback"]
    assert result == cleaning.RollbackResult(
        action["id"], row["id"], "reconciled", "another worker recorded this rollback's outcome"
    )
    assert row["status"] == "succeeded"


def test_a_rollbacks_calls_take_from_the_shared_request_budget(
    volume: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """Every scan, cleanup and rollback of every process shares one AWS request budget per
    account, region and service: the rollback's EC2 calls are counted in it too."""
    assert settings.aws_rate_budget
    action = cleaned_volume(store, settings, database_url)
    with get_engine(database_url).begin() as conn:
        conn.execute(sa.text("DELETE FROM aws_request_budgets"))
    assert rollback(store, settings, action["id"]).outcome == "succeeded"
    with get_engine(database_url).connect() as conn:
        budgets = set(
            conn.execute(sa.text("SELECT account_id, region, service FROM aws_request_budgets"))
        )
    assert (ACCOUNT, helpers.REGION, "ec2") in budgets


def test_an_attempt_that_did_not_succeed_cannot_be_rolled_back(
    addresses: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    target = addresses.addresses[0]
    ec2 = helpers.account_client(addresses.endpoint, ACCOUNT, "ec2")
    ec2.create_tags(Resources=[target], Tags=[{"Key": helpers.PROTECT_TAG, "Value": "true"}])
    helpers.run_cleanup(store, ORG, [helpers.address_policy()], settings, aws.CallRecorder())
    [refused_row] = [r for r in rows(database_url, "cleanup_actions") if r["status"] == "refused"]
    with pytest.raises(cleaning.CleanupRefused) as refused:
        rollback(store, settings, refused_row["id"])
    assert str(refused.value) == f"action {refused_row['id']} is a refused attempt: nothing to undo"
    # The refusal keeps the re-check's facts that made it.
    assert refused_row["aws_response"]["recheck"]["tags"][helpers.PROTECT_TAG] == "true"
    assert (
        refused_row["error_message"]
        == f"refused: address is now protected by tag {helpers.PROTECT_TAG}=true"
    )


def test_a_rollback_dry_run_says_what_the_rollback_would_do(
    volume: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """``cloudsweep rollback ID`` (without --execute) prints this sentence as it is."""
    action = cleaned_volume(store, settings, database_url)
    preview = rollback(store, settings, action["id"], dry_run=True)
    assert preview.message == (
        "the rollback recreates the volume from the snapshot taken before deletion, in the same "
        "availability zone with the same type, size, IOPS, throughput, encryption and tags "
        "(a new volume ID)"
    )


def test_a_dry_run_applies_the_policys_tag_rules_to_the_live_tags(
    addresses: helpers.SmallWorld, store: Store, settings: Settings, database_url: str
) -> None:
    """An address tagged with one of the policy's ``excludeTags`` after the scan: the real run
    would refuse it, so the dry run (what people approve from) says so, with the tags it saw."""
    target = addresses.addresses[0]
    ec2 = helpers.account_client(addresses.endpoint, ACCOUNT, "ec2")
    ec2.create_tags(Resources=[target], Tags=[{"Key": "env", "Value": "prod"}])
    rules = {"minAgeDays": 0, "minConfidence": 50, "excludeTags": {"env": "prod"}}
    report = helpers.run_cleanup(
        store,
        ORG,
        [helpers.address_policy(rules=rules)],
        settings,
        aws.CallRecorder(),
        dry_run=True,
    )
    [result] = [r for r in report.results if r.resource_id == target]
    assert result.outcome == "dry-run-fail" and result.message.startswith("would refuse: ")
    [row] = [r for r in rows(database_url, "cleanup_actions") if r["id"] == result.action_id]
    assert row["aws_response"]["recheck"]["tags"]["env"] == "prod"


def test_an_account_scanned_on_your_own_credentials_is_never_cleaned(
    store: Store, settings: Settings, database_url: str
) -> None:
    """An account scanned without a role (``cloudsweep scan`` on the user's own credentials)
    has findings, but CloudSweep never cleans with those credentials: a real run refuses each
    item before any AWS call, saying how to register the account's role."""
    org = store.ensure_organization(ORG)
    account = store.register_account(
        org.id, account_id=ACCOUNT, role_arn=None, external_id=None, regions=[helpers.REGION]
    )
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=[helpers.REGION], started_at=SCANNED
    )
    address = domain.Finding(
        resource_type="elastic-ip",
        resource_id="eipalloc-0own",
        region=helpers.REGION,
        monthly_cost=Decimal("3.60"),
        confidence=95,
        risk=domain.RiskLevel.LOW,
        tags={"team": "net"},
    )
    store.upsert_findings(scan, [address], seen_at=SCANNED)
    why = (
        f"sts:AssumeRole failed (access-denied, NoRole): account {ACCOUNT} was scanned on your "
        "own credentials, which CloudSweep never cleans with; scan it with --role-arn to "
        "register its role"
    )
    recorder = aws.CallRecorder()
    for _ in range(2):  # and again: the item waits, refused each time, never stuck
        report = helpers.run_cleanup(store, ORG, [helpers.address_policy()], settings, recorder)
        [result] = report.results
        assert (result.resource_id, result.outcome, result.message) == (
            "eipalloc-0own",
            "refused",
            why,
        )
    assert recorder.calls() == []
    attempts = rows(database_url, "cleanup_actions")
    assert [(r["status"], r["error_message"], r["aws_response"]) for r in attempts] == [
        ("refused", f"refused: {why}", {"error_kind": "access-denied", "code": "NoRole"})
    ] * 2
    assert [r["status"] for r in rows(database_url, "cleanup_runs")] == ["completed"] * 2
    [item] = store.findings(FindingFilter(ORG))
    assert item.cleanup_status == "pending"
