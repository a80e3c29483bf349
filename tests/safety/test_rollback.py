"""Rollback is as crash-safe as cleanup (issue 12): intent before the AWS call, one outcome,
idempotent resume under the same attempt ID, and no effect on cleanup runs.

For every registered action that can be undone (``worlds.undoable()``): a real cleanup removes
the world's two resources; then ``cloudsweep rollback --execute``'s engine call
(``cleaning.rollback``) undoes the first one and is SIGKILLed (in a ``crash_worker`` child) or
loses its database (every connection terminated) at a step:

- ``after-intent``: the rollback's intent is committed, its first AWS call about to leave (for
  the database restart: ``after-claim``, right after the intent's INSERT, before the lock check);
- ``after-restore``: the undoing call (CreateVolume, RestoreDBInstanceFromDBSnapshot, ...) took
  effect in moto, its outcome not recorded;
- ``before-outcome``: the UPDATE that records ``succeeded`` (never committed).

Then a real cleanup run must complete (the interrupted rollback once made every later cleanup run
fail with ``UnknownAction: 'rollback-snapshot-and-delete'``), a rerun of the rollback resumes and
succeeds, and a later cleanup completes. The oracle: the wire-level journal (the undoing call
sent exactly once across both attempts), moto (exactly one more resource awaiting the effect
again), and the ledger (one rollback row, succeeded; the original marked rolled back).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cloudsweep import aws, cleaning, domain
from cloudsweep.settings import Settings
from cloudsweep.store import Store
from cloudsweep.store.engine import get_engine

from . import helpers, worlds

ORG = "undo-org"
ACCOUNT = "123456789012"
STEPS = ("after-intent", "after-restore", "before-outcome")
SCENARIOS = [
    pytest.param(world, step, id=f"{world.id}-{step}")
    for world in worlds.undoable()
    for step in STEPS
]


def cleaned(
    world: worlds.ActionWorld, endpoint: str, store: Store, settings: Settings, url: str
) -> tuple[str, int]:
    """Seed, scan and really clean the world; the first item's succeeded action ID, and how
    many resources await the effect afterwards."""
    eligible = set(world.seed(endpoint, ACCOUNT))
    worlds.scan(store, ORG, world, endpoint, ACCOUNT, settings)
    report = helpers.run_cleanup(store, ORG, [world.document()], settings, aws.CallRecorder())
    assert {r.resource_id for r in report.results if r.outcome == "succeeded"} == eligible
    first = sorted(
        (r for r in helpers.real_rows(url, ORG) if r["status"] == "succeeded"),
        key=lambda r: r["resource_id"],
    )[0]
    if world.before_rollback is not None:
        world.before_rollback(endpoint, ACCOUNT)
    return str(first["id"]), len(world.awaiting(endpoint, ACCOUNT))


def _rollback_of(url: str, row_id: Any) -> str | None:
    with get_engine(url).connect() as conn:
        value = conn.execute(
            sa.text("SELECT rollback_of FROM cleanup_actions WHERE id = :i"), {"i": row_id}
        ).scalar_one()
    return str(value) if value else None


def rolled_back(url: str, action_id: str) -> bool:
    with get_engine(url).connect() as conn:
        return bool(
            conn.execute(
                sa.text("SELECT rollback_executed FROM cleanup_actions WHERE id = :i"),
                {"i": action_id},
            ).scalar_one()
        )


def later_cleanup_completes(world: worlds.ActionWorld, store: Store, settings: Settings) -> None:
    """A real cleanup run after the interrupted rollback: it must run to its end (the defect
    made it raise UnknownAction), and leave the rollback's attempt to the rollback."""
    report = helpers.run_cleanup(store, ORG, [world.document()], settings, aws.CallRecorder())
    assert report.interrupted_found == 0, "a cleanup run took a rollback attempt for its own"


def rerun(
    world: worlds.ActionWorld, store: Store, settings: Settings, url: str, action_id: str
) -> tuple[cleaning.RollbackResult, helpers.Journal]:
    journal = helpers.Journal()
    hooks = worlds.ActionHooks(world, "none", lambda: None)
    result = cleaning.rollback(
        store,
        ORG,
        uuid.UUID(action_id),
        cleaning.CleanupOptions(
            dry_run=False,
            actor_email=helpers.ACTOR,
            settings=settings,
            session_factory=hooks.session_factory(journal),
            now=lambda: domain.utcnow() + world.rollback_later,
        ),
    )
    return result, journal


def assert_undone_once(
    world: worlds.ActionWorld,
    endpoint: str,
    url: str,
    action_id: str,
    awaiting_before: int,
    entries: list[dict[str, Any]],
) -> None:
    sent = worlds.restores(world, entries)
    assert sent == 1 or (world.restore_repeatable and sent >= 1), (
        f"{world.restore_operation} sent {sent} times"
    )
    assert len(world.awaiting(endpoint, ACCOUNT)) == awaiting_before + 1, "moto: one resource back"
    rows = [r for r in helpers.real_rows(url, ORG) if r["action_type"] == "rollback"]
    assert [r["status"] for r in rows] == ["succeeded"], rows
    assert _rollback_of(url, rows[0]["id"]) == action_id
    assert rolled_back(url, action_id)


@pytest.mark.parametrize(("world", "step"), SCENARIOS)
def test_rollback_killed_at_a_step_then_rerun(
    world: worlds.ActionWorld,
    step: str,
    moto_endpoint: str,
    database_url: str,
    store: Store,
    settings: Settings,
    tmp_path: Path,
) -> None:
    action_id, awaiting_before = cleaned(world, moto_endpoint, store, settings, database_url)
    journal_path = tmp_path / "child.jsonl"
    child = helpers.spawn_worker(
        {
            "database_url": database_url,
            "endpoint": moto_endpoint,
            "org": ORG,
            "policies": [],
            "resource_type": world.resource_type,
            "action": world.action,
            "rollback": action_id,
            "step": step,
            "fault": "kill",
            "journal": str(journal_path),
        },
        tmp_path,
        "child",
    )
    code, output = helpers.finish_worker(child)
    assert code == -9, f"the rollback was not killed at {step}:\n{output}"
    child_entries = helpers.Journal.read(journal_path)
    [started] = [r for r in helpers.real_rows(database_url, ORG) if r["action_type"] == "rollback"]
    assert started["status"] == "started"
    assert worlds.restores(world, child_entries) == (0 if step == "after-intent" else 1)

    later_cleanup_completes(world, store, settings)
    result, journal = rerun(world, store, settings, database_url, action_id)
    assert (result.outcome, result.rollback_id) == ("succeeded", started["id"]), result
    assert "resumed an interrupted rollback" in result.message
    assert_undone_once(
        world,
        moto_endpoint,
        database_url,
        action_id,
        awaiting_before,
        child_entries + journal.entries,
    )
    later_cleanup_completes(world, store, settings)
    again = pytest.raises(cleaning.CleanupRefused, match="already rolled back")
    with again:
        rerun(world, store, settings, database_url, action_id)


@pytest.mark.parametrize(
    ("world", "step"),
    [
        pytest.param(world, step, id=f"{world.id}-{step}")
        for world in worlds.undoable()
        for step in ("after-claim", "after-restore", "before-outcome")
    ],
)
def test_rollback_loses_the_database_at_a_step_then_rerun(
    world: worlds.ActionWorld,
    step: str,
    moto_endpoint: str,
    database_url: str,
    store: Store,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    action_id, awaiting_before = cleaned(world, moto_endpoint, store, settings, database_url)
    broken: list[int] = []

    def restart() -> None:
        # After the intent's INSERT (before its commit) a full restart would only abort the
        # intent; what must be shown there is the lock check: only the lock's connection dies.
        if step == "after-claim":
            broken.append(helpers.terminate_lock_holders(database_url))
        else:
            broken.append(helpers.terminate_other_backends(database_url))

    hooks = worlds.ActionHooks(world, step, restart)
    first = helpers.Journal()
    hooks.install_database()
    try:
        outcome: Any = cleaning.rollback(
            store,
            ORG,
            uuid.UUID(action_id),
            cleaning.CleanupOptions(
                dry_run=False,
                actor_email=helpers.ACTOR,
                settings=settings,
                session_factory=hooks.session_factory(first),
                now=lambda: domain.utcnow() + world.rollback_later,
            ),
        )
    except Exception as error:  # the broken connection may surface; it must not be swallowed
        outcome = error
    finally:
        hooks.uninstall_database()
    assert hooks.fired and broken and broken[0] > 0, "the database was not broken at the step"
    if step == "after-claim":
        # No AWS call without the lock.
        assert isinstance(outcome, cleaning.RollbackResult), outcome
        assert (outcome.outcome, outcome.message) == (
            "interrupted",
            "lost the database before the rollback call",
        )
        assert worlds.restores(world, first.entries) == 0
        # The intent it left is named, for the rerun, and the operator's log says why it stopped.
        [started] = [
            r for r in helpers.real_rows(database_url, ORG) if r["action_type"] == "rollback"
        ]
        assert (outcome.action_id, outcome.rollback_id) == (uuid.UUID(action_id), started["id"])
        assert (
            "cloudsweep.cleaning",
            logging.ERROR,
            f"rollback of {action_id} stopped: lost the database before the rollback call",
        ) in caplog.record_tuples

    entries = first.entries
    if [r for r in helpers.real_rows(database_url, ORG) if r["status"] == "started"]:
        later_cleanup_completes(world, store, settings)
        result, journal = rerun(world, store, settings, database_url, action_id)
        assert result.outcome == "succeeded", result
        entries = first.entries + journal.entries
    # else: the restart missed every statement of the outcome, which was recorded.
    assert_undone_once(world, moto_endpoint, database_url, action_id, awaiting_before, entries)


@pytest.mark.parametrize("world", worlds.undoable(), ids=lambda w: w.id)
def test_two_rollbacks_of_one_action_at_once_restore_once(
    world: worlds.ActionWorld,
    moto_endpoint: str,
    database_url: str,
    store: Store,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """Two processes roll back the same action together (each pauses 0.5 s at its first AWS
    call): one undoes it, the other is refused; one resource comes back."""
    action_id, awaiting_before = cleaned(world, moto_endpoint, store, settings, database_url)
    start = tmp_path / "start"
    workers = [
        helpers.spawn_worker(
            {
                "database_url": database_url,
                "endpoint": moto_endpoint,
                "org": ORG,
                "policies": [],
                "resource_type": world.resource_type,
                "action": world.action,
                "rollback": action_id,
                "step": "after-intent",
                "fault": "sleep",
                "delay": 0.5,
                "start_file": str(start),
                "journal": str(tmp_path / f"{name}.jsonl"),
                # Both are alive: the real grace period, no takeover of a live rollback.
                "takeover_seconds": 900,
            },
            tmp_path,
            name,
        )
        for name in ("one", "two")
    ]
    start.touch()
    results = [helpers.finish_worker(w) for w in workers]
    succeeded = [out for code, out in results if code == 0 and '"succeeded"' in out]
    refused = [out for code, out in results if code != 0 and "CleanupRefused" in out]
    assert len(succeeded) == 1 and len(refused) == 1, results
    entries = helpers.Journal.read(tmp_path / "one.jsonl") + helpers.Journal.read(
        tmp_path / "two.jsonl"
    )
    assert_undone_once(world, moto_endpoint, database_url, action_id, awaiting_before, entries)


def test_cloudsweep_rollback_execute_resumes_a_killed_rollback(
    moto_endpoint: str, database_url: str, store: Store, settings: Settings, tmp_path: Path
) -> None:
    """The command line end to end: a rollback killed after CreateVolume took effect, then
    ``cloudsweep rollback ID --execute --as EMAIL --yes`` (a real process on the same database
    and moto) resumes it: exit 0, one volume carries the rollback's ID, no second CreateVolume."""
    world = worlds.WORLDS[("ebs-volume", "snapshot-and-delete")]
    action_id, awaiting_before = cleaned(world, moto_endpoint, store, settings, database_url)
    child = helpers.spawn_worker(
        {
            "database_url": database_url,
            "endpoint": moto_endpoint,
            "org": ORG,
            "policies": [],
            "resource_type": world.resource_type,
            "action": world.action,
            "rollback": action_id,
            "step": "after-restore",
            "fault": "kill",
        },
        tmp_path,
        "child",
    )
    assert helpers.finish_worker(child)[0] == -9
    [started] = [r for r in helpers.real_rows(database_url, ORG) if r["action_type"] == "rollback"]
    # Where the migrations are is not configuration: a mutation run's copy of the code has none.
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CLOUDSWEEP_") or k == "CLOUDSWEEP_MIGRATIONS_DIR"
    }
    environment.update(
        {
            "CLOUDSWEEP_DATABASE_URL": database_url,
            "CLOUDSWEEP_AWS_ENDPOINT_URL": moto_endpoint,
            "CLOUDSWEEP_CLEANUP_TAKEOVER_SECONDS": "0",
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "COLUMNS": "200",
        }
    )
    command = [sys.executable, "-m", "cloudsweep.cli", "rollback", action_id, "--execute"]
    command += ["--as", helpers.ACTOR, "--yes", "--org", ORG]
    done = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"rollback {started['id']}: succeeded" in done.stdout
    ec2 = helpers.account_client(moto_endpoint, ACCOUNT, "ec2")
    tagged = ec2.describe_volumes(
        Filters=[{"Name": f"tag:{helpers.ACTION_TAG}", "Values": [str(started["id"])]}]
    )["Volumes"]
    assert len(tagged) == 1
    assert len(world.awaiting(moto_endpoint, ACCOUNT)) == awaiting_before + 1
    rows = [r for r in helpers.real_rows(database_url, ORG) if r["action_type"] == "rollback"]
    assert [r["status"] for r in rows] == ["succeeded"]
    assert rows[0]["aws_response"]["already_done"] is True  # found, not made again
    later_cleanup_completes(world, store, settings)
