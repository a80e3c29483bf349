"""SAFETY-TESTS "hostile tenants": one AWS account belongs to one organization, a role that does
not enforce its ExternalId is never used, and nothing of tenant A is listed, stored or changed
under tenant B.

How AWS is checked: moto does not check ExternalIds, so the tests' moto server sits behind the
enforcing STS of ``tests/sts_gate.py``, a WSGI middleware on the server side of the HTTP
connection that plays the roles' trust policies. Each test runs twice:

- ``enforcing``: A's and B's roles accept only their own ExternalId (``StringEquals
  sts:ExternalId``), as a correctly set-up customer role does;
- ``lax``: the roles' trust policies have no ExternalId condition, which is moto's own behaviour
  (and that of many real roles).

What the tests observe comes from AWS's side: moto's state (the volumes and addresses of each
account, read through a seeder role) and the gate's log of every request moto received, with the
access key that signed it mapped to the account moto issued it for; never CloudSweep's own
labels. Resources are seeded per account through assumed-role credentials, so moto keeps the
accounts apart.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa

from cloudsweep import aws, domain, scanning
from cloudsweep.settings import Settings
from cloudsweep.store import AccountClaimed, AccountRecord, FindingFilter, Store
from cloudsweep.store.engine import get_engine
from tests.sts_gate import StsGate

from . import helpers

A, B = "111111111111", "222222222222"
EXTERNAL = {A: "ext-tenant-a", B: "ext-tenant-b"}


@pytest.fixture(params=["enforcing", "lax"])
def trust(request: pytest.FixtureRequest, sts: StsGate) -> str:
    """The roles' trust policies, at the gate in front of moto."""
    for account in (A, B):
        if request.param == "enforcing":
            sts.pinned[helpers.role_arn(account)] = EXTERNAL[account]
        else:
            sts.lax_roles.add(helpers.role_arn(account))
    return str(request.param)


def register(store: Store, slug: str, account_id: str, external_id: str) -> AccountRecord:
    org = store.ensure_organization(slug)
    return store.register_account(
        org.id,
        account_id=account_id,
        role_arn=helpers.role_arn(account_id),
        external_id=external_id,
        regions=[helpers.REGION],
    )


def scan(store: Store, account: AccountRecord, settings: Settings) -> scanning.ScanOutcome:
    return scanning.run_scan(store, account, helpers.scan_options(), settings=settings)


def stored(store: Store, slug: str) -> set[tuple[str, str]]:
    return {(f.account_id, f.resource_id) for f in store.findings(FindingFilter(slug))}


def shared_row_from_before_claims(database_url: str, slug: str, account_id: str) -> uuid.UUID:
    """A registration of ``account_id`` for ``slug`` that bypassed the claim, as the claims
    migration leaves one when two organizations had registered the same account before it."""
    with get_engine(database_url).begin() as conn:
        org = conn.execute(
            sa.text("SELECT id FROM organizations WHERE slug = :s"), {"s": slug}
        ).scalar_one()
        return uuid.UUID(
            str(
                conn.execute(
                    sa.text(
                        "INSERT INTO aws_accounts (organization_id, account_id, role_arn, "
                        "external_id, regions) VALUES (:o, :a, :r, :e, ARRAY[:g]) RETURNING id"
                    ),
                    {
                        "o": org,
                        "a": account_id,
                        "r": helpers.role_arn(account_id),
                        "e": EXTERNAL[B],
                        "g": helpers.REGION,
                    },
                ).scalar_one()
            )
        )


def test_a_second_organization_never_gets_anything_of_the_first(
    trust: str,
    sts: StsGate,
    moto_endpoint: str,
    store: Store,
    settings: Settings,
    database_url: str,
) -> None:
    world_a = helpers.seed_small_world(moto_endpoint, A, external_id=EXTERNAL[A])
    world_b = helpers.seed_small_world(moto_endpoint, B, external_id=EXTERNAL[B])
    a_volumes, a_addresses = helpers.live_volumes(world_a), helpers.live_addresses(world_a)
    account_a = register(store, "tenant-a", A, EXTERNAL[A])
    account_b = register(store, "tenant-b", B, EXTERNAL[B])

    # Each tenant scans its own account: only an enforcing role is used at all.
    outcome_a, outcome_b = scan(store, account_a, settings), scan(store, account_b, settings)
    if trust == "enforcing":
        assert (outcome_a.scan.status, outcome_b.scan.status) == ("completed", "completed")
        assert {r for a, r in stored(store, "tenant-a")} >= set(world_a.volumes)
    else:
        for outcome in (outcome_a, outcome_b):
            assert outcome.scan.status == "failed"
            assert "can be assumed without the ExternalId" in (outcome.error or "")
        assert sts.calls() == []  # refused after STS: not one call into either account
    tenant_a_findings = stored(store, "tenant-a")
    started = time.time()

    # B declares A's account with A's role: refused before any AWS call, A's data untouched.
    with pytest.raises(AccountClaimed):
        register(store, "tenant-b", A, EXTERNAL[B])
    with pytest.raises(AccountClaimed):
        register(store, "tenant-b", A, EXTERNAL[A])  # even knowing A's ExternalId
    assert sts.calls(since=started, include_sts=True) == []
    org_b = store.organization("tenant-b")
    assert org_b is not None and store.account(org_b.id, A) is None

    # A registration of A's account under B that predates the claims: its scan is refused
    # before any AWS call, and B's cleanup runs touch nothing of A.
    hostile_id = shared_row_from_before_claims(database_url, "tenant-b", A)
    hostile = store.account(org_b.id, A)
    assert hostile is not None and hostile.id == hostile_id
    with pytest.raises(scanning.ScanRefused, match="not held by this organization"):
        scan(store, hostile, settings)
    planted = store.open_scan(
        hostile.id,
        scan_type=domain.ScanType.MANUAL,
        regions=[helpers.REGION],
        started_at=domain.utcnow(),
    )
    store.upsert_findings(planted, [_planted_address(world_a.addresses[0])])
    report = helpers.run_cleanup(
        store,
        "tenant-b",
        [helpers.address_policy(), helpers.volume_policy()],
        settings,
        aws.CallRecorder(),
    )
    [refused] = [r for r in report.results if r.account_id == A]
    assert refused.outcome == "refused" and "not held by this organization" in refused.message
    # The ledger keeps the refusal, with its reason, and the item stays as it was.
    [row] = [r for r in helpers.ledger(database_url, "tenant-b") if r["id"] == refused.action_id]
    assert (row["status"], row["dry_run"], row["aws_response"], row["cleanup_status"]) == (
        "refused",
        False,
        {"code": "AccountNotHeld"},
        "pending",
    )
    assert row["error_message"] == f"refused: {refused.message}"
    # B's dry run says it would refuse, and records why, with no call either.
    dry = helpers.run_cleanup(
        store, "tenant-b", [helpers.address_policy()], settings, aws.CallRecorder(), dry_run=True
    )
    [would] = [r for r in dry.results if r.account_id == A]
    assert (would.outcome, would.message) == (
        "dry-run-fail",
        f"would refuse: AWS account {A} is not held by this organization (another organization "
        "registered it): nothing of it is cleaned",
    )
    [row] = [r for r in helpers.ledger(database_url, "tenant-b") if r["id"] == would.action_id]
    assert (row["dry_run"], row["success"], row["aws_response"]) == (
        True,
        False,
        {"code": "AccountNotHeld"},
    )

    # From AWS's side: no request signed with credentials of A since B started, A unchanged.
    assert sts.calls(account=A, since=started) == []
    assert not [
        r
        for r in sts.calls(since=started, include_sts=True)
        if r.action == "AssumeRole" and r.params.get("RoleArn") == helpers.role_arn(A)
    ]
    assert helpers.live_volumes(world_a) == a_volumes
    assert helpers.live_addresses(world_a) == a_addresses
    assert stored(store, "tenant-a") == tenant_a_findings
    assert {a for a, _ in stored(store, "tenant-b")} <= {A, B}
    assert [r for a, r in stored(store, "tenant-b") if a == A] == [world_a.addresses[0]]
    assert not helpers.real_rows(database_url, "tenant-a")
    if trust == "enforcing":
        # B's own waste was cleaned, under B's credentials only.
        assert sts.accounts_called(since=started) == {B}
        assert helpers.live_addresses(world_b) == set(world_b.protected_addresses)
    else:
        # A role that does not enforce the ExternalId is never cleaned, not even by its holder.
        report_a = helpers.run_cleanup(
            store, "tenant-a", [helpers.address_policy()], settings, aws.CallRecorder()
        )
        assert all(r.outcome != "succeeded" for r in report_a.results)
        assert sts.calls() == []
        assert helpers.live_addresses(world_b) == set(world_b.addresses) | set(
            world_b.protected_addresses
        )


def _planted_address(allocation_id: str) -> domain.Finding:
    return domain.Finding(
        resource_type="elastic-ip",
        resource_id=allocation_id,
        region=helpers.REGION,
        monthly_cost=Decimal("3.65"),
        confidence=90,
        risk=domain.RiskLevel.LOW,
    )


def test_no_cleanup_runs_in_an_account_whose_role_ignores_the_external_id(
    sts: StsGate, moto_endpoint: str, store: Store, settings: Settings, database_url: str
) -> None:
    """The holder's role stops enforcing the ExternalId after a scan (a trust policy edited):
    the next cleanup, real or dry, is refused at STS, before any call into the account."""
    sts.pinned[helpers.role_arn(A)] = EXTERNAL[A]
    world = helpers.seed_small_world(moto_endpoint, A, external_id=EXTERNAL[A])
    helpers.scan_world(store, "tenant-a", world, settings)
    addresses = helpers.live_addresses(world)
    sts.pinned.clear()
    sts.lax_roles.add(helpers.role_arn(A))
    started = time.time()

    for dry_run in (True, False):
        report = helpers.run_cleanup(
            store,
            "tenant-a",
            [helpers.address_policy()],
            settings,
            aws.CallRecorder(),
            dry_run=dry_run,
        )
        assert report.results and all(
            r.outcome in ("refused", "dry-run-fail") for r in report.results
        ), report.results
        assert all("without the ExternalId" in r.message for r in report.results)
    assert sts.calls(since=started) == []
    assert helpers.live_addresses(world) == addresses
    rows = helpers.real_rows(database_url, "tenant-a")
    assert rows and {r["status"] for r in rows} == {"refused"}
    # each row says why, and what kind of error refused it; the run's report names the rows
    assert all(
        r["error_message"].startswith("refused: ")
        and "without the ExternalId" in r["error_message"]
        for r in rows
    ), rows
    assert all(
        r["aws_response"] == {"error_kind": "access-denied", "code": "ExternalIdNotEnforced"}
        for r in rows
    ), rows
    assert {r.action_id for r in report.results} == {r["id"] for r in rows}
    # The refusal holds nothing: each item waits, and is acted on once the role enforces the
    # ExternalId again (a refused attempt that left its item claimed would strand it).
    assert {r["cleanup_status"] for r in rows} == {"pending"}, rows
    sts.lax_roles.clear()
    sts.pinned[helpers.role_arn(A)] = EXTERNAL[A]
    fixed = helpers.run_cleanup(
        store, "tenant-a", [helpers.address_policy()], settings, aws.CallRecorder(), dry_run=False
    )
    released = {r.resource_id for r in fixed.results}
    assert released == {r["resource_id"] for r in rows}
    assert {r.outcome for r in fixed.results} == {"succeeded"}, fixed.results
    assert helpers.live_addresses(world) == addresses - released


def test_with_shared_accounts_allowed_b_still_needs_its_own_external_id(
    sts: StsGate, moto_endpoint: str, store: Store, database_url: str
) -> None:
    """A single-team install (CLOUDSWEEP_ALLOW_SHARED_ACCOUNTS) lets two organizations register
    one account; B's own ExternalId is then what keeps B out of A's role."""
    settings = helpers.settings_for(moto_endpoint).model_copy(
        update={"allow_shared_accounts": True}
    )
    sts.pinned.update({helpers.role_arn(a): e for a, e in EXTERNAL.items()})
    world_a = helpers.seed_small_world(moto_endpoint, A, external_id=EXTERNAL[A])
    volumes, addresses = helpers.live_volumes(world_a), helpers.live_addresses(world_a)
    org_b = store.ensure_organization("tenant-b")
    hostile = store.register_account(
        org_b.id,
        account_id=A,
        role_arn=helpers.role_arn(A),
        external_id=EXTERNAL[B],
        regions=[helpers.REGION],
        allow_shared=True,
    )
    outcome = scan(store, hostile, settings)
    assert outcome.scan.status == "failed" and "AccessDenied" in (outcome.error or "")
    assert sts.calls(account=A) == []
    assert stored(store, "tenant-b") == set()
    assert helpers.live_volumes(world_a) == volumes
    assert helpers.live_addresses(world_a) == addresses
