"""The registry walk of the safety suite: every registered cleanup action has a world
(``worlds.WORLDS``), and that world really yields actionable waste, so the scenarios that
parametrize over ``worlds.registered()`` (SIGKILL, database restart, two workers, dry run) cannot
pass vacuously for any action."""

from __future__ import annotations

import pytest

from cloudsweep import cleaning, cleanup, domain, policies
from cloudsweep.settings import Settings
from cloudsweep.store import Store

from . import worlds

ACCOUNT = "123456789012"


def test_every_registered_action_has_a_world() -> None:
    """No exemption list: an action registered without a world fails here, by name."""
    missing = [
        f"{cls.resource_type}/{cls.action}"
        for cls in cleanup.all_actions()
        if cls.key() not in worlds.WORLDS
    ]
    assert not missing, (
        f"cleanup actions without a safety world: {missing}; add one to tests/safety/worlds.py "
        "so the crash, database-restart, two-worker and dry-run scenarios cover them"
    )


def test_every_world_names_a_registered_action() -> None:
    registered = {cls.key() for cls in cleanup.all_actions()}
    stale = sorted(set(worlds.WORLDS) - registered)
    assert not stale, f"worlds of actions no longer registered: {stale}"


@pytest.mark.parametrize("world", worlds.registered(), ids=worlds.world_ids())
def test_each_world_is_scanned_into_actionable_decisions(
    world: worlds.ActionWorld, moto_endpoint: str, store: Store, settings: Settings
) -> None:
    seeded = world.seed(moto_endpoint, ACCOUNT)
    assert len(seeded) == 2
    assert set(seeded) <= world.awaiting(moto_endpoint, ACCOUNT)
    worlds.scan(store, "walk-org", world, moto_endpoint, ACCOUNT, settings)
    org = store.organization("walk-org")
    assert org is not None
    plan = cleaning.plan_cleanup(
        store,
        org.id,
        [policies.parse_policy(world.document())],
        mode=policies.RunMode.MANUAL,
        now=domain.utcnow(),
    )
    reasons = {d.candidate.resource_id: d.reason for d in plan.decisions}
    assert {d.candidate.resource_id for d in plan.actionable} == set(seeded), reasons
