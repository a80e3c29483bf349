"""SAFETY-TESTS "SIGKILL at any step", "PostgreSQL restart" and "two workers at once", for EVERY
registered cleanup action through the executor (``run_cleanup``), not only ebs-volume and
elastic-ip: the scenarios walk ``worlds.registered()``, so an action registered later is covered
once its world exists (``test_registry_walk`` insists on one).

Each world holds two eligible resources of the action's type, scanned by the real detector. The
fault hits the first item at a step every action has (``worlds.GENERIC_STEPS``); then a normal
run recovers. What must hold, with moto and the wire-level journal as the oracle:

- the destructive operation was sent exactly once per eligible resource, across both runs;
- every eligible resource has the effect in moto (deleted, released, stopped, archived) and
  nothing else was touched;
- where the action keeps an undo copy in AWS (an AMI, a snapshot), exactly one per resource;
- no destructive send left without a committed ``started`` intent for its target;
- the ledger has exactly one real row per resource, ``succeeded`` (one intent, one outcome).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cloudsweep import aws
from cloudsweep.settings import Settings
from cloudsweep.store import Store

from . import helpers, worlds

ORG = "every-org"
ACCOUNT = "123456789012"
SCENARIOS = [
    pytest.param(world, step, id=f"{world.id}-{step}")
    for world in worlds.registered()
    for step in worlds.GENERIC_STEPS
]


def _seeded(
    world: worlds.ActionWorld, endpoint: str, store: Store, settings: Settings
) -> tuple[set[str], set[str]]:
    eligible = set(world.seed(endpoint, ACCOUNT))
    worlds.scan(store, ORG, world, endpoint, ACCOUNT, settings)
    before = world.awaiting(endpoint, ACCOUNT)
    assert eligible <= before
    return eligible, before


def _check_after_fault(world: worlds.ActionWorld, step: str, endpoint: str, url: str) -> str:
    """The fault left exactly one intent open, at the step it claims."""
    [intent] = helpers.real_rows(url, ORG)
    assert intent["status"] == "started", intent
    target = intent["resource_id"]
    effect_done = target not in world.awaiting(endpoint, ACCOUNT)
    assert effect_done is (step in ("after-delete", "before-outcome")), (step, target)
    return str(target)


def _recover(
    world: worlds.ActionWorld, store: Store, settings: Settings, url: str
) -> tuple[Any, helpers.Journal]:
    journal = helpers.Journal(database_url=url)
    hooks = worlds.ActionHooks(world, "none", lambda: None)
    report = helpers.run_cleanup(
        store,
        ORG,
        [world.document()],
        settings,
        aws.CallRecorder(),
        session_factory=hooks.session_factory(journal),
    )
    return report, journal


def _assert_done_once(
    world: worlds.ActionWorld,
    endpoint: str,
    url: str,
    eligible: set[str],
    before: set[str],
    entries: list[dict[str, Any]],
) -> None:
    after = world.awaiting(endpoint, ACCOUNT)
    assert before - after == eligible, "done must equal approved-and-still-eligible"
    sent = Counter(worlds.effects(world, entries))
    assert sent == Counter(dict.fromkeys(eligible, 1)), f"{world.operation} sent {sent}"
    if world.copies is not None:
        made = Counter(world.copies(endpoint, ACCOUNT))
        assert made == Counter(dict.fromkeys(eligible, 1)), f"undo copies made: {made}"
    helpers.assert_no_mutation_without_intent(entries)
    rows = helpers.assert_ledger_complete(url, eligible, org_slug=ORG)
    assert {r["action"] for r in rows.values()} == {world.action}


@pytest.mark.parametrize(("world", "step"), SCENARIOS)
def test_sigkill_at_a_step_then_restart(
    world: worlds.ActionWorld,
    step: str,
    moto_endpoint: str,
    database_url: str,
    store: Store,
    settings: Settings,
    tmp_path: Path,
) -> None:
    eligible, before = _seeded(world, moto_endpoint, store, settings)
    journal_path = tmp_path / "child.jsonl"
    child = helpers.spawn_worker(
        {
            "database_url": database_url,
            "endpoint": moto_endpoint,
            "org": ORG,
            "policies": [world.document()],
            "resource_type": world.resource_type,
            "action": world.action,
            "step": step,
            "fault": "kill",
            "journal": str(journal_path),
        },
        tmp_path,
        "child",
    )
    code, output = helpers.finish_worker(child)
    child_entries = helpers.Journal.read(journal_path)
    assert code == -9, f"the child was not killed at {step}:\n{output}"
    _check_after_fault(world, step, moto_endpoint, database_url)

    report, journal = _recover(world, store, settings, database_url)
    assert report.interrupted_found == 1
    _assert_done_once(
        world, moto_endpoint, database_url, eligible, before, child_entries + journal.entries
    )


@pytest.mark.parametrize(("world", "step"), SCENARIOS)
def test_database_restart_at_a_step_then_rerun(
    world: worlds.ActionWorld,
    step: str,
    moto_endpoint: str,
    database_url: str,
    store: Store,
    settings: Settings,
) -> None:
    eligible, before = _seeded(world, moto_endpoint, store, settings)
    broken: list[int] = []
    hooks = worlds.ActionHooks(
        world, step, lambda: broken.append(helpers.terminate_other_backends(database_url))
    )
    first = helpers.Journal(database_url=database_url)
    hooks.install_database()
    try:
        helpers.run_cleanup(
            store,
            ORG,
            [world.document()],
            settings,
            aws.CallRecorder(),
            session_factory=hooks.session_factory(first),
        )
    except Exception as error:  # the run may fail on the broken connection; it must not act
        failed: Exception | None = error
    else:
        failed = None
    finally:
        hooks.uninstall_database()
    assert hooks.fired and broken and broken[0] > 0, "the database was not broken at the step"
    helpers.assert_no_mutation_without_intent(first.entries)
    if step == "before-outcome":
        # The outcome's commit broke: the run cannot have recorded it, and says so.
        assert failed is not None or "started" in {
            r["status"] for r in helpers.real_rows(database_url, ORG)
        }

    _report, journal = _recover(world, store, settings, database_url)
    _assert_done_once(
        world, moto_endpoint, database_url, eligible, before, first.entries + journal.entries
    )


@pytest.mark.parametrize("world", worlds.registered(), ids=worlds.world_ids())
def test_two_workers_act_once_per_item(
    world: worlds.ActionWorld,
    moto_endpoint: str,
    database_url: str,
    store: Store,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """Two processes start together on the same items; each pauses 0.3 s at its first item's
    re-check so their work overlaps."""
    eligible, before = _seeded(world, moto_endpoint, store, settings)
    start = tmp_path / "start"
    workers = [
        helpers.spawn_worker(
            {
                "database_url": database_url,
                "endpoint": moto_endpoint,
                "org": ORG,
                "policies": [world.document()],
                "resource_type": world.resource_type,
                "action": world.action,
                "step": "after-intent",
                "fault": "sleep",
                "delay": 0.3,
                "start_file": str(start),
                "journal": str(tmp_path / f"{name}.jsonl"),
            },
            tmp_path,
            name,
        )
        for name in ("one", "two")
    ]
    start.touch()
    for worker in workers:
        code, output = helpers.finish_worker(worker)
        assert code == 0, output
    entries = helpers.Journal.read(tmp_path / "one.jsonl") + helpers.Journal.read(
        tmp_path / "two.jsonl"
    )
    _assert_done_once(world, moto_endpoint, database_url, eligible, before, entries)
