"""The ledger's tenant guards: an organization's candidates and decisions stay its own.

The same AWS account (and the same resource IDs) registered by two organizations is the hardest
case: only the organization key keeps them apart. Each test names the guard it holds.
"""

from __future__ import annotations

from datetime import timedelta

from cloudsweep import domain
from cloudsweep.store import FindingFilter, Store

from .conftest import T0, finding

SHARED = "111111111111"


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
