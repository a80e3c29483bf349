"""A cleanup run in a child process, for the crash, database-failure and two-worker scenarios.

Run as ``python -m tests.safety.crash_worker CONFIG.json`` by ``helpers.spawn_worker``. The config
names the database, the moto endpoint, the organization, the policies, and optionally a ``step``
(of ``helpers.StepHooks``, or with an ``action`` of ``worlds.ActionHooks``)
and a ``fault`` (``kill``: SIGKILL this process there; ``sleep``: pause there, to widen a race),
a ``start_file`` to wait for (so two workers start together), and a ``journal`` file where every
AWS send is written as it happens (the parent's oracle when this process is killed).

With ``rollback`` (a cleanup action ID) it undoes that action (``cleaning.rollback``) instead of
running a cleanup. On a normal end it prints one JSON line ``RESULT {...}`` with the outcomes and the records of its
``aws.CallRecorder``.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from cloudsweep import aws, cleaning, domain
from cloudsweep.store import Store
from tests.safety import helpers, worlds


def main(config_path: str) -> int:
    config: dict[str, Any] = json.loads(Path(config_path).read_text())
    store = Store(config["database_url"])
    settings = helpers.settings_for(
        config["endpoint"], config.get("max_attempts", 2), config.get("takeover_seconds", 0)
    )
    journal = helpers.Journal(
        path=Path(config["journal"]) if config.get("journal") else None,
        database_url=config["database_url"],
    )
    step = config.get("step")
    fault = config.get("fault", "kill")
    delay = float(config.get("delay", 0.5))

    def act() -> None:
        if fault == "kill":
            journal.write({"event": "killed", "step": step})
            helpers.sigkill_self()
        elif fault == "sleep":
            time.sleep(delay)

    hooks: helpers.StepHooks
    rollback_later = timedelta(0)
    if config.get("action"):  # a scenario walking the registry: the steps every action has
        world = worlds.WORLDS[(config["resource_type"], config["action"])]
        hooks = worlds.ActionHooks(world, step or "none", act)
        rollback_later = world.rollback_later
    else:
        hooks = helpers.StepHooks(step or "none", config.get("resource_type", "ebs-volume"), act)
    hooks.install_database()
    recorder = aws.CallRecorder()
    start_file = config.get("start_file")
    if start_file:
        deadline = time.monotonic() + 30
        while not Path(start_file).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    if config.get("rollback"):
        # ``cloudsweep rollback --execute``'s engine call, with the faults of this worker.
        outcome = cleaning.rollback(
            store,
            config["org"],
            uuid.UUID(config["rollback"]),
            cleaning.CleanupOptions(
                dry_run=False,
                actor_email=helpers.ACTOR,
                settings=settings,
                recorder=recorder,
                session_factory=hooks.session_factory(journal),
                now=lambda: domain.utcnow() + rollback_later,
            ),
        )
        print("RESULT " + json.dumps({"rollback": outcome.outcome, "message": outcome.message}))
        return 0
    report = helpers.run_cleanup(
        store,
        config["org"],
        config["policies"],
        settings,
        recorder,
        session_factory=hooks.session_factory(journal),
    )
    result = {
        "outcomes": [
            {"resource_id": r.resource_id, "outcome": r.outcome, "message": r.message}
            for r in report.results
        ],
        "calls": [
            {
                "operation": c.operation,
                "caller_account": c.caller_account,
                "params": {k: v for k, v in c.params.items() if isinstance(v, str | bool)},
                "outcome": c.outcome,
            }
            for c in recorder.records
        ],
    }
    print("RESULT " + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
