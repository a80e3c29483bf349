"""What the ledger reads back: an item's past decisions, and the history of cleanup attempts.

A decision that ended (a rejection, a lapse) must keep an older approval from coming back even
when another entry of the item's history is unreadable; the action history lists each attempt
once, with the person who ran it, however many people the organization has.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from cloudsweep import domain
from cloudsweep.store import FindingFilter, Intent, Store
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
