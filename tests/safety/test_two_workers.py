"""SAFETY-TESTS "two workers or two operator replicas at once": at most one destructive call per
item, one succeeded row per item.

Two child processes (not threads) run the same policies on the same items; both wait for a start
file so they begin together, and each pauses 0.3 s at every item's re-check (a ``before-call``
handler) so their work overlaps. Each journals its AWS sends to a file.
"""

from __future__ import annotations

import json
from collections import Counter

from cloudsweep import aws
from cloudsweep.settings import Settings
from cloudsweep.store import Store

from . import helpers

ORG = "race-org"
ACCOUNT = "123456789012"


def test_two_processes_act_once_per_item(
    moto_endpoint: str, database_url: str, store: Store, settings: Settings, tmp_path
) -> None:
    world = helpers.seed_small_world(moto_endpoint, ACCOUNT, volumes=3, addresses=3)
    helpers.scan_world(store, ORG, world, settings)
    documents = [helpers.volume_policy(), helpers.address_policy()]
    start = tmp_path / "start"
    workers = []
    for name in ("one", "two"):
        for resource_type in ("ebs-volume",):
            workers.append(
                helpers.spawn_worker(
                    {
                        "database_url": database_url,
                        "endpoint": moto_endpoint,
                        "org": ORG,
                        "policies": documents,
                        "resource_type": resource_type,
                        "step": "after-intent",
                        "fault": "sleep",
                        "delay": 0.3,
                        "start_file": str(start),
                        "journal": str(tmp_path / f"{name}.jsonl"),
                    },
                    tmp_path,
                    name,
                )
            )
    start.touch()
    for worker in workers:
        code, output = helpers.finish_worker(worker)
        assert code == 0, output
    entries = helpers.Journal.read(tmp_path / "one.jsonl") + helpers.Journal.read(
        tmp_path / "two.jsonl"
    )
    deletes = Counter(helpers.sends(entries, "DeleteVolume"))
    releases = Counter(helpers.sends(entries, "ReleaseAddress"))
    assert deletes == Counter(dict.fromkeys(world.volumes, 1))
    assert releases == Counter(dict.fromkeys(world.addresses, 1))
    assert helpers.live_volumes(world) == set(world.protected_volumes)
    assert helpers.live_addresses(world) == set(world.protected_addresses)
    helpers.assert_no_mutation_without_intent(entries)
    rows = helpers.assert_ledger_complete(
        database_url, {*world.volumes, *world.addresses}, org_slug=ORG
    )
    for volume_id in world.volumes:
        assert len(helpers.cleanup_snapshots(world, volume_id)) == 1
    assert len(rows) == 6


def test_a_live_workers_item_lock_stops_a_takeover_after_the_grace_period(
    moto_endpoint: str, database_url: str, store: Store, settings: Settings, tmp_path
) -> None:
    """Guard: ``Store.item_lock`` yields None while another worker holds the item's lock.

    Worker A is about to send DeleteVolume (its intent recorded, its lock held) when worker B, a
    process whose grace period is over (``takeover_seconds`` 0: A's call has hung that long),
    finds A's ``started`` attempt. A is alive, so its lock must keep B from reconciling the item
    (B would re-check, find the volume still there and delete it too; today ``lock.alive()``
    stops such a takeover a step later). Then A's call leaves: one DeleteVolume in all, and one
    intent and one outcome.
    """
    world = helpers.seed_small_world(moto_endpoint, ACCOUNT, volumes=1, addresses=0)
    helpers.scan_world(store, ORG, world, settings)
    document = helpers.volume_policy()
    journal_b = tmp_path / "b.jsonl"
    outputs: list[tuple[int, str]] = []

    def let_b_run() -> None:
        worker_b = helpers.spawn_worker(
            {
                "database_url": database_url,
                "endpoint": moto_endpoint,
                "org": ORG,
                "policies": [document],
                "resource_type": "ebs-volume",
                "journal": str(journal_b),
                "takeover_seconds": 0,
            },
            tmp_path,
            "b",
        )
        outputs.append(helpers.finish_worker(worker_b))

    hooks = helpers.StepHooks("before-delete", "ebs-volume", let_b_run)
    recorder = aws.CallRecorder()
    helpers.run_cleanup(
        store, ORG, [document], settings, recorder, session_factory=hooks.session_factory()
    )
    assert hooks.fired and outputs and outputs[0][0] == 0, outputs
    [volume_id] = world.volumes
    sent = Counter(
        helpers.recorded_mutations(recorder, "DeleteVolume")
        + helpers.sends(helpers.Journal.read(journal_b), "DeleteVolume")
    )
    assert sent == Counter({volume_id: 1}), "worker B took over an item whose worker was alive"
    # B left the item to its live worker: no outcome of its own for it (not even a takeover
    # that ``lock.alive()`` stopped later, before the re-check).
    [result_line] = [line for line in outputs[0][1].splitlines() if line.startswith("RESULT ")]
    assert json.loads(result_line.removeprefix("RESULT "))["outcomes"] == []
    assert volume_id not in helpers.live_volumes(world)
    assert len(helpers.cleanup_snapshots(world, volume_id)) == 1
    helpers.assert_ledger_complete(database_url, {volume_id}, org_slug=ORG)
