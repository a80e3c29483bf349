"""SAFETY-TESTS "hostile tenants and the approval chain", at the engine and the ledger: an
approval with a far-future expiry is capped, a rejection stands against an older approval
applied again (a CleanupPolicy re-applied by GitOps, a restart, the approval object seen again),
an approval replayed after the policy or the resource changed is not honoured, and a withdrawn
approval is gone. AWS (moto) is the oracle: what was released.

``decided_at`` is when the person decided (a CleanupApproval's admission time); the handlers
apply the same approval on every tick with that same time (``handlers/cleanupapprovals.py``).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from cloudsweep import aws, domain, policies
from cloudsweep.settings import Settings
from cloudsweep.store import FindingFilter, Store

from . import helpers

ORG = "approvals-org"
ACCOUNT = "123456789012"
APPROVER = "maria@example.com"


@pytest.fixture
def world(moto_endpoint: str, store: Store, settings: Settings) -> helpers.SmallWorld:
    world = helpers.seed_small_world(moto_endpoint, ACCOUNT, volumes=0)
    helpers.scan_world(store, ORG, world, settings)
    return world


@pytest.fixture
def t0(world: helpers.SmallWorld) -> Any:
    """A moment after the scan: findings are not younger than it (minAgeDays 0 holds)."""
    return domain.utcnow() + timedelta(seconds=1)


def strict(**overrides: Any) -> dict[str, Any]:
    """Only a recorded approval lets a run act (everything costs more than 0.00)."""
    return helpers.address_policy(requireApprovalAbove="0.00", **overrides)


def item(store: Store, resource_id: str) -> Any:
    [found] = [f for f in store.findings(FindingFilter(ORG)) if f.resource_id == resource_id]
    return found


def decide(store: Store, resource_id: str, **kwargs: Any) -> list[Any]:
    org = store.organization(ORG)
    assert org is not None
    kwargs.setdefault("approve", True)
    kwargs.setdefault("approver_email", APPROVER)
    kwargs.setdefault("now", kwargs.get("decided_at"))
    return store.decide_items(org.id, [item(store, resource_id).id], **kwargs)


def run(store: Store, settings: Settings, document: dict[str, Any], when: Any) -> aws.CallRecorder:
    recorder = aws.CallRecorder()
    # No actor: the operator's own, automated run, which acts only on approved items.
    helpers.run_cleanup(
        store,
        ORG,
        [document],
        settings,
        recorder,
        now=lambda: when,
        actor_email=None,
        method=domain.ExecutionMethod.AUTOMATED,
    )
    return recorder


def approval_of(store: Store, resource_id: str) -> Any:
    return store.candidate(item(store, resource_id).id).approval


def test_a_far_future_expiry_is_capped_by_the_policys_ttl_and_90_days(
    world: helpers.SmallWorld, store: Store, settings: Settings, t0: Any
) -> None:
    target, other = world.addresses
    far = t0 + timedelta(days=3650)
    decide(store, target, decided_at=t0, ttl=timedelta(days=7), expires_at=far)
    assert approval_of(store, target).expires_at == t0 + timedelta(days=7)
    decide(store, other, decided_at=t0, ttl=timedelta(days=365), expires_at=far)
    assert approval_of(store, other).expires_at == t0 + timedelta(days=domain.MAX_APPROVAL_DAYS)

    recorder = run(store, settings, strict(approvalTtlDays=7), when=t0 + timedelta(days=8))
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == [other]  # 90 days hold
    assert target in helpers.live_addresses(world)  # its 7 days are over


def test_a_rejection_stands_until_a_newer_approval(
    world: helpers.SmallWorld, store: Store, settings: Settings, t0: Any
) -> None:
    target = world.addresses[0]
    assert decide(store, target, decided_at=t0)
    assert decide(store, target, approve=False, decided_at=t0 + timedelta(hours=1))
    # The same approval applied again (the policy edited, the operator restarted): nothing.
    assert decide(store, target, decided_at=t0, now=t0 + timedelta(hours=2)) == []
    assert item(store, target).cleanup_status == "rejected"
    recorder = run(store, settings, strict(), when=t0 + timedelta(hours=2))
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == []
    assert target in helpers.live_addresses(world)

    # A new decision, made after the rejection, re-opens it.
    assert decide(store, target, decided_at=t0 + timedelta(hours=3))
    recorder = run(store, settings, strict(), when=t0 + timedelta(hours=4))
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == [target]
    assert target not in helpers.live_addresses(world)


def test_an_approval_replayed_after_the_policy_changed_is_not_honoured(
    world: helpers.SmallWorld, store: Store, settings: Settings, t0: Any
) -> None:
    target = world.addresses[0]
    approved_under = policies.parse_policy(strict())
    decide(
        store,
        target,
        decided_at=t0,
        policy_name=approved_under.name,
        policy_hash=policies.spec_hash(approved_under),
    )
    # The policy's spec changed (a wider rule) since the person approved under it.
    changed = strict(rules={"minAgeDays": 0, "minConfidence": 10})
    recorder = run(store, settings, changed, when=t0 + timedelta(minutes=5))
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == []
    assert item(store, target).cleanup_status == "pending"  # lapsed by the real run
    # Replaying the old approval, even under the old spec again, does not bring it back.
    assert decide(store, target, decided_at=t0, now=t0 + timedelta(minutes=6)) == []
    recorder = run(store, settings, strict(), when=t0 + timedelta(minutes=7))
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == []
    assert target in helpers.live_addresses(world)


def test_an_approval_under_another_policy_does_not_count_here(
    world: helpers.SmallWorld, store: Store, settings: Settings, t0: Any
) -> None:
    target = world.addresses[0]
    other = policies.parse_policy(strict(name="other-policy"))
    decide(
        store,
        target,
        decided_at=t0,
        policy_name=other.name,
        policy_hash=policies.spec_hash(other),
    )
    recorder = run(store, settings, strict(), when=t0)
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == []
    assert item(store, target).cleanup_status == "approved"  # still good where it was given
    recorder = run(store, settings, strict(name="other-policy"), when=t0)
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == [target]


def test_an_approval_replayed_after_the_resource_changed_is_not_honoured(
    world: helpers.SmallWorld, store: Store, settings: Settings, t0: Any
) -> None:
    target = world.addresses[0]
    decide(store, target, decided_at=t0)
    ec2 = helpers.account_client(world.endpoint, world.account_id, "ec2")
    ec2.create_tags(Resources=[target], Tags=[{"Key": "owner", "Value": "someone-new"}])
    helpers.scan_world(store, ORG, world, settings)
    recorder = run(store, settings, strict(), when=t0 + timedelta(minutes=5))
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == []
    assert decide(store, target, decided_at=t0, now=t0 + timedelta(minutes=6)) == []
    recorder = run(store, settings, strict(), when=t0 + timedelta(minutes=7))
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == []
    assert target in helpers.live_addresses(world)


def test_a_withdrawn_approval_is_gone_and_another_persons_stays(
    world: helpers.SmallWorld, store: Store, settings: Settings, t0: Any
) -> None:
    target, other = world.addresses
    org = store.organization(ORG)
    assert org is not None
    decide(store, target, decided_at=t0)
    decide(store, other, decided_at=t0, approver_email="ada@example.com")
    ids = [item(store, target).id, item(store, other).id]
    withdrawn = store.withdraw_approval(
        org.id, ids, approved_at=t0, approver=APPROVER, now=t0 + timedelta(minutes=1)
    )
    assert withdrawn == [ids[0]]
    recorder = run(store, settings, strict(), when=t0 + timedelta(minutes=2))
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == [other]
    assert approval_of(store, target) is None
    assert Decimal(item(store, target).monthly_cost) > 0


def test_an_expiry_before_the_ttl_deadline_is_kept(
    world: helpers.SmallWorld, store: Store, settings: Settings, t0: Any
) -> None:
    """The person asked for two days: the approval ends then, not at the policy's 14-day TTL."""
    target, other = world.addresses
    decide(store, target, decided_at=t0, ttl=timedelta(days=14), expires_at=t0 + timedelta(days=2))
    decide(store, other, decided_at=t0, ttl=timedelta(days=14))
    assert approval_of(store, target).expires_at == t0 + timedelta(days=2)

    recorder = run(store, settings, strict(approvalTtlDays=14), when=t0 + timedelta(days=3))
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == [other]
    assert target in helpers.live_addresses(world)  # its two days are over


def test_an_approval_at_the_instant_of_the_rejection_does_not_reopen_it(
    world: helpers.SmallWorld, store: Store, settings: Settings, t0: Any
) -> None:
    """Only a decision after the rejection re-opens an item; one at the same instant (a replayed
    approval stamped with the rejection's time) is not newer, so the rejection stands."""
    target = world.addresses[0]
    rejected_at = t0 + timedelta(hours=1)
    assert decide(store, target, approve=False, decided_at=rejected_at)
    assert decide(store, target, decided_at=rejected_at, now=t0 + timedelta(hours=2)) == []
    assert item(store, target).cleanup_status == "rejected"
    recorder = run(store, settings, strict(), when=t0 + timedelta(hours=2))
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == []
    assert target in helpers.live_addresses(world)


def test_an_approval_that_lapses_between_the_decision_and_the_claim_is_not_acted_on(
    world: helpers.SmallWorld,
    store: Store,
    settings: Settings,
    t0: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run decided on the approved item; before it claims the item, the approval lapses
    (another worker saw the resource change). The claim admits only an approved item: the run
    skips it and AWS is not touched."""
    target = world.addresses[0]
    decide(store, target, decided_at=t0)
    target_id = item(store, target).id
    claim = store.claim

    def claim_after_a_lapse(*args: Any, **kwargs: Any) -> Any:
        store.lapse_approval(target_id, "the resource changed", t0)
        return claim(*args, **kwargs)

    monkeypatch.setattr(store, "claim", claim_after_a_lapse)
    recorder = aws.CallRecorder()
    report = helpers.run_cleanup(
        store,
        ORG,
        [strict()],
        settings,
        recorder,
        now=lambda: t0 + timedelta(minutes=1),
        actor_email=None,
        method=domain.ExecutionMethod.AUTOMATED,
    )

    [result] = [r for r in report.results if r.resource_id == target]
    assert (result.outcome, result.message, result.action_id) == (
        "skipped",
        "the item changed state or was taken by another run",
        None,
    )
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == []
    assert target in helpers.live_addresses(world)
    assert item(store, target).cleanup_status == "pending"
