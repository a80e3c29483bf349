"""SAFETY-TESTS "two workers or two operator replicas at once": at most one destructive call per
item, one succeeded row per item.

Two child processes (not threads) run the same policies on the same items; both wait for a start
file so they begin together, and each pauses 0.3 s at every item's re-check (a ``before-call``
handler) so their work overlaps. Each journals its AWS sends to a file.
"""

from __future__ import annotations

from collections import Counter

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
