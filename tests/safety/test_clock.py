"""SAFETY-TESTS "clock jumps across an approval window": expired approvals unused, nothing acted
on early. The clock is injected with ``CleanupOptions(now=...)`` and the approval's time with
``Store.decide_items(now=...)``; addresses cost more than ``requireApprovalAbove`` so only a
recorded approval lets a run act.

What holds (documented by these tests): an approval's expiry is an absolute timestamp recorded
with it (approved_at + 14 days); a run whose clock is at or past it does not use it, and a real
run lapses it in the database, after which no clock jump backwards revives it. A dry run does not
lapse it, so a later run whose clock went back before the recorded expiry still honours it: that
is within the recorded window, never beyond it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cloudsweep import aws, domain
from cloudsweep.settings import Settings
from cloudsweep.store import FindingFilter, Store

from . import helpers

ORG = "clock-org"
ACCOUNT = "123456789012"
T0 = domain.utcnow()


@pytest.fixture
def approved(
    moto_endpoint: str, store: Store, settings: Settings
) -> tuple[helpers.SmallWorld, str]:
    world = helpers.seed_small_world(moto_endpoint, ACCOUNT, volumes=0)
    helpers.scan_world(store, ORG, world, settings)
    org = store.organization(ORG)
    assert org is not None
    item = next(
        f for f in store.findings(FindingFilter(ORG)) if f.resource_id == world.addresses[0]
    )
    assert store.decide_items(org.id, [item.id], approve=True, approver_email=helpers.ACTOR, now=T0)
    return world, item.resource_id


def strict() -> dict[str, object]:
    return helpers.address_policy(requireApprovalAbove="0.00")


def run_at(store: Store, settings: Settings, when, *, dry_run: bool = False) -> aws.CallRecorder:
    recorder = aws.CallRecorder()
    helpers.run_cleanup(
        store, ORG, [strict()], settings, recorder, now=lambda: when, dry_run=dry_run
    )
    return recorder


@pytest.mark.parametrize(
    "offset", [timedelta(days=14), timedelta(days=15)], ids=["at-expiry", "after"]
)
def test_an_expired_approval_is_not_used(
    approved, store: Store, settings: Settings, offset
) -> None:
    world, target = approved
    recorder = run_at(store, settings, T0 + offset)
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == []
    assert target in helpers.live_addresses(world)
    [item] = [f for f in store.findings(FindingFilter(ORG)) if f.resource_id == target]
    assert item.cleanup_status == "pending"  # lapsed by the real run


def test_a_clock_jump_back_does_not_revive_a_lapsed_approval(
    approved, store: Store, settings: Settings
) -> None:
    world, target = approved
    run_at(store, settings, T0 + timedelta(days=30))
    recorder = run_at(store, settings, T0 + timedelta(days=1))  # the clock went back
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == []
    assert target in helpers.live_addresses(world)


def test_a_dry_run_past_expiry_then_a_jump_back_stays_within_the_recorded_expiry(
    approved, store: Store, settings: Settings, database_url: str
) -> None:
    world, target = approved
    dry = run_at(store, settings, T0 + timedelta(days=30), dry_run=True)
    assert all(c.params.get("DryRun") for c in dry.mutating())
    # Back before the recorded expiry: the approval is honoured, exactly once.
    recorder = run_at(store, settings, T0 + timedelta(days=13))
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == [target]
    helpers.assert_ledger_complete(database_url, {target}, org_slug=ORG)
    # Never beyond it: the other (unapproved) address was not touched by any run.
    assert set(world.addresses[1:]) <= helpers.live_addresses(world)


def test_nothing_is_acted_on_before_its_approval(
    approved, store: Store, settings: Settings
) -> None:
    """An item with no approval, at any clock, waits for one (nothing acted on early)."""
    _world, target = approved
    for when in (T0 - timedelta(days=400), T0 + timedelta(days=400)):
        recorder = run_at(store, settings, when)
        released = helpers.recorded_mutations(recorder, "ReleaseAddress")
        assert not set(released) - {target}
