"""SAFETY-TESTS "tenant B names tenant A's role ARN": B's own ExternalId is used, AssumeRole is
denied, nothing of A is listed or touched; every recorded call's caller account is the one its
organization registered.

Whose credentials moto saw is asserted from moto's side (``helpers.CredentialOracle``: the access
key ID of every signed request, resolved by moto's own GetCallerIdentity), not only from the
account label CloudSweep's session carries.

moto does not check ExternalIds, so an enforcing STS check stands in front of it: a ``before-send``
handler on the BASE boto3 session (passed as ``base_session=`` through a ``session_factory``)
answers AssumeRole with AccessDenied unless the ExternalId is the one the role's trust policy
expects (``TRUST`` below: role ARN -> ExternalId). Resources are seeded per account through
assumed-role credentials, so moto keeps the accounts apart.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cloudsweep import aws, domain, scanning
from cloudsweep.settings import Settings
from cloudsweep.store import FindingFilter, Store

from . import helpers

A, B = "111111111111", "222222222222"
TRUST = {helpers.role_arn(A): "ext-tenant-a", helpers.role_arn(B): "ext-tenant-b"}


def enforced(*args: Any, **kwargs: Any) -> aws.AccountSession:
    return aws.AccountSession(*args, base_session=helpers.enforcing_sts(TRUST)(), **kwargs)


def test_tenant_b_naming_tenant_as_role_gets_nothing_of_a(
    moto_endpoint: str, store: Store, settings: Settings, database_url: str
) -> None:
    world_a = helpers.seed_small_world(moto_endpoint, A, external_id=TRUST[helpers.role_arn(A)])
    world_b = helpers.seed_small_world(moto_endpoint, B, external_id=TRUST[helpers.role_arn(B)])
    a_volumes, a_addresses = helpers.live_volumes(world_a), helpers.live_addresses(world_a)
    helpers.scan_world(store, "tenant-a", world_a, settings, session_factory=enforced)

    recorder = aws.CallRecorder()
    # Whose credentials moto saw: the oracle asks moto itself (GetCallerIdentity under each
    # access key that signed a request), not CloudSweep's label on its session.
    oracle = helpers.CredentialOracle(moto_endpoint)
    b_sessions = oracle.session_factory(helpers.enforcing_sts(TRUST))
    helpers.scan_world(
        store, "tenant-b", world_b, settings, session_factory=b_sessions, recorder=recorder
    )
    org_b = store.ensure_organization("tenant-b")
    hostile = store.register_account(
        org_b.id,
        account_id=A,
        role_arn=helpers.role_arn(A),
        external_id=TRUST[helpers.role_arn(B)],  # B's own ExternalId
        regions=[helpers.REGION],
    )
    outcome = scanning.run_scan(
        store,
        hostile,
        helpers.scan_options(),
        settings=settings,
        session_factory=b_sessions,
        recorder=recorder,
    )
    assert outcome.scan.status == "failed"
    assert helpers.role_arn(A) in (outcome.error or "") and "AccessDenied" in (outcome.error or "")

    # A finding under B's hostile account (as if B had got a listing somehow): cleanup must still
    # go through B's ExternalId and be refused, touching nothing of A.
    scan = store.open_scan(
        hostile.id,
        scan_type=domain.ScanType.MANUAL,
        regions=[helpers.REGION],
        started_at=domain.utcnow(),
    )
    store.upsert_findings(
        scan,
        [
            domain.Finding(
                resource_type="elastic-ip",
                resource_id=world_a.addresses[0],
                region=helpers.REGION,
                monthly_cost=Decimal("3.65"),
                confidence=90,
                risk=domain.RiskLevel.LOW,
            )
        ],
    )
    report = helpers.run_cleanup(
        store,
        "tenant-b",
        [helpers.address_policy(), helpers.volume_policy()],
        settings,
        recorder,
        session_factory=b_sessions,
    )
    [refused] = [r for r in report.results if r.account_id == A]
    assert refused.outcome == "failed" and helpers.role_arn(A) in refused.message

    non_sts = {c.caller_account for c in recorder.records if c.service != "sts"}
    assert non_sts == {B}
    seen_by_moto = oracle.accounts_seen()
    assert set(seen_by_moto) == {B} and seen_by_moto[B] > 0, seen_by_moto
    assert {oracle.account_of(key) for key in oracle.issued} == {B}
    assert all(
        c.params.get("ExternalId") == TRUST[helpers.role_arn(B)]
        for c in recorder.calls(operation="AssumeRole")
    )
    assert helpers.live_volumes(world_a) == a_volumes
    assert helpers.live_addresses(world_a) == a_addresses
    assert {f.account_id for f in store.findings(FindingFilter("tenant-b"))} <= {A, B}
    assert not [
        f
        for f in store.findings(FindingFilter("tenant-b"))
        if f.account_id == A and f.resource_id != world_a.addresses[0]
    ]
    assert not [r for r in helpers.real_rows(database_url, "tenant-a")]
    # B's own waste was cleaned, under B's credentials.
    assert helpers.live_addresses(world_b) == set(world_b.protected_addresses)
