"""The ledger's decisions and what it reads back: which items a decision may change, an item's
past decisions, the history of cleanup attempts, a policy's figures and the policy as applied.

A decision that ended (a rejection, a lapse) must keep an older approval from coming back even
when another entry of the item's history is unreadable; the action history lists each attempt
once, with the person who ran it, however many people the organization has; a CleanupPolicy's
status counts its own real attempts only.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from cloudsweep import domain, policies
from cloudsweep.store import FindingFilter, Intent, Store, ledger
from cloudsweep.store.engine import get_engine

from .conftest import T0, finding

ORG = "team-a"
APPROVER = "maria@team-a.example"
RUNNER = "ann@team-a.example"


def _items(store: Store, make_account, *resource_ids: str) -> tuple[uuid.UUID, list[uuid.UUID]]:
    account = make_account(ORG, "111111111111")
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(scan, [finding(r) for r in resource_ids])
    by_resource = {i.resource_id: i.id for i in store.findings(FindingFilter(ORG))}
    return account.organization_id, [by_resource[r] for r in resource_ids]


def _status(store: Store, item_id: uuid.UUID) -> str:
    candidate = store.candidate(item_id)
    assert candidate is not None
    return candidate.cleanup_status


def test_an_unreadable_ending_does_not_hide_a_later_one(store: Store, make_account) -> None:
    """An item rejected, then approved, then its approval lapsed; the rejection's time is then
    unreadable (a hand edit of the row). Replaying the approval (decided before the lapse) must
    still change nothing: the lapse, a later readable ending, holds."""
    org_id, [item_id] = _items(store, make_account, "vol-1")
    approved_at = T0 + timedelta(hours=1)
    assert store.decide_items(
        org_id, [item_id], approve=False, approver_email=APPROVER, now=T0, decided_at=T0
    )
    assert store.decide_items(
        org_id, [item_id], approve=True, approver_email=APPROVER, now=approved_at
    )
    store.lapse_approval(item_id, "cost rose", T0 + timedelta(hours=2))
    # The lapse keeps the approval it ended, with why and when (the item's audit trail).
    lapsed = _item_row(store, item_id)["cleanup_metadata"]["lapsed_approval"]
    assert (lapsed["approver_email"], lapsed["approved_at"]) == (APPROVER, approved_at.isoformat())
    assert (lapsed["reason"], lapsed["at"]) == ("cost rose", (T0 + timedelta(hours=2)).isoformat())
    with get_engine(store.url).begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE waste_items SET cleanup_metadata = "
                "jsonb_set(cleanup_metadata, '{rejected,at}', '\"yesterday\"') WHERE id = :id"
            ),
            {"id": item_id},
        )

    replayed = store.decide_items(
        org_id,
        [item_id],
        approve=True,
        approver_email=APPROVER,
        decided_at=approved_at,
        now=T0 + timedelta(hours=3),
    )
    assert replayed == []
    assert _status(store, item_id) == domain.CleanupStatus.PENDING.value
    candidate = store.candidate(item_id)
    assert candidate is not None and candidate.approval is None


def _intent(item_id: uuid.UUID, executed_by: uuid.UUID | None, *, dry_run: bool) -> Intent:
    return Intent(
        item_id=item_id,
        run_id=None,
        action="delete-volume",
        action_type=domain.ActionType.DELETE,
        description="delete-volume ebs-volume in us-east-1",
        method=domain.ExecutionMethod.MANUAL if executed_by else domain.ExecutionMethod.AUTOMATED,
        executed_by=executed_by,
        policy_name="idle-volumes",
        decision_reason="approved",
        rollback_possible=True,
        estimated_monthly_savings=Decimal("10.00"),
        dry_run=dry_run,
    )


def test_each_attempt_is_listed_once_with_the_person_who_ran_it(store: Store, make_account) -> None:
    """An organization with several people (an approver and a runner): the history lists each
    attempt once, under its own executor (none for the operator's automated dry run)."""
    org_id, [approved, dry] = _items(store, make_account, "vol-1", "vol-2")
    store.decide_items(org_id, [approved], approve=True, approver_email=APPROVER, now=T0)
    runner = store.ensure_user(org_id, RUNNER)
    store.ensure_user(org_id, "viewer@team-a.example")

    real = store.claim(
        _intent(approved, runner, dry_run=False),
        allowed=[domain.CleanupStatus.APPROVED.value],
        now=T0 + timedelta(minutes=1),
    )
    assert real is not None
    assert store.finish(
        real,
        status=domain.AttemptStatus.SUCCEEDED,
        now=T0 + timedelta(minutes=2),
        item_status=domain.CleanupStatus.CLEANED,
    )
    simulated = store.record_dry_run(
        _intent(dry, None, dry_run=True),
        would_succeed=True,
        message="would delete",
        response={},
        now=T0 + timedelta(minutes=3),
    )

    listed = store.actions(ORG)
    assert sorted((a.id, a.executed_by) for a in listed) == sorted(
        [(real, RUNNER), (simulated, None)]
    )
    one = store.action(real)
    assert one is not None and one.executed_by == RUNNER
    none = store.action(simulated)
    assert none is not None and none.executed_by is None


def _attempt(
    store: Store,
    item_id: uuid.UUID,
    outcome: domain.AttemptStatus,
    at: datetime,
    *,
    policy: str = "idle-volumes",
    savings: str = "10.00",
) -> uuid.UUID:
    """One real attempt under ``policy``: its intent at ``at``, its outcome a minute later."""
    intent = dataclasses.replace(
        _intent(item_id, None, dry_run=False),
        policy_name=policy,
        estimated_monthly_savings=Decimal(savings),
    )
    action_id = store.claim(intent, allowed=list(ledger.ACTIONABLE), now=at)
    assert action_id is not None
    item_status = {
        domain.AttemptStatus.SUCCEEDED: domain.CleanupStatus.CLEANED,
        domain.AttemptStatus.FAILED: domain.CleanupStatus.FAILED,
    }[outcome]
    assert store.finish(
        action_id, status=outcome, now=at + timedelta(minutes=1), item_status=item_status
    )
    return action_id


def test_a_policys_figures_count_its_own_real_attempts(store: Store, make_account) -> None:
    """What a CleanupPolicy's status shows (executed, failed, savingsMonthly, CleanupFailed):
    the organization's real attempts under that policy; not dry runs, rollbacks, another
    policy's or another organization's attempts; a removal rolled back saves nothing; a failure
    marks the policy failing until a later success."""
    org_id, items = _items(store, make_account, "vol-1", "vol-2", "vol-3", "vol-4", "vol-5")
    rolled_back = _attempt(store, items[0], domain.AttemptStatus.SUCCEEDED, T0, savings="100.00")
    _attempt(store, items[1], domain.AttemptStatus.SUCCEEDED, T0, savings="7.50")
    _attempt(store, items[2], domain.AttemptStatus.SUCCEEDED, T0, policy="other", savings="3.00")
    store.record_dry_run(
        dataclasses.replace(_intent(items[3], None, dry_run=True), policy_name="idle-volumes"),
        would_succeed=True,
        message="would delete",
        response={},
        now=T0,
    )
    undo = Intent(
        item_id=items[0],
        run_id=None,
        action="restore-volume",
        action_type=domain.ActionType.ROLLBACK,
        description="rollback",
        method=domain.ExecutionMethod.MANUAL,
        executed_by=None,
        policy_name="idle-volumes",
        decision_reason="rollback",
        rollback_possible=False,
        estimated_monthly_savings=None,
        rollback_of=rolled_back,
    )
    started = store.start_rollback(undo, T0 + timedelta(minutes=5))
    assert started is not None
    assert store.finish(
        started.id, status=domain.AttemptStatus.SUCCEEDED, now=T0 + timedelta(minutes=6)
    )
    other_org = make_account("team-b", "222222222222")
    scan = store.open_scan(
        other_org.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(scan, [finding("vol-b")])
    [b_item] = [i.id for i in store.findings(FindingFilter("team-b"))]
    _attempt(store, b_item, domain.AttemptStatus.FAILED, T0 + timedelta(hours=5))

    healthy = store.policy_stats(org_id, "idle-volumes")
    assert (healthy.executed, healthy.failed) == (2, 0)
    assert healthy.savings_monthly == Decimal("7.50")  # the rolled-back 100.00 saves nothing
    assert not healthy.failing
    assert healthy.last_failed_at is None
    assert healthy.last_succeeded_at == T0 + timedelta(minutes=1)

    _attempt(store, items[4], domain.AttemptStatus.FAILED, T0 + timedelta(hours=1))
    failing = store.policy_stats(org_id, "idle-volumes")
    assert (failing.executed, failing.failed) == (2, 1)
    assert failing.savings_monthly == Decimal("7.50")
    assert failing.last_failed_at == T0 + timedelta(hours=1, minutes=1)
    assert failing.failing

    # The failed item is tried again and succeeds: the policy is no longer failing.
    store.decide_items(org_id, [items[4]], approve=True, approver_email=APPROVER, now=T0)
    _attempt(store, items[4], domain.AttemptStatus.SUCCEEDED, T0 + timedelta(hours=2))
    recovered = store.policy_stats(org_id, "idle-volumes")
    assert (recovered.executed, recovered.failed) == (3, 1)
    assert recovered.savings_monthly == Decimal("17.50")
    assert not recovered.failing
    assert store.policy_stats(org_id, "never-ran") == ledger.PolicyStats(0, 0, Decimal(0))


def _saved_policies(store: Store) -> list[dict[str, Any]]:
    with get_engine(store.url).connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT o.slug, p.name, p.resource_type, p.rules, p.auto_execute, "
                "p.max_monthly_cost, p.require_approval_above, p.is_active "
                "FROM cleanup_policies p JOIN organizations o ON o.id = p.organization_id "
                "ORDER BY o.slug, p.name"
            )
        ).mappings()
        return [dict(row) for row in rows]


def test_a_policy_is_kept_as_applied_one_row_per_organization_and_name(
    store: Store, make_account
) -> None:
    """The brief's ``cleanup_policies`` table (audit and reports): the policy as last applied,
    its gates in their columns, active until it is suspended or deleted."""
    team_a = make_account(ORG, "111111111111").organization_id
    team_b = make_account("team-b", "222222222222").organization_id
    applied = policies.parse_policy(
        {
            "name": "idle-volumes",
            "resourceType": "ebs-volume",
            "action": "snapshot-and-delete",
            "autoExecute": True,
            "maxMonthlyCost": "20.00",
            "requireApprovalAbove": "25.00",
            "rules": {"minAgeDays": 30},
        }
    ).to_document()
    store.save_policy(team_a, applied, active=True)
    store.save_policy(team_b, {"name": "idle-volumes", "resourceType": "elastic-ip"}, active=True)
    [a_row, b_row] = _saved_policies(store)
    assert a_row["slug"] == ORG and a_row["name"] == "idle-volumes"
    assert a_row["resource_type"] == "ebs-volume"
    assert a_row["rules"] == {k: v for k, v in applied.items() if k != "name"}
    assert (a_row["auto_execute"], a_row["max_monthly_cost"], a_row["require_approval_above"]) == (
        True,
        Decimal("20.00"),
        Decimal("25.00"),
    )
    assert a_row["is_active"] is True
    # What a document leaves out takes the policy's defaults.
    assert (b_row["slug"], b_row["resource_type"], b_row["auto_execute"]) == (
        "team-b",
        "elastic-ip",
        False,
    )
    assert (b_row["max_monthly_cost"], b_row["require_approval_above"]) == (
        Decimal("0.00"),
        Decimal("50.00"),
    )

    # Applied again, changed, then deleted (kept inactive): still one row, as last applied.
    changed = {**applied, "resourceType": "elastic-ip", "autoExecute": False}
    changed |= {"maxMonthlyCost": "0.00", "requireApprovalAbove": "5.00"}
    store.save_policy(team_a, changed, active=False)
    [a_row, b_row] = _saved_policies(store)
    assert a_row["resource_type"] == "elastic-ip"
    assert a_row["rules"]["autoExecute"] is False
    assert (a_row["auto_execute"], a_row["max_monthly_cost"], a_row["require_approval_above"]) == (
        False,
        Decimal("0.00"),
        Decimal("5.00"),
    )
    assert a_row["is_active"] is False
    assert b_row["is_active"] is True and b_row["resource_type"] == "elastic-ip"


def _approve(store: Store, org_id: uuid.UUID, items: list[uuid.UUID], **kwargs: Any) -> Any:
    kwargs.setdefault("now", kwargs.get("decided_at", T0))
    kwargs.setdefault("approver_email", APPROVER)
    return store.decide_items(org_id, items, approve=True, **kwargs)


def _reject(store: Store, org_id: uuid.UUID, items: list[uuid.UUID], at: datetime) -> Any:
    return store.decide_items(
        org_id, items, approve=False, approver_email=APPROVER, now=at, decided_at=at
    )


def test_items_gone_being_cleaned_or_cleaned_are_left_alone(store: Store, make_account) -> None:
    """Neither an approval nor a rejection touches an item that a full scan no longer saw, one
    a worker is cleaning, or one already cleaned: their status and approval stay as they are."""
    org_id, [gone, cleaning, cleaned, open_] = _items(
        store, make_account, "vol-gone", "vol-cleaning", "vol-cleaned", "vol-open"
    )
    account = store.accounts(org_id)[0]
    later = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(later, [finding(r) for r in ("vol-cleaning", "vol-cleaned", "vol-open")])
    store.close_unseen(later, regions=["us-east-1"], resource_types=["ebs-volume"], now=T0)
    assert _approve(store, org_id, [cleaning, cleaned])
    assert store.claim(
        _intent(cleaning, None, dry_run=False),
        allowed=[domain.CleanupStatus.APPROVED.value],
        now=T0,
    )
    _attempt(store, cleaned, domain.AttemptStatus.SUCCEEDED, T0)
    before = {i: store.candidate(i) for i in (gone, cleaning, cleaned)}

    later_on = T0 + timedelta(hours=1)
    assert _approve(store, org_id, [gone, cleaning, cleaned, open_], decided_at=later_on) == [open_]
    assert _reject(store, org_id, [gone, cleaning, cleaned], later_on) == []
    assert {i: store.candidate(i) for i in (gone, cleaning, cleaned)} == before
    assert [before[i].cleanup_status for i in (gone, cleaning, cleaned)] == [
        domain.CleanupStatus.PENDING.value,
        domain.CleanupStatus.CLEANING.value,
        domain.CleanupStatus.CLEANED.value,
    ]


def test_an_approval_skips_the_items_it_cannot_reopen_and_decides_the_rest(
    store: Store, make_account
) -> None:
    """One approval for several items (a CleanupApproval's list): the items rejected after it
    stay rejected, and every other item of the list is still approved, whatever the order."""
    org_id, items = _items(store, make_account, "vol-1", "vol-2", "vol-3", "vol-4")
    rejected_later, reopened = items[:2], items[2:]
    # Rejected after the approval below was given; the others before it (their rows are
    # written last, so a scan of the table meets the items the approval skips first).
    _reject(store, org_id, rejected_later, T0 + timedelta(hours=2))
    _reject(store, org_id, reopened, T0)
    decided = _approve(store, org_id, items, decided_at=T0 + timedelta(hours=1))
    assert sorted(decided) == sorted(reopened)
    assert [_status(store, i) for i in items] == ["rejected", "rejected", "approved", "approved"]


def test_an_approval_applied_again_changes_only_what_it_had_not_approved(
    store: Store, make_account
) -> None:
    """The operator applies a CleanupApproval on every tick with its admission time. Applied
    again, it keeps its first deadline on the items it approved, and still approves an item it
    could not approve before (rejected earlier than it, then listed again)."""
    org_id, [first, added] = _items(store, make_account, "vol-1", "vol-2")
    given = T0 + timedelta(hours=1)
    assert _approve(store, org_id, [first], decided_at=given, ttl=timedelta(days=2)) == [first]
    _reject(store, org_id, [added], T0)  # before the approval: it may re-open this item
    again = _approve(
        store,
        org_id,
        [first, added],
        decided_at=given,
        now=given + timedelta(days=1),
        ttl=timedelta(days=2),
    )
    assert again == [added]
    kept = store.candidate(first)
    assert kept is not None and kept.approval is not None
    assert kept.approval.expires_at == given + timedelta(days=2)
    # Another person's approval at the same moment is a new decision.
    assert _approve(
        store,
        org_id,
        [first],
        decided_at=given,
        approver_email="ada@team-a.example",
    ) == [first]


def test_an_approval_holds_up_to_the_cost_the_person_approved(store: Store, make_account) -> None:
    """A CleanupApproval's ``maxMonthlyCost`` is what the approval holds up to; without it, the
    item's cost when approved."""
    org_id, [capped, plain] = _items(store, make_account, "vol-1", "vol-2")
    _approve(store, org_id, [capped], approved_cost=Decimal("25.00"))
    _approve(store, org_id, [plain])
    approvals = {i: store.candidate(i).approval for i in (capped, plain)}
    assert approvals[capped].monthly_cost == Decimal("25.00")
    assert approvals[plain].monthly_cost == Decimal("10.00")


def test_one_item_looked_up_again_carries_its_organizations_auto_cleanup(
    store: Store, make_account
) -> None:
    """What a recovery decides from (``Store.candidate``, read again under the item's lock): the
    organization's automatic cleanup as it is, so an automated run's interrupted attempt is
    judged like the run judged it; an unknown item is None, not an error."""
    org_id, [item_id] = _items(store, make_account, "vol-1")
    looked_up = store.candidate(item_id)
    assert looked_up is not None and looked_up.organization_auto_cleanup is False
    assert store.set_organization_auto_cleanup(ORG, True)
    looked_up = store.candidate(item_id)
    assert looked_up is not None and looked_up.organization_auto_cleanup is True
    [planned] = store.candidates(org_id, resource_type="ebs-volume")
    assert planned == looked_up
    assert store.candidate(uuid.uuid4()) is None


def test_the_history_records_dry_runs_as_they_went_and_filters_them(
    store: Store, make_account
) -> None:
    """A dry run that would fail is recorded failed, with why; one that would succeed, without a
    message; AWS's answer is kept even with values JSON lacks (times). The history lists the
    newest first, one run's attempts, the real ones only, or the last few, as asked."""
    org_id, [first, second, third] = _items(store, make_account, "vol-1", "vol-2", "vol-3")
    run_id = store.open_cleanup_run(
        org_id,
        dry_run=True,
        method=domain.ExecutionMethod.MANUAL,
        executed_by=None,
        policies=[],
        plan={},
        now=T0,
    )
    in_run = dataclasses.replace(_intent(first, None, dry_run=True), run_id=run_id)
    refused = store.record_dry_run(
        in_run,
        would_succeed=False,
        message="would fail: the volume is attached",
        response={"checked_at": T0},
        now=T0 + timedelta(minutes=1),
    )
    fine = store.record_dry_run(
        _intent(second, None, dry_run=True),
        would_succeed=True,
        message="would delete",
        response={"DryRun": True},
        now=T0 + timedelta(minutes=2),
    )
    real = _attempt(store, third, domain.AttemptStatus.SUCCEEDED, T0 + timedelta(minutes=3))

    failed = store.action(refused)
    assert failed is not None
    assert (failed.status, failed.success, failed.dry_run) == ("failed", False, True)
    assert failed.error_message == "would fail: the volume is attached"
    assert failed.aws_response == {"checked_at": str(T0)}
    assert (failed.executed_at, failed.completed_at) == (T0 + timedelta(minutes=1),) * 2
    assert failed.run_id == run_id
    assert (failed.account_id, failed.region, failed.resource_id) == (
        "111111111111",
        "us-east-1",
        "vol-1",
    )
    assert (failed.action_type, failed.execution_method, failed.policy_name) == (
        "delete",
        "automated",
        "idle-volumes",
    )
    assert failed.decision_reason == "approved"
    succeeded = store.action(fine)
    assert succeeded is not None
    assert (succeeded.status, succeeded.success, succeeded.error_message) == (
        "succeeded",
        True,
        None,
    )
    assert succeeded.aws_response == {"DryRun": True}

    assert [a.id for a in store.actions(ORG)] == [real, fine, refused]
    assert [a.id for a in store.actions(ORG, run_id=run_id)] == [refused]
    assert [a.id for a in store.actions(ORG, include_dry_runs=False)] == [real]
    assert [a.id for a in store.actions(ORG, limit=2)] == [real, fine]


def _item_row(store: Store, item_id: uuid.UUID) -> dict[str, Any]:
    """The waste item's ledger columns as stored (the audit trail a person reads in the table)."""
    with get_engine(store.url).connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT cleanup_status, cleanup_error, cleanup_executed_at, cleanup_approved_by, "
                "cleanup_approved_at, cleanup_metadata, updated_at FROM waste_items WHERE id = :id"
            ),
            {"id": item_id},
        ).mappings()
        return dict(row.one())


def _action_row_of(store: Store, action_id: uuid.UUID) -> dict[str, Any]:
    with get_engine(store.url).connect() as conn:
        row = conn.execute(
            sa.text("SELECT rollback_executed_at FROM cleanup_actions WHERE id = :id"),
            {"id": action_id},
        ).mappings()
        return dict(row.one())


def _undo(item_id: uuid.UUID, original: uuid.UUID) -> Intent:
    return Intent(
        item_id=item_id,
        run_id=None,
        action="restore-volume",
        action_type=domain.ActionType.ROLLBACK,
        description="rollback",
        method=domain.ExecutionMethod.MANUAL,
        executed_by=None,
        policy_name="idle-volumes",
        decision_reason="rollback",
        rollback_possible=False,
        estimated_monthly_savings=None,
        rollback_of=original,
    )


def test_an_attempts_one_outcome_moves_its_item_on(store: Store, make_account) -> None:
    """``finish``: a removal leaves its item cleaned with AWS's answer and what the rollback
    needs (merged with the checkpoints); a failure leaves it failed with the error; a refusal
    ends its approval, so that approval applied again re-opens nothing. A second outcome for
    the same attempt changes nothing, and an unknown attempt is named in the error."""
    org_id, [cleaned, failed, refused] = _items(store, make_account, "vol-1", "vol-2", "vol-3")
    approved_at = T0 - timedelta(hours=1)
    _approve(store, org_id, [cleaned, failed, refused], decided_at=approved_at, now=T0)
    intent = _intent(cleaned, None, dry_run=False)
    allowed = [domain.CleanupStatus.APPROVED.value]
    removal = store.claim(intent, allowed=allowed, now=T0)
    assert removal is not None
    # The intent, before any outcome: what is about to be done, not yet a success.
    with get_engine(store.url).connect() as conn:
        started = conn.execute(
            sa.text(
                "SELECT action_description, status, success, completed_at FROM cleanup_actions "
                "WHERE id = :id"
            ),
            {"id": removal},
        ).one()
    assert tuple(started) == (intent.description, "started", False, None)
    # Checkpoints merge, as progress comes: the second keeps the first's keys. A value JSON has
    # no type for (a datetime, as boto3 returns times) is kept as its text, as ``finish`` does.
    store.checkpoint(removal, {"volume_id": "vol-1"})
    store.checkpoint(removal, {"snapshot_id": "snap-early", "snapshot_started": T0})
    checkpointed = store.action(removal)
    assert checkpointed is not None
    assert checkpointed.rollback_data == {
        "volume_id": "vol-1",
        "snapshot_id": "snap-early",
        "snapshot_started": str(T0),
    }
    done_at = T0 + timedelta(minutes=1)
    assert store.finish(
        removal,
        status=domain.AttemptStatus.SUCCEEDED,
        now=done_at,
        response={"deleted_at": T0},
        item_status=domain.CleanupStatus.CLEANED,
    )
    record = store.action(removal)
    assert record is not None
    assert (record.status, record.success, record.error_message) == ("succeeded", True, None)
    assert (record.completed_at, record.aws_response) == (done_at, {"deleted_at": str(T0)})
    # The outcome leaves the undo data as the checkpoints made it.
    assert record.rollback_data == checkpointed.rollback_data
    row = _item_row(store, cleaned)
    assert (row["cleanup_status"], row["cleanup_executed_at"]) == ("cleaned", done_at)
    assert (row["cleanup_error"], row["updated_at"]) == (None, done_at)
    # Another worker recorded an outcome first: the second changes nothing.
    assert not store.finish(
        removal,
        status=domain.AttemptStatus.FAILED,
        now=done_at + timedelta(minutes=1),
        error="late",
        item_status=domain.CleanupStatus.FAILED,
    )
    assert store.action(removal) == record
    assert _item_row(store, cleaned)["cleanup_status"] == "cleaned"

    attempt = store.claim(dataclasses.replace(intent, item_id=failed), allowed=allowed, now=T0)
    assert attempt is not None
    error = "UnauthorizedOperation: not allowed to delete vol-2"
    assert store.finish(
        attempt,
        status=domain.AttemptStatus.FAILED,
        now=done_at,
        error=error,
        item_status=domain.CleanupStatus.FAILED,
    )
    record = store.action(attempt)
    assert record is not None
    assert (record.status, record.success, record.error_message) == ("failed", False, error)
    assert record.aws_response is None and record.rollback_data is None
    row = _item_row(store, failed)
    assert (row["cleanup_status"], row["cleanup_error"]) == ("failed", error)
    assert row["cleanup_executed_at"] is None

    attempt = store.claim(dataclasses.replace(intent, item_id=refused), allowed=allowed, now=T0)
    assert attempt is not None
    why = "vol-3 is attached again"
    assert store.finish(
        attempt,
        status=domain.AttemptStatus.REFUSED,
        now=done_at,
        error=why,
        item_status=domain.CleanupStatus.PENDING,
    )
    row = _item_row(store, refused)
    assert (row["cleanup_status"], row["cleanup_error"]) == ("pending", why)
    assert (row["cleanup_approved_by"], row["cleanup_approved_at"]) == (None, None)
    assert "approval" not in row["cleanup_metadata"]
    assert row["cleanup_metadata"]["refused"] == {"reason": why, "at": done_at.isoformat()}
    assert _approve(store, org_id, [refused], decided_at=approved_at, now=done_at) == []
    assert _approve(store, org_id, [refused], decided_at=done_at + timedelta(seconds=1)) == [
        refused
    ]

    unknown = uuid.uuid4()
    try:
        store.finish(unknown, status=domain.AttemptStatus.SUCCEEDED, now=done_at)
    except LookupError as error_raised:
        assert str(error_raised) == f"cleanup action {unknown} does not exist"
    else:
        raise AssertionError("an unknown attempt was finished")


def test_a_rollback_brings_the_item_back_only_once_it_succeeded(store: Store, make_account) -> None:
    """``finish`` of a rollback: a failed one leaves the removal as it was (the item cleaned,
    the removal not rolled back); a succeeded one marks the removal rolled back and puts its
    item back to pending, without the approval it was removed under, which then re-opens
    nothing when applied again."""
    org_id, [item_id] = _items(store, make_account, "vol-1")
    approved_at = T0 - timedelta(hours=1)
    _approve(store, org_id, [item_id], decided_at=approved_at, now=T0)
    removal = _attempt(store, item_id, domain.AttemptStatus.SUCCEEDED, T0)

    first = store.start_rollback(_undo(item_id, removal), T0 + timedelta(minutes=5))
    assert first is not None and not first.resumed
    assert store.finish(
        first.id,
        status=domain.AttemptStatus.FAILED,
        now=T0 + timedelta(minutes=6),
        error="InvalidSnapshot.NotFound",
    )
    original = store.action(removal)
    assert original is not None and not original.rollback_executed
    assert _item_row(store, item_id)["cleanup_status"] == "cleaned"

    undone_at = T0 + timedelta(minutes=8)
    second = store.start_rollback(_undo(item_id, removal), T0 + timedelta(minutes=7))
    assert second is not None and second.id != first.id
    assert store.finish(second.id, status=domain.AttemptStatus.SUCCEEDED, now=undone_at)
    original = store.action(removal)
    assert original is not None and original.rollback_executed
    assert _action_row_of(store, removal)["rollback_executed_at"] == undone_at
    rollback = store.action(second.id)
    assert rollback is not None and (rollback.status, rollback.success) == ("succeeded", True)
    row = _item_row(store, item_id)
    assert (row["cleanup_status"], row["cleanup_executed_at"]) == ("pending", None)
    assert "approval" not in row["cleanup_metadata"]
    assert row["cleanup_metadata"]["rolled_back"] == {
        "action_id": str(removal),
        "at": undone_at.isoformat(),
    }
    assert _approve(store, org_id, [item_id], decided_at=approved_at, now=undone_at) == []
    # Done: no third rollback of the same removal.
    assert store.start_rollback(_undo(item_id, removal), undone_at) is None


def test_an_item_is_claimed_only_when_it_is_free_to_act_on(store: Store, make_account) -> None:
    """``claim``: only from the statuses the run allows, never a gone item, never an item
    another worker is claiming (skipped at once, not waited for). An earlier dry run, a failed
    attempt, a removal rolled back and the rollback itself leave the item free, and another
    item's live attempt does not hold this one; claiming clears the last error."""
    org_id, items = _items(store, make_account, "vol-1", "vol-2", "vol-3", "vol-4", "vol-5")
    pending, gone, retried, restored, busy = items
    account = store.accounts(org_id)[0]
    later = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(later, [finding(r) for r in ("vol-1", "vol-3", "vol-4", "vol-5")])
    store.close_unseen(later, regions=["us-east-1"], resource_types=["ebs-volume"], now=T0)
    _approve(store, org_id, [pending, gone, retried, restored, busy])
    store.lapse_approval(pending, "cost rose", T0)
    approved = [domain.CleanupStatus.APPROVED.value]
    anything = list(ledger.ACTIONABLE)

    assert store.claim(_intent(pending, None, dry_run=False), allowed=approved, now=T0) is None
    assert _item_row(store, pending)["cleanup_status"] == "pending"
    assert store.claim(_intent(gone, None, dry_run=False), allowed=anything, now=T0) is None
    assert store.actions(ORG) == []

    # Another item's live attempt, held open while these are claimed.
    assert store.claim(_intent(busy, None, dry_run=False), allowed=anything, now=T0)
    store.record_dry_run(
        _intent(retried, None, dry_run=True),
        would_succeed=True,
        message="would delete",
        response={},
        now=T0,
    )
    _attempt(store, retried, domain.AttemptStatus.FAILED, T0)
    assert _item_row(store, retried)["cleanup_error"] is None  # finish(FAILED) without error
    with get_engine(store.url).begin() as conn:
        conn.execute(
            sa.text("UPDATE waste_items SET cleanup_error = 'throttled' WHERE id = :id"),
            {"id": retried},
        )
    claimed_at = T0 + timedelta(minutes=10)
    again = store.claim(
        _intent(retried, None, dry_run=False),
        allowed=[domain.CleanupStatus.FAILED.value],
        now=claimed_at,
    )
    assert again is not None
    row = _item_row(store, retried)
    assert (row["cleanup_status"], row["cleanup_error"], row["updated_at"]) == (
        "cleaning",
        None,
        claimed_at,
    )

    removal = _attempt(store, restored, domain.AttemptStatus.SUCCEEDED, T0)
    undo = store.start_rollback(_undo(restored, removal), T0 + timedelta(minutes=1))
    assert undo is not None
    assert store.finish(undo.id, status=domain.AttemptStatus.SUCCEEDED, now=T0)
    assert store.claim(_intent(restored, None, dry_run=False), allowed=anything, now=T0)


def test_a_claim_in_flight_elsewhere_is_skipped_not_waited_for(store: Store, make_account) -> None:
    """``FOR UPDATE SKIP LOCKED``: while another worker's transaction holds the item's row,
    a claim returns None at once instead of queueing behind it."""
    _, [item_id] = _items(store, make_account, "vol-1")
    engine = get_engine(store.url)
    with engine.connect() as other:
        other.execute(
            sa.text("SELECT id FROM waste_items WHERE id = :id FOR UPDATE"), {"id": item_id}
        )
        outcome: list[Any] = []
        worker = threading.Thread(
            target=lambda: outcome.append(
                store.claim(
                    _intent(item_id, None, dry_run=False),
                    allowed=list(ledger.ACTIONABLE),
                    now=T0,
                )
            ),
            daemon=True,
        )
        worker.start()
        worker.join(timeout=10)
        waited = worker.is_alive()
        other.rollback()
    worker.join(timeout=30)
    assert not waited, "the claim waited for the other worker's row lock"
    assert outcome == [None]


def test_interrupted_attempts_are_the_silent_real_cleanups_of_the_organization(
    store: Store, make_account
) -> None:
    """What a cleanup run reconciles: the organization's real cleanup attempts still started
    whose last sign of life (intent or heartbeat) is before ``quiet_since``, oldest first; not
    one that beat since (or at that very moment), not finished attempts, not an interrupted
    rollback (its own rollback resumes it), not a dry run (no run leaves one started today; one
    that did must never be resumed as a real attempt), not another organization's."""
    org_id, items = _items(
        store, make_account, "vol-1", "vol-2", "vol-3", "vol-4", "vol-5", "vol-6", "vol-7"
    )
    newer, older, beating, at_edge, finished, restoring, rehearsed = items
    quiet_since = T0 + timedelta(minutes=30)
    anything = list(ledger.ACTIONABLE)

    def started(item_id: uuid.UUID, at: datetime) -> uuid.UUID:
        action_id = store.claim(_intent(item_id, None, dry_run=False), allowed=anything, now=at)
        assert action_id is not None
        return action_id

    # Written newest first, so the table's own order is not the answer's.
    newer_id = started(newer, T0 + timedelta(minutes=5))
    at_edge_id = started(at_edge, T0 + timedelta(minutes=2))
    store.heartbeat(at_edge_id, quiet_since)
    beating_id = started(beating, T0 + timedelta(minutes=1))
    store.heartbeat(beating_id, quiet_since + timedelta(minutes=1))
    older_id = started(older, T0)
    dry = store.claim(_intent(rehearsed, None, dry_run=True), allowed=anything, now=T0)
    assert dry is not None
    _attempt(store, finished, domain.AttemptStatus.FAILED, T0)
    removal = _attempt(store, restoring, domain.AttemptStatus.SUCCEEDED, T0)
    assert store.start_rollback(_undo(restoring, removal), T0) is not None
    other = make_account("team-b", "222222222222")
    scan = store.open_scan(
        other.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(scan, [finding("vol-b")])
    [b_item] = [i.id for i in store.findings(FindingFilter("team-b"))]
    started(b_item, T0)

    assert store.interrupted_actions(org_id, quiet_since=quiet_since) == [older_id, newer_id]
    assert store.interrupted_actions(org_id) == [older_id, beating_id, at_edge_id, newer_id]


def test_a_rollback_under_way_is_left_alone_and_a_silent_one_is_resumed(
    store: Store, make_account
) -> None:
    """``start_rollback``: a dry run of the rollback does not hold it; a started rollback whose
    last sign of life is at or after ``quiet_since`` (or with no grace period given) may still
    be in its AWS call: no second one. Silent since before ``quiet_since``, it is taken over
    under its own ID (its work in AWS carries that ID), and the takeover is a sign of life."""
    _, [item_id] = _items(store, make_account, "vol-1")
    removal = _attempt(store, item_id, domain.AttemptStatus.SUCCEEDED, T0)
    undo = _undo(item_id, removal)
    store.record_dry_run(
        dataclasses.replace(undo, dry_run=True),
        would_succeed=True,
        message="would restore",
        response={},
        now=T0 + timedelta(minutes=1),
    )
    started_at = T0 + timedelta(minutes=5)
    first = store.start_rollback(undo, started_at)
    assert first is not None and not first.resumed

    later = started_at + timedelta(minutes=20)
    assert store.start_rollback(undo, later) is None
    assert store.start_rollback(undo, later, quiet_since=started_at) is None
    taken_over = store.start_rollback(undo, later, quiet_since=started_at + timedelta(seconds=1))
    assert taken_over == ledger.RollbackStart(first.id, resumed=True)
    # The takeover is itself a sign of life: a third worker right after it leaves it alone.
    assert store.start_rollback(undo, later, quiet_since=later - timedelta(seconds=1)) is None
    rollbacks = [a for a in store.actions(ORG, include_dry_runs=False) if a.rollback_of]
    assert [(a.id, a.status) for a in rollbacks] == [(first.id, "started")]


def test_a_withdrawn_approval_leaves_the_others_and_cannot_come_back(
    store: Store, make_account
) -> None:
    """``withdraw_approval`` (a CleanupApproval deleted): every item carrying exactly that
    approval goes back to pending, whatever other items of the list carry another person's;
    the withdrawal is recorded with who and when, and the approval applied again afterwards
    re-opens nothing."""
    org_id, [other, first, second] = _items(store, make_account, "vol-1", "vol-2", "vol-3")
    given = T0 - timedelta(hours=1)
    # The item with another person's approval is written first, so a scan of the table meets
    # it before the two it withdraws from (an update writes the row anew at the heap's end).
    _approve(store, org_id, [other], decided_at=given, now=T0, approver_email="ada@team-a.example")
    _approve(store, org_id, [first, second], decided_at=given, now=T0)
    withdrawn_at = T0 + timedelta(minutes=1)
    withdrawn = store.withdraw_approval(
        org_id,
        [other, first, second],
        approved_at=given,
        approver=f" {APPROVER.upper()} ",
        now=withdrawn_at,
    )
    assert sorted(withdrawn) == sorted([first, second])
    for item_id in (first, second):
        row = _item_row(store, item_id)
        assert row["cleanup_status"] == "pending" and "approval" not in row["cleanup_metadata"]
        assert (row["cleanup_approved_by"], row["cleanup_approved_at"]) == (None, None)
        assert (row["updated_at"], row["cleanup_metadata"]["withdrawn"]) == (
            withdrawn_at,
            {"by": APPROVER, "at": withdrawn_at.isoformat()},
        )
    assert _status(store, other) == "approved"
    assert _approve(store, org_id, [first, second], decided_at=given, now=withdrawn_at) == []


def test_a_withdrawal_reaches_only_the_named_approved_items_of_its_organization(
    store: Store, make_account
) -> None:
    """The same approval (same person, same time) on an item the withdrawn CleanupApproval does
    not name, on an item already cleaned, and on another organization's item named by mistake
    (or on purpose): the withdrawal takes it back from the named, approved item of its own
    organization only. The approval is recorded on the item's own columns until then."""
    org_id, [named, unnamed, cleaned] = _items(store, make_account, "vol-1", "vol-2", "vol-3")
    other_account = make_account("team-b", "222222222222")
    scan = store.open_scan(
        other_account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(scan, [finding("vol-b")])
    [foreign] = [i.id for i in store.findings(FindingFilter("team-b"))]
    given = T0 - timedelta(hours=1)
    _approve(store, org_id, [named, unnamed, cleaned], decided_at=given, now=T0)
    _approve(store, other_account.organization_id, [foreign], decided_at=given, now=T0)
    row = _item_row(store, named)
    assert (row["cleanup_approved_by"], row["cleanup_approved_at"]) == (
        store.ensure_user(org_id, APPROVER),
        given,
    )
    _attempt(store, cleaned, domain.AttemptStatus.SUCCEEDED, T0)

    withdrawn = store.withdraw_approval(
        org_id, [named, cleaned, foreign], approved_at=given, approver=APPROVER, now=T0
    )
    assert withdrawn == [named]
    assert [_status(store, i) for i in (named, unnamed, cleaned, foreign)] == [
        "pending",
        "approved",
        "cleaned",
        "approved",
    ]


def test_a_decision_does_not_wait_for_a_scan_writing_findings_of_its_account(
    store: Store, make_account
) -> None:
    """A scan inserting findings holds FOR KEY SHARE on its account's row (the foreign key
    check) until it commits. An approval and its withdrawal lock the items only: locking the
    account row too (FOR UPDATE) waits for the scan, and deadlocked when the scan then waited
    for those items."""
    org_id, [item_id] = _items(store, make_account, "vol-1")
    account = store.accounts(org_id)[0]
    given = T0 - timedelta(hours=1)
    outcome: dict[str, Any] = {}

    def decide_and_withdraw() -> None:
        outcome["approved"] = _approve(store, org_id, [item_id], decided_at=given, now=T0)
        outcome["withdrawn"] = store.withdraw_approval(
            org_id, [item_id], approved_at=given, approver=APPROVER, now=T0
        )

    with get_engine(store.url).connect() as scan:
        scan.execute(
            sa.text("SELECT 1 FROM aws_accounts WHERE id = :id FOR KEY SHARE"), {"id": account.id}
        )
        worker = threading.Thread(target=decide_and_withdraw, daemon=True)
        worker.start()
        worker.join(timeout=30)
        waited_for_the_scan = worker.is_alive()
        scan.rollback()
    worker.join()
    assert not waited_for_the_scan
    assert outcome == {"approved": [item_id], "withdrawn": [item_id]}


def test_attempts_at_the_same_moment_are_listed_in_one_fixed_order(
    store: Store, make_account
) -> None:
    """Dry runs recorded in the same instant (one run's items): the history lists them in the
    same order every time (by attempt ID after time), so ``--limit`` pages do not shuffle."""
    _, items = _items(store, make_account, *(f"vol-{n}" for n in range(6)))
    recorded = [
        store.record_dry_run(
            _intent(item_id, None, dry_run=True),
            would_succeed=True,
            message="would delete",
            response={},
            now=T0,
        )
        for item_id in items
    ]
    assert [a.id for a in store.actions(ORG)] == sorted(recorded)


def test_a_rejection_drops_the_approval_and_records_who_and_when(
    store: Store, make_account
) -> None:
    """An approved item rejected: no approval is left to read on it (the status, the approval
    columns, the approval the scheduler reads), and the rejection says who (as the person is
    known, whatever the case typed) and when."""
    org_id, [item_id] = _items(store, make_account, "vol-1")
    _approve(store, org_id, [item_id], decided_at=T0)
    rejected_at = T0 + timedelta(hours=1)

    rejected = store.decide_items(
        org_id,
        [item_id],
        approve=False,
        approver_email=f" {APPROVER.upper()} ",
        now=rejected_at,
        decided_at=rejected_at,
    )

    assert rejected == [item_id]
    row = _item_row(store, item_id)
    assert row["cleanup_status"] == "rejected" and "approval" not in row["cleanup_metadata"]
    assert (row["cleanup_approved_by"], row["cleanup_approved_at"]) == (None, None)
    assert row["cleanup_metadata"]["rejected"] == {"by": APPROVER, "at": rejected_at.isoformat()}
    candidate = store.candidate(item_id)
    assert candidate is not None and candidate.approval is None


def _waits_for_a_lock(store: Store) -> bool:
    """Whether a session of the test database is (or, within 30 s, comes to be) waiting for a
    lock: the moment a concurrent writer is blocked behind the test's open transaction."""
    with get_engine(store.url).connect() as watcher:
        for _ in range(300):
            waiting = watcher.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            ).scalar_one()
            if waiting:
                return True
            watcher.rollback()
            threading.Event().wait(0.1)
    return False


def test_a_lapse_waits_for_a_rejection_being_written_and_leaves_it(
    store: Store, make_account
) -> None:
    """A person rejects an approved item while the scheduler lapses its approval (its cost
    rose). The lapse reads the item under its row lock, so it waits for the rejection's
    transaction, then finds the item no longer approved and changes nothing: the rejection is
    not overwritten by a lapse computed from the row as it was before."""
    org_id, [item_id] = _items(store, make_account, "vol-1")
    _approve(store, org_id, [item_id], decided_at=T0)
    rejected_at = T0 + timedelta(hours=1)
    engine = get_engine(store.url)
    with engine.connect() as rejection:
        rejection.execute(
            sa.text(
                "UPDATE waste_items SET cleanup_status = 'rejected', cleanup_metadata = "
                "(cleanup_metadata - 'approval') || jsonb_build_object('rejected', "
                "jsonb_build_object('by', CAST(:by AS text), 'at', CAST(:at AS text))) "
                "WHERE id = :id"
            ),
            {"id": item_id, "by": APPROVER, "at": rejected_at.isoformat()},
        )
        lapse = threading.Thread(
            target=store.lapse_approval,
            args=(item_id, "cost rose", rejected_at + timedelta(minutes=1)),
            daemon=True,
        )
        lapse.start()
        # The lapse is blocked on the row lock (reading or writing).
        assert _waits_for_a_lock(store), "the lapse never waited for the rejection's row lock"
        rejection.commit()
    lapse.join(timeout=30)
    assert not lapse.is_alive()

    row = _item_row(store, item_id)
    assert row["cleanup_status"] == "rejected"
    assert row["cleanup_metadata"]["rejected"] == {"by": APPROVER, "at": rejected_at.isoformat()}
    assert "lapsed_approval" not in row["cleanup_metadata"]


def test_the_history_lists_the_newest_attempt_first_whatever_its_id(
    store: Store, make_account
) -> None:
    """Action IDs are random (``gen_random_uuid``): the order of the audit trail is the order of
    the attempts. Newer dry runs are recorded until one has a larger ID than the oldest, so that
    an order by ID would put the oldest first."""
    _, [item] = _items(store, make_account, "vol-1")
    at = T0 + timedelta(minutes=1)
    oldest = store.record_dry_run(
        _intent(item, None, dry_run=True), would_succeed=True, message="", response={}, now=at
    )
    recorded = [oldest]
    while len(recorded) < 2 or recorded[-1] < oldest:
        at += timedelta(minutes=1)
        recorded.append(
            store.record_dry_run(
                _intent(item, None, dry_run=True),
                would_succeed=True,
                message="",
                response={},
                now=at,
            )
        )
        assert len(recorded) < 64, "no later ID above the oldest in 63 tries"

    assert [a.id for a in store.actions(ORG)] == recorded[::-1]


def _removed(
    store: Store, item_id: uuid.UUID, at: datetime, savings: str | None = "10.00"
) -> uuid.UUID:
    """A real removal of ``item_id``: its intent at ``at``, succeeded a minute later."""
    intent = dataclasses.replace(
        _intent(item_id, None, dry_run=False),
        estimated_monthly_savings=None if savings is None else Decimal(savings),
    )
    action_id = store.claim(intent, allowed=list(ledger.ACTIONABLE), now=at)
    assert action_id is not None
    assert store.finish(
        action_id,
        status=domain.AttemptStatus.SUCCEEDED,
        now=at + timedelta(minutes=1),
        item_status=domain.CleanupStatus.CLEANED,
    )
    return action_id


def _seen(
    store: Store, item_id: uuid.UUID, *, gone_at: datetime | None, last_seen: datetime
) -> None:
    """What the scans saw of the item since: gone at ``gone_at``, or still there."""
    with get_engine(store.url).begin() as conn:
        conn.execute(
            sa.text("UPDATE waste_items SET gone_at = :gone, last_seen_at = :seen WHERE id = :id"),
            {"gone": gone_at, "seen": last_seen, "id": item_id},
        )


def _actual(store: Store, action_id: uuid.UUID) -> Decimal | None:
    action = store.action(action_id)
    assert action is not None
    return action.actual_monthly_savings


def test_savings_are_confirmed_only_for_real_removals_a_later_scan_saw_gone(
    store: Store, make_account
) -> None:
    """``confirm_savings``: a succeeded real removal whose resource a scan saw gone after it
    saves its estimate (0 without one); one whose resource was seen again saves 0 (rolled back,
    or recreated). Dry runs, failures, rollbacks themselves, removals the scans have not judged
    yet, savings already confirmed and other accounts' removals are left as they are."""
    names = (
        "gone", "no-estimate", "dry", "failed", "gone-before", "confirmed", "seen-again",
        "not-seen-since", "rolled-back", "dry-seen-again", "failed-seen-again", "back-then-gone",
        "rolled-back-then-gone", "gone-at-the-removal", "seen-as-it-finished",
    )  # fmt: skip
    _, ids = _items(store, make_account, *names)
    item = dict(zip(names, ids, strict=True))
    later, after = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    removed = ("gone", "no-estimate", "gone-before", "confirmed", "seen-again", "not-seen-since")
    removed += ("back-then-gone", "gone-at-the-removal", "seen-as-it-finished")
    removal = {
        name: _removed(store, item[name], T0, None if name == "no-estimate" else "10.00")
        for name in (*removed, "rolled-back", "rolled-back-then-gone")
    }
    for name in ("dry", "dry-seen-again"):
        removal[name] = store.record_dry_run(
            _intent(item[name], None, dry_run=True),
            would_succeed=True,
            message="would delete",
            response={},
            now=T0,
        )
    for name in ("failed", "failed-seen-again"):
        removal[name] = _attempt(store, item[name], domain.AttemptStatus.FAILED, T0)
    undone = {}
    for name in ("rolled-back", "rolled-back-then-gone"):
        undo = store.start_rollback(_undo(item[name], removal[name]), later)
        assert undo is not None
        assert store.finish(undo.id, status=domain.AttemptStatus.SUCCEEDED, now=later)
        undone[name] = undo.id
    with get_engine(store.url).begin() as conn:
        conn.execute(
            sa.text("UPDATE cleanup_actions SET actual_monthly_savings = 3 WHERE id = :id"),
            {"id": removal["confirmed"]},
        )
    for name in ("gone", "no-estimate", "dry", "failed", "confirmed"):
        _seen(store, item[name], gone_at=later, last_seen=T0)
    _seen(store, item["gone-before"], gone_at=T0 - timedelta(hours=1), last_seen=T0)
    for name in ("seen-again", "rolled-back", "dry-seen-again", "failed-seen-again"):
        _seen(store, item[name], gone_at=None, last_seen=after)
    _seen(store, item["not-seen-since"], gone_at=None, last_seen=T0)
    # Seen after the removal, then gone (recreated, then removed by hand): gone is what counts.
    _seen(store, item["back-then-gone"], gone_at=after, last_seen=later)
    _seen(store, item["rolled-back-then-gone"], gone_at=after, last_seen=later)
    # The bounds: gone from the moment of the intent on; seen again only after the outcome.
    _seen(store, item["gone-at-the-removal"], gone_at=T0, last_seen=T0)
    _seen(store, item["seen-as-it-finished"], gone_at=None, last_seen=T0 + timedelta(minutes=1))
    # Another account's removal, gone and seen again alike: not this account's to confirm.
    other = make_account(ORG, "222222222222")
    scan = store.open_scan(
        other.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(scan, [finding("vol-other-gone"), finding("vol-other-back")])
    theirs = {
        i.resource_id: i.id
        for i in store.findings(FindingFilter(ORG))
        if i.resource_id.startswith("vol-other")
    }
    their_removals = {r: _removed(store, i, T0) for r, i in theirs.items()}
    _seen(store, theirs["vol-other-gone"], gone_at=later, last_seen=T0)
    _seen(store, theirs["vol-other-back"], gone_at=None, last_seen=after)

    account = make_account(ORG, "111111111111")
    assert store.confirm_savings(account.id) == 7
    assert {name: _actual(store, action) for name, action in removal.items()} == {
        "gone": Decimal("10.00"),
        "no-estimate": Decimal("0"),
        "dry": None,
        "failed": None,
        "gone-before": None,
        "confirmed": Decimal("3.00"),
        "seen-again": Decimal("0"),
        "not-seen-since": None,
        "rolled-back": Decimal("0"),
        "dry-seen-again": None,
        "failed-seen-again": None,
        "back-then-gone": Decimal("10.00"),
        "rolled-back-then-gone": Decimal("10.00"),
        "gone-at-the-removal": Decimal("10.00"),
        "seen-as-it-finished": None,
    }
    # A rollback itself saves nothing, whether its resource is there or gone since.
    assert {name: _actual(store, undo) for name, undo in undone.items()} == {
        "rolled-back": None,
        "rolled-back-then-gone": None,
    }
    assert {r: _actual(store, a) for r, a in their_removals.items()} == {
        "vol-other-gone": None,
        "vol-other-back": None,
    }
    # Again: what was confirmed gone stays; what was seen again is counted again, still 0.
    assert store.confirm_savings(account.id) == 2
    assert _actual(store, removal["gone"]) == Decimal("10.00")


def test_two_workers_finishing_one_attempt_record_one_outcome(store: Store, make_account) -> None:
    """Two workers finish one attempt at once (one took it over while the other was still in its
    call). ``finish`` reads the attempt under its row lock, so the second waits for the first's
    transaction, then finds the outcome recorded and changes nothing: one outcome, the first."""
    _, [item_id] = _items(store, make_account, "vol-1")
    action_id = store.claim(
        _intent(item_id, None, dry_run=False), allowed=list(ledger.ACTIONABLE), now=T0
    )
    assert action_id is not None
    done_at = T0 + timedelta(minutes=1)
    second: list[bool] = []
    with sa.orm.Session(get_engine(store.url)) as first:
        assert ledger.finish(
            first,
            action_id,
            status=domain.AttemptStatus.SUCCEEDED,
            now=done_at,
            item_status=domain.CleanupStatus.CLEANED,
        )
        first.flush()  # the first worker's outcome, written, not committed yet
        late = threading.Thread(
            target=lambda: second.append(
                store.finish(
                    action_id,
                    status=domain.AttemptStatus.FAILED,
                    now=done_at + timedelta(minutes=1),
                    error="late",
                    item_status=domain.CleanupStatus.FAILED,
                )
            ),
            daemon=True,
        )
        late.start()
        # The second finish is blocked on the attempt's row lock.
        assert _waits_for_a_lock(store), "the second finish never waited for the first's row lock"
        first.commit()
    late.join(timeout=30)
    assert not late.is_alive()
    assert second == [False]
    record = store.action(action_id)
    assert record is not None
    assert (record.status, record.error_message, record.completed_at) == (
        "succeeded",
        None,
        done_at,
    )
    assert _item_row(store, item_id)["cleanup_status"] == "cleaned"


_FOR = {
    "resource_arn": "arn:aws:ec2:us-east-1:111111111111:volume/vol-1",
    "risk_level": "low",
    "safety_checks_passed": True,
    "details": {
        "tags": {"team": "payments", "env": "prod"},
        "safety_checks": [
            {"name": "protection-tag", "passed": True, "detail": "no protection tag"},
            {"name": "attached", "passed": False, "detail": "not attached"},
        ],
        "evidence": ["unattached for 95 days"],
    },
}


def _changed(**changes: Any) -> dict[str, Any]:
    return {**_FOR, **changes}


def _details(**changes: Any) -> dict[str, Any]:
    return _changed(details={**_FOR["details"], **changes})


def test_an_approvals_fingerprint_changes_with_what_was_approved_and_nothing_else() -> None:
    """What an approval binds to: the resource, its risk, its safety checks and its tags. A
    change to any voids the approval; evidence text that changes daily, and the order AWS lists
    tags or checks in, must not."""
    approved = ledger.fingerprint(**_FOR)
    # Pinned: every approval in a ledger carries the fingerprint it was given for, so a release
    # that computed another value for the same facts would void all of them at once. A change
    # here must be deliberate, with a migration of the recorded approvals.
    assert approved == "c8b070c4f3186070ab0f6966a6afd0d0"
    checks = _FOR["details"]["safety_checks"]
    same = [
        _details(evidence=["unattached for 96 days"]),
        _details(tags={"env": "prod", "team": "payments"}),
        _details(safety_checks=list(reversed(checks))),
        _details(safety_checks=[{**c, "detail": "reworded"} for c in checks]),
    ]
    for facts in same:
        assert ledger.fingerprint(**facts) == approved, facts
    changed = {
        "another resource": _changed(resource_arn=_FOR["resource_arn"].replace("vol-1", "vol-2")),
        "risk": _changed(risk_level="medium"),
        "safety verdict": _changed(safety_checks_passed=False),
        "a tag added": _details(tags={**_FOR["details"]["tags"], "do-not-delete": "true"}),
        "a tag's value": _details(tags={"team": "payments", "env": "staging"}),
        "a tag removed": _details(tags={"team": "payments"}),
        "no tags": _details(tags=None),
        "a check now passes": _details(safety_checks=[{**c, "passed": True} for c in checks]),
        "a check renamed": _details(safety_checks=[{**checks[0], "name": "tagged"}, checks[1]]),
        "a check added": _details(safety_checks=[*checks, {"name": "in-use", "passed": True}]),
        "no checks": _details(safety_checks=None),
    }
    prints = {what: ledger.fingerprint(**facts) for what, facts in changed.items()}
    assert all(p != approved for p in prints.values()), prints
    assert len(set(prints.values())) == len(prints)


def test_an_approval_reads_back_as_it_was_given(store: Store, make_account) -> None:
    """What the executor decides by is the approval as recorded: who (their user and address,
    as given, lower-cased), when, until when, at what cost, for which state of the resource and,
    for a CleanupApproval, under which policy's spec. The CLI's approval holds under any policy."""
    org_id, [bound, anyone] = _items(store, make_account, "vol-1", "vol-2")
    decided_at = T0 - timedelta(hours=1)
    expires = T0 + timedelta(days=3)
    assert _approve(
        store,
        org_id,
        [bound],
        approver_email="Maria@Team-A.example",
        decided_at=decided_at,
        expires_at=expires,
        approved_cost=Decimal("12.50"),
        policy_name="idle-volumes",
        policy_hash="3f2a",
    )
    assert _approve(store, org_id, [anyone], decided_at=decided_at, ttl=timedelta(days=2))
    user = store.ensure_user(org_id, APPROVER)
    candidates = {item_id: store.candidate(item_id) for item_id in (bound, anyone)}
    # The fingerprint is the item's own as it was approved (nothing changed since).
    now = {i: c.fingerprint for i, c in candidates.items() if c is not None}
    assert {i: c.approval for i, c in candidates.items() if c is not None} == {
        bound: ledger.Approval(
            approved_by=user,
            approver_email=APPROVER,
            approved_at=decided_at,
            expires_at=expires,
            monthly_cost=Decimal("12.50"),
            fingerprint=now[bound],
            policy_name="idle-volumes",
            policy_hash="3f2a",
        ),
        anyone: ledger.Approval(
            approved_by=user,
            approver_email=APPROVER,
            approved_at=decided_at,
            expires_at=decided_at + timedelta(days=2),
            monthly_cost=Decimal("10.00"),
            fingerprint=now[anyone],
        ),
    }


def test_a_candidate_carries_its_finding_and_what_gates_it(store: Store) -> None:
    """What a policy decides by and the executor acts with, read back whole, alike one by one
    and streamed: the finding, its account's role and ExternalId (the session is assumed with
    them), and the account's and organization's auto-cleanup switches."""
    org = store.ensure_organization(ORG)
    assert store.set_organization_auto_cleanup(ORG, True)
    account = store.register_account(
        org.id,
        account_id="111111111111",
        role_arn="arn:aws:iam::111111111111:role/CloudSweepCleaner",
        external_id="ext-7",
        regions=["us-east-1"],
        auto_cleanup_enabled=False,
    )
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    found = dataclasses.replace(
        finding("vol-1", cost="42.10", confidence=85),
        resource_arn="arn:aws:ec2:us-east-1:111111111111:volume/vol-1",
        risk=domain.RiskLevel.MEDIUM,
    )
    store.upsert_findings(scan, [found], seen_at=T0)
    [item] = store.findings(FindingFilter(ORG))
    with get_engine(store.url).connect() as conn:
        stored = conn.execute(
            sa.text("SELECT resource_details, discovered_at FROM waste_items WHERE id = :id"),
            {"id": item.id},
        ).one()
    assert stored.resource_details["tags"] == {"team": "payments"}
    expected = ledger.Candidate(
        id=item.id,
        organization_id=org.id,
        account_uuid=account.id,
        account_id="111111111111",
        role_arn="arn:aws:iam::111111111111:role/CloudSweepCleaner",
        external_id="ext-7",
        region="us-east-1",
        resource_type="ebs-volume",
        resource_id="vol-1",
        resource_arn="arn:aws:ec2:us-east-1:111111111111:volume/vol-1",
        availability_zone="us-east-1a",
        monthly_cost=Decimal("42.10"),
        confidence_score=85,
        risk_level="medium",
        safety_checks_passed=True,
        cleanup_status="pending",
        resource_details=stored.resource_details,
        discovered_at=stored.discovered_at,
        account_auto_cleanup=False,
        organization_auto_cleanup=True,
        approval=None,
        fingerprint=ledger.fingerprint(
            "arn:aws:ec2:us-east-1:111111111111:volume/vol-1",
            "medium",
            True,
            stored.resource_details,
        ),
    )
    assert store.candidate(item.id) == expected
    assert list(store.candidates(org.id, resource_type="ebs-volume")) == [expected]


def test_a_cleanup_run_is_recorded_as_opened_then_closed(store: Store, make_account) -> None:
    """The run's audit row: who ran it, how, for real or not, under which policies and plan, and
    when; closed with its outcome and summary. Closing one run leaves the others open."""
    org_id, _ = _items(store, make_account, "vol-1")
    runner = store.ensure_user(org_id, RUNNER)
    opened = {
        "dry_run": False,
        "method": domain.ExecutionMethod.MANUAL,
        "executed_by": runner,
        "policies": [{"name": "idle-volumes", "resourceType": "ebs-volume"}],
        "plan": {"actionable": ["vol-1"]},
    }
    run_id = store.open_cleanup_run(org_id, now=T0, **opened)
    other = store.open_cleanup_run(
        org_id, now=T0, **{**opened, "dry_run": True, "executed_by": None}
    )

    def run(run: uuid.UUID) -> dict[str, Any]:
        with get_engine(store.url).connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT organization_id, dry_run, execution_method, executed_by, policies, "
                    "plan, started_at, status, summary, completed_at FROM cleanup_runs "
                    "WHERE id = :id"
                ),
                {"id": run},
            ).mappings()
            return dict(row.one())

    started = {
        "organization_id": org_id,
        "dry_run": False,
        "execution_method": "manual",
        "executed_by": runner,
        "policies": opened["policies"],
        "plan": opened["plan"],
        "started_at": T0,
    }
    assert {k: v for k, v in run(run_id).items() if k in started} == started
    assert run(run_id)["completed_at"] is None
    summary = {"outcomes": {"succeeded": 1}, "interrupted_found": 0}
    store.close_cleanup_run(
        run_id, status=domain.RunStatus.FAILED, summary=summary, now=T0 + timedelta(minutes=2)
    )
    closed = run(run_id)
    assert (closed["status"], closed["summary"], closed["completed_at"]) == (
        "failed",
        summary,
        T0 + timedelta(minutes=2),
    )
    assert {k: v for k, v in closed.items() if k in started} == started
    assert run(other)["completed_at"] is None and run(other)["dry_run"] is True


def test_a_person_is_one_user_per_organization_whatever_the_spelling(
    store: Store, make_account
) -> None:
    """``ensure_user``: an address (or a Kubernetes user name) is trimmed and lower-cased, made
    once, and found again; the same person in another organization is another user there. What
    is not an identity is refused, naming the value."""
    org_id, _ = _items(store, make_account, "vol-1")
    other = make_account("team-b", "222222222222").organization_id
    first = store.ensure_user(org_id, "  Maria@Team-A.example ")
    assert store.ensure_user(org_id, "maria@team-a.example") == first
    assert store.ensure_user(other, "maria@team-a.example") != first
    with get_engine(store.url).connect() as conn:
        users = conn.execute(
            sa.text("SELECT organization_id, email, role FROM users WHERE id = :id"), {"id": first}
        ).one()
    assert tuple(users) == (org_id, "maria@team-a.example", "member")
    longest = "a" * 243 + "@example.com"
    assert store.ensure_user(org_id, longest) != first
    for bad in ("", "   ", longest + "x"):
        with pytest.raises(domain.InvalidInput) as refused:
            store.ensure_user(org_id, bad)
        assert str(refused.value) == (
            f"{bad.strip().lower()!r} is not an identity; pass --as you@example.com"
        )
