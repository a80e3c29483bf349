"""SAFETY-TESTS "the process killed (SIGKILL) at any step of a cleanup, then restarted".

A cleanup runs in a child process (``crash_worker``) against the same moto server and database
and SIGKILLs itself from a botocore event handler (or a SQLAlchemy event, for the outcome's
commit) at one step of the first item; then a normal run in this process recovers. The child's
AWS sends are journalled to a file as they happen (its ``CallRecorder`` dies with it); this
process records its own with ``aws.CallRecorder``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cloudsweep import aws
from cloudsweep.settings import Settings
from cloudsweep.store import Store

from . import helpers

ORG = "crash-org"
ACCOUNT = "123456789012"


def crash_then_recover(
    *,
    resource_type: str,
    step: str,
    endpoint: str,
    database_url: str,
    store: Store,
    settings: Settings,
    tmp: Path,
    account_id: str = ACCOUNT,
    org: str = ORG,
) -> dict[str, Any]:
    """Seed, scan, crash a child at ``step``, recover in-process; check every invariant."""
    target = helpers.scanned_target(resource_type, endpoint, account_id, store, org, settings)
    world, volumes = target.world, target.volumes
    document, operation, eligible = target.document, target.operation, target.eligible
    before = target.live()

    journal_path = tmp / f"journal-{account_id}.jsonl"
    child = helpers.spawn_worker(
        {
            "database_url": database_url,
            "endpoint": endpoint,
            "org": org,
            "policies": [document],
            "resource_type": resource_type,
            "step": step,
            "fault": "kill",
            "journal": str(journal_path),
        },
        tmp,
        f"crash-{account_id}",
    )
    code, output = helpers.finish_worker(child)
    child_entries = helpers.Journal.read(journal_path)
    assert code == -9, f"the child was not killed at {step}:\n{output}"
    assert any(e["event"] == "killed" for e in child_entries)
    [intent] = helpers.real_rows(database_url, org)
    assert intent["status"] == "started", "the killed attempt must have left exactly its intent"
    check_crash_point(step, intent, world, volumes)

    recorder = aws.CallRecorder()
    journal = helpers.Journal(database_url=database_url)
    hooks = helpers.StepHooks("none", resource_type, lambda: None)
    report = helpers.run_cleanup(
        store, org, [document], settings, recorder, session_factory=hooks.session_factory(journal)
    )
    assert report.interrupted_found == 1

    after = target.live()
    deleted = before - after
    assert deleted == eligible, "deleted must equal approved-and-still-eligible"
    effects = Counter(
        helpers.sends(child_entries, operation) + helpers.recorded_mutations(recorder, operation)
    )
    assert effects == Counter(dict.fromkeys(eligible, 1)), f"{operation} sent {effects}"
    assert helpers.sends(journal.entries, operation) == helpers.recorded_mutations(
        recorder, operation
    )
    helpers.assert_no_mutation_without_intent(child_entries + journal.entries)
    rows = helpers.assert_ledger_complete(database_url, deleted, org_slug=org)
    if volumes:
        for volume_id, row in rows.items():
            snapshots = helpers.cleanup_snapshots(world, volume_id)
            assert len(snapshots) == 1, f"{volume_id} has {len(snapshots)} snapshots"
            tags = {t["Key"]: t["Value"] for t in snapshots[0].get("Tags", [])}
            assert tags[helpers.ACTION_TAG] == str(row["id"])
            assert row["rollback_data"]["snapshot_id"] == snapshots[0]["SnapshotId"]
    return {"world": world, "report": report, "child": child_entries}


def check_crash_point(step: str, intent: dict[str, Any], world: Any, volumes: bool) -> None:
    """The kill happened where the step says (so the scenario tests what it claims to)."""
    target = intent["resource_id"]
    checkpointed = (intent["rollback_data"] or {}).get("snapshot_id")
    live = helpers.live_volumes(world) if volumes else helpers.live_addresses(world)
    if volumes and step in ("before-assume-role", "after-intent"):
        assert not checkpointed and not helpers.cleanup_snapshots(world, target)
    if volumes and step == "after-create-snapshot":
        assert not checkpointed and len(helpers.cleanup_snapshots(world, target)) == 1
    if volumes and step in ("after-checkpoint", "before-delete", "after-delete", "before-outcome"):
        assert checkpointed
    if step in ("after-delete", "before-outcome"):
        assert target not in live
    else:
        assert target in live


@pytest.mark.parametrize("step", helpers.VOLUME_STEPS)
def test_sigkill_during_snapshot_and_delete(
    step: str, moto_endpoint: str, database_url: str, store: Store, settings: Settings, tmp_path
) -> None:
    """ebs-volume/snapshot-and-delete killed at ``step``: after recovery every eligible volume is
    deleted once, with one snapshot tagged with its one succeeded action."""
    crash_then_recover(
        resource_type="ebs-volume",
        step=step,
        endpoint=moto_endpoint,
        database_url=database_url,
        store=store,
        settings=settings,
        tmp=tmp_path,
    )


@pytest.mark.parametrize("step", helpers.ADDRESS_STEPS)
def test_sigkill_during_release(
    step: str, moto_endpoint: str, database_url: str, store: Store, settings: Settings, tmp_path
) -> None:
    """elastic-ip/release killed at ``step``: every eligible address released exactly once."""
    crash_then_recover(
        resource_type="elastic-ip",
        step=step,
        endpoint=moto_endpoint,
        database_url=database_url,
        store=store,
        settings=settings,
        tmp=tmp_path,
    )
