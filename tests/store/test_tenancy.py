"""One organization's queries never return another's rows, even for the same AWS account."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from cloudsweep import domain
from cloudsweep.store import AccountClaimed, FindingFilter, Store
from cloudsweep.store.engine import get_engine

from .conftest import T0, finding


def test_same_account_in_two_organizations_stays_apart(store: Store, make_account) -> None:
    """A single-team install that allows shared accounts still keys every row per organization."""
    a = make_account("team-a", "111111111111", allow_shared=True)
    b = make_account("team-b", "111111111111", allow_shared=True)
    assert a.id != b.id
    scan_a = store.open_scan(
        a.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    scan_b = store.open_scan(
        b.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(scan_a, [finding("vol-shared", cost="5.00"), finding("vol-a")])
    store.upsert_findings(scan_b, [finding("vol-shared", cost="7.00")])

    seen_a = {
        (i.organization_slug, i.resource_id, i.monthly_cost)
        for i in store.findings(FindingFilter("team-a"))
    }
    seen_b = {
        (i.organization_slug, i.resource_id, i.monthly_cost)
        for i in store.findings(FindingFilter("team-b"))
    }
    assert {slug for slug, _, _ in seen_a} == {"team-a"}
    assert {slug for slug, _, _ in seen_b} == {"team-b"}
    assert ("team-b", "vol-shared", 7) in {(s, r, c) for s, r, c in seen_b}
    assert len(seen_b) == 1
    assert store.findings(FindingFilter("team-c")) == []
    assert [acc.account_id for acc in store.accounts(b.organization_id)] == ["111111111111"]

    # Closing unseen items in one organization leaves the other's alone.
    later = store.open_scan(
        b.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.close_unseen(later, regions=["us-east-1"], resource_types=["ebs-volume"], now=T0)
    assert len(store.findings(FindingFilter("team-a"))) == 2


def test_organization_slug_is_a_namespace_name(store: Store) -> None:
    with pytest.raises(domain.InvalidInput, match="Kubernetes namespace name"):
        store.ensure_organization("Team_A")


def test_ensure_organization_is_idempotent_and_notices_recreated_namespaces(store: Store) -> None:
    first = store.ensure_organization("team-a", namespace_uid="uid-1")
    assert store.ensure_organization("team-a", namespace_uid="uid-1").id == first.id
    with pytest.raises(domain.InvalidInput, match="recreated"):
        store.ensure_organization("team-a", namespace_uid="uid-2")


def test_ensure_organization_races_to_one_organization(store: Store) -> None:
    """Handlers meeting a new namespace at once (seen in CI): each insert collides on the slug and
    on the namespace UID, and must return the one organization, never a unique violation. The
    window is microseconds wide, so it is opened many times; the old code failed ~5% of rounds."""
    threads = 6
    for round_ in range(200):
        barrier = threading.Barrier(threads)

        def ensure(slug: str, uid: str, barrier: threading.Barrier = barrier) -> uuid.UUID:
            barrier.wait()
            return store.ensure_organization(slug, namespace_uid=uid).id

        with ThreadPoolExecutor(threads) as pool:
            racers = [
                pool.submit(ensure, f"race-{round_}", f"uid-race-{round_}") for _ in range(threads)
            ]
            ids = {racer.result() for racer in racers}
        assert len(ids) == 1, f"round {round_}: {ids}"


def test_organization_slugs_are_the_organizations_not_retired_in_order(store: Store) -> None:
    for slug in ("team-c", "team-a", "team-b"):
        store.ensure_organization(slug)
    with get_engine(store.url).begin() as conn:
        conn.execute(sa.text("UPDATE organizations SET deleted_at = now() WHERE slug = 'team-b'"))
    assert store.organization_slugs() == ["team-a", "team-c"]


def test_a_namespace_uid_names_one_organization(store: Store) -> None:
    store.ensure_organization("team-a", namespace_uid="uid-1")
    with pytest.raises(domain.InvalidInput, match="another organization"):
        store.ensure_organization("team-b", namespace_uid="uid-1")


def test_an_account_belongs_to_the_first_organization_that_registers_it(
    store: Store, make_account
) -> None:
    holder = make_account("team-a", "111111111111")
    with pytest.raises(AccountClaimed, match="another organization") as refused:
        make_account("team-b", "111111111111")
    assert "team-a" not in str(refused.value)  # tenants learn nothing about each other
    team_b = store.organization("team-b")
    assert team_b is not None and store.account(team_b.id, "111111111111") is None
    assert store.account_holder("111111111111") == holder.organization_id
    # The holder updates its registration freely.
    assert make_account("team-a", "111111111111").id == holder.id


def test_deleting_the_holders_account_releases_the_claim(store: Store, make_account) -> None:
    holder = make_account("team-a", "111111111111")
    store.mark_account_deleted(holder.id, T0)
    assert store.account_holder("111111111111") is None
    taken = make_account("team-b", "111111111111")
    assert store.account_holder("111111111111") == taken.organization_id
    # The old holder's history stays with it, and it cannot take the account back.
    with pytest.raises(AccountClaimed):
        make_account("team-a", "111111111111")
    team_a = store.organization("team-a")
    assert team_a is not None and store.account(team_a.id, "111111111111") is not None


def _connections(store: Store) -> dict[uuid.UUID, tuple[str, str | None]]:
    with get_engine(store.url).connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, connection_status, connection_error FROM aws_accounts")
        )
        return {row.id: (row.connection_status, row.connection_error) for row in rows}


def test_a_failed_connection_keeps_its_error_on_that_registration_only(
    store: Store, make_account
) -> None:
    """``set_connection`` stores the status and AWS's error on the one registration it names:
    the same AWS account registered by another organization keeps its own; a later connection
    clears the error."""
    a = make_account("team-a", "111111111111", allow_shared=True)
    b = make_account("team-b", "111111111111", allow_shared=True)
    error = "AccessDenied: not authorized to perform sts:AssumeRole"
    store.set_connection(a.id, domain.ConnectionStatus.FAILED, error)
    assert _connections(store) == {a.id: ("failed", error), b.id: ("pending", None)}
    store.set_connection(b.id, domain.ConnectionStatus.CONNECTED)
    store.set_connection(a.id, domain.ConnectionStatus.CONNECTED)
    assert _connections(store) == {a.id: ("connected", None), b.id: ("connected", None)}


def test_two_organizations_registering_one_account_at_once_get_one_holder(
    store: Store, make_account
) -> None:
    """Two operator replicas reconciling two namespaces' AwsAccounts at the same moment: the
    claim's primary key lets exactly one organization in, every round."""
    for round_ in range(40):
        account_id = f"{round_ + 100000000000}"
        barrier = threading.Barrier(2)

        def register(
            slug: str, barrier: threading.Barrier = barrier, account_id: str = account_id
        ) -> bool:
            barrier.wait()
            try:
                make_account(slug, account_id)
            except AccountClaimed:
                return False
            return True

        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(register, [f"race-a-{round_}", f"race-b-{round_}"]))
        assert sorted(outcomes) == [False, True], f"round {round_}: {outcomes}"
        live = [
            org
            for org in (f"race-a-{round_}", f"race-b-{round_}")
            if (o := store.organization(org)) and store.account(o.id, account_id)
        ]
        assert len(live) == 1


def test_findings_of_a_deleted_account_are_not_stored(store: Store, make_account) -> None:
    """The store's write path refuses findings once the account's deletion is processed, so a
    scan still running then stores nothing more."""
    account = make_account("team-a", "111111111111")
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(scan, [finding("vol-before")])
    store.mark_account_deleted(account.id, T0)
    result = store.upsert_findings(scan, [finding("vol-after"), finding("vol-before")])
    assert (result.inserted, result.updated) == (0, 0)
    assert [i.resource_id for i in store.findings(FindingFilter("team-a"))] == ["vol-before"]


def test_a_deletion_under_way_holds_the_scans_writes_then_refuses_them(
    store: Store, make_account, caplog: pytest.LogCaptureFixture
) -> None:
    """The AwsAccount is being deleted (its row updated, not yet committed) while its scan
    stores findings and closes the unseen ones: both wait for the deletion (a share lock on
    the account's row), then see it and write nothing, saying why in the operator's log."""
    account = make_account("team-a", "111111111111")
    first = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(first, [finding("vol-before")])
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    with get_engine(store.url).connect() as deleting:
        deleting.execute(
            sa.text("UPDATE aws_accounts SET deleted_at = :at WHERE id = :id"),
            {"at": T0, "id": account.id},
        )
        with ThreadPoolExecutor(2) as pool, caplog.at_level(logging.INFO, "cloudsweep.store"):
            stored = pool.submit(store.upsert_findings, scan, [finding("vol-after")])
            closed = pool.submit(
                store.close_unseen,
                scan,
                regions=["us-east-1"],
                resource_types=["ebs-volume"],
                now=T0,
            )
            time.sleep(2)
            waited = not stored.done() and not closed.done()
            deleting.commit()
            result, gone = stored.result(timeout=60), closed.result(timeout=60)
    assert waited, "the scan's writes went ahead of the deletion under way"
    assert (result.inserted, result.updated, gone) == (0, 0, 0)
    [item] = store.findings(FindingFilter("team-a"))
    assert (item.resource_id, item.gone_at) == ("vol-before", None)
    assert f"account {account.id} was deleted: findings of scan {scan.id} not stored" in (
        caplog.messages
    )
