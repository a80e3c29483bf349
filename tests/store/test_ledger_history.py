"""The ledger's decisions and what it reads back: which items a decision may change, an item's
past decisions, the history of cleanup attempts, a policy's figures and the policy as applied.

A decision that ended (a rejection, a lapse) must keep an older approval from coming back even
when another entry of the item's history is unreadable; the action history lists each attempt
once, with the person who ran it, however many people the organization has; a CleanupPolicy's
status counts its own real attempts only.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

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
