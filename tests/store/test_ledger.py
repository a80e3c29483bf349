"""The ledger's tenant guards: an organization's candidates and decisions stay its own.

The same AWS account (and the same resource IDs) registered by two organizations is the hardest
case: only the organization key keeps them apart. Each test names the guard it holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa

from cloudsweep import domain
from cloudsweep.store import AccountRecord, FindingFilter, Store, ledger
from cloudsweep.store.engine import session_scope

from .conftest import T0, finding
from .test_ledger_history import _attempt, _intent

SHARED = "111111111111"
SIBLING = "222222222222"


def _two_tenants(store: Store, make_account) -> tuple:
    a = make_account("team-a", SHARED)
    # Only an install that allows shared accounts gets here (one account, one organization by
    # default); the guards must hold there too.
    b = make_account("team-b", SHARED, allow_shared=True)
    for account, cost in ((a, "5.00"), (b, "7.00")):
        scan = store.open_scan(
            account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
        )
        store.upsert_findings(scan, [finding("vol-shared", cost=cost), finding("vol-only")])
    ids = {
        slug: {i.resource_id: i.id for i in store.findings(FindingFilter(slug))}
        for slug in ("team-a", "team-b")
    }
    return a, b, ids


def test_decide_items_changes_only_the_deciding_organizations_items(
    store: Store, make_account
) -> None:
    """Guard: ``AwsAccount.organization_id == organization_id`` in ``decide_items``. Team A passes
    team B's item IDs (and its own): only A's items are approved; B's stay pending, unapproved."""
    a, b, ids = _two_tenants(store, make_account)
    b_items = list(ids["team-b"].values())
    changed = store.decide_items(
        a.organization_id,
        [*b_items, ids["team-a"]["vol-shared"]],
        approve=True,
        approver_email="ann@team-a.example",
        now=T0,
    )
    assert changed == [ids["team-a"]["vol-shared"]]
    assert not store.decide_items(
        a.organization_id, b_items, approve=False, approver_email="ann@team-a.example", now=T0
    )
    for candidate in store.candidates(b.organization_id, resource_type="ebs-volume"):
        assert candidate.cleanup_status == domain.CleanupStatus.PENDING.value
        assert candidate.approval is None
    [approved] = [
        c
        for c in store.candidates(a.organization_id, resource_type="ebs-volume")
        if c.approval is not None
    ]
    assert approved.id == ids["team-a"]["vol-shared"]
    assert approved.approval.approver_email == "ann@team-a.example"
    assert approved.approval.expires_at == T0 + timedelta(days=14)


def test_candidates_are_the_organizations_own(store: Store, make_account) -> None:
    """Guard: ``Organization.id == organization_id`` in the candidate query (what a cleanup run
    plans from). Each organization sees exactly its own two findings, at its own costs."""
    a, b, ids = _two_tenants(store, make_account)
    for account, slug, shared_cost in ((a, "team-a", "5.00"), (b, "team-b", "7.00")):
        seen = list(store.candidates(account.organization_id, resource_type="ebs-volume"))
        assert {c.id for c in seen} == set(ids[slug].values())
        assert {c.organization_id for c in seen} == {account.organization_id}
        assert {c.account_uuid for c in seen} == {account.id}
        [shared] = [c for c in seen if c.resource_id == "vol-shared"]
        assert str(shared.monthly_cost) == shared_cost
    other = make_account("team-c", "333333333333")
    assert list(store.candidates(other.organization_id, resource_type="ebs-volume")) == []
    # An account filter cannot reach into another organization's account either.
    assert (
        list(
            store.candidates(
                other.organization_id, resource_type="ebs-volume", account_ids=[SHARED]
            )
        )
        == []
    )


def test_candidates_are_open_findings_of_live_accounts(store: Store, make_account) -> None:
    """Guards: ``WasteItem.gone_at IS NULL`` and ``AwsAccount.deleted_at IS NULL`` in the
    candidate query. A resource the last full scan no longer saw is not planned (the run would
    act on an ID that may name nothing, or something else now), and neither is any finding of an
    AwsAccount that was deleted (its role may be gone, and nobody asked CloudSweep to act there)."""
    kept = make_account("team-a", SHARED)
    deleted = make_account("team-a", SIBLING)
    for account in (kept, deleted):
        scan = store.open_scan(
            account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
        )
        store.upsert_findings(scan, [finding("vol-stays"), finding("vol-goes")])
    later = store.open_scan(
        kept.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(later, [finding("vol-stays")])
    assert store.close_unseen(later, regions=["us-east-1"], resource_types=["ebs-volume"], now=T0)

    def planned() -> set[tuple[str, str]]:
        return {
            (c.account_id, c.resource_id)
            for c in store.candidates(kept.organization_id, resource_type="ebs-volume")
        }

    # Before the deletion: both of the deleted account's findings are candidates (the set-up).
    assert planned() == {(SHARED, "vol-stays"), (SIBLING, "vol-stays"), (SIBLING, "vol-goes")}
    store.mark_account_deleted(deleted.id, T0 + timedelta(minutes=1))
    assert planned() == {(SHARED, "vol-stays")}


def test_candidates_stream_through_a_server_side_cursor(store: Store, make_account) -> None:
    """Guard: ``yield_per`` on the candidate query. A policy over 100k findings must not load
    them all into the operator's memory: the rows come through a server-side cursor, in batches,
    which PostgreSQL lists in ``pg_cursors`` while the stream is open (a buffered query has
    fetched every row and holds no cursor)."""
    account = make_account("team-a", SHARED)
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(scan, [finding(f"vol-{n}") for n in range(5)])
    with session_scope(store.url) as session:
        stream = ledger.iter_candidates(
            session, account.organization_id, resource_type="ebs-volume", batch=2
        )
        first = next(stream)
        open_cursors = session.execute(sa.text("SELECT count(*) FROM pg_cursors")).scalar_one()
        rest = list(stream)
    assert open_cursors == 1
    assert len({first.resource_id, *(c.resource_id for c in rest)}) == 5


STATUSES = tuple(s.value for s in domain.CleanupStatus)


def _one_finding_per_status(
    store: Store, slug: str, account: AccountRecord
) -> dict[str, uuid.UUID]:
    """A finding ``vol-<status>`` in ``account`` for every cleanup status, each moved there by
    the ledger (decided, claimed, finished); returns each item's ID by its status."""
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(scan, [finding(f"vol-{status}") for status in STATUSES])
    ids = {
        i.resource_id.removeprefix("vol-"): i.id
        for i in store.findings(FindingFilter(slug, account_id=account.account_id))
    }
    org_id, email = account.organization_id, f"ann@{slug}.example"
    to_approve = [ids[s] for s in ("approved", "cleaning", "failed", "cleaned")]
    assert store.decide_items(org_id, to_approve, approve=True, approver_email=email, now=T0)
    assert store.decide_items(
        org_id, [ids["rejected"]], approve=False, approver_email=email, now=T0
    )
    assert store.claim(
        _intent(ids["cleaning"], None, dry_run=False),
        allowed=[domain.CleanupStatus.APPROVED.value],
        now=T0,
    )
    _attempt(store, ids["failed"], domain.AttemptStatus.FAILED, T0)
    _attempt(store, ids["cleaned"], domain.AttemptStatus.SUCCEEDED, T0)
    return ids


def test_candidates_are_of_the_accounts_and_statuses_asked_for(store: Store, make_account) -> None:
    """Guards: the account and status filters of the candidate query (a CleanupPolicy limited to
    some accounts plans from it). Team A has two accounts, team B the same AWS account as A's
    first; each holds one finding in every cleanup status. A query gets exactly the findings of
    the accounts it names, in the statuses it names (pending and approved when it names none):
    never a sibling account's, never another organization's registration of the same account."""
    a_shared = make_account("team-a", SHARED)
    a_sibling = make_account("team-a", SIBLING)
    b_shared = make_account("team-b", SHARED, allow_shared=True)
    items = {
        account.id: _one_finding_per_status(store, slug, account)
        for slug, account in (("team-a", a_shared), ("team-a", a_sibling), ("team-b", b_shared))
    }

    def seen(
        account: AccountRecord, account_ids: Sequence[str], **statuses: Sequence[str]
    ) -> set[tuple[uuid.UUID, uuid.UUID, str]]:
        return {
            (c.account_uuid, c.id, c.cleanup_status)
            for c in store.candidates(
                account.organization_id,
                resource_type="ebs-volume",
                account_ids=account_ids,
                **statuses,
            )
        }

    def expected(
        accounts: Sequence[AccountRecord], statuses: Sequence[str]
    ) -> set[tuple[uuid.UUID, uuid.UUID, str]]:
        return {(a.id, items[a.id][s], s) for a in accounts for s in statuses}

    # Every status, both accounts of team A: the set-up, and the whole of what the filters cut.
    assert seen(a_shared, [SHARED, SIBLING], statuses=STATUSES) == expected(
        [a_shared, a_sibling], STATUSES
    )
    # One account, the statuses a cleanup run acts on by default.
    assert seen(a_shared, [SHARED]) == expected([a_shared], ["pending", "approved"])
    assert seen(a_sibling, [SIBLING], statuses=["rejected", "failed"]) == expected(
        [a_sibling], ["rejected", "failed"]
    )
    assert seen(b_shared, [SHARED], statuses=["cleaning"]) == expected([b_shared], ["cleaning"])
    # Team B names team A's other account: it has no such account, so nothing at all.
    assert seen(b_shared, [SIBLING], statuses=STATUSES) == set()
