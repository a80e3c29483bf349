"""`cloudsweep cleanup --demo` as a newcomer tries it: a plan and a dry run, then for real."""

from __future__ import annotations

import json
from pathlib import Path

from .test_scan_cli import _cloudsweep


def test_demo_cleanup_dry_runs_by_default_then_acts_with_execute(data_home: Path) -> None:
    dry = _cloudsweep("cleanup", "--demo", "-o", "json", data_home=data_home)
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout[dry.stdout.index('{\n  "run_id"') :])
    assert report["dry_run"] is True
    assert report["results"] and {r["outcome"] for r in report["results"]} == {"dry-run-ok"}
    assert {r["resource_type"] for r in report["results"]} == {
        "elastic-ip",
        "ebs-volume",
        "load-balancer",
    }

    without_identity = _cloudsweep("cleanup", "--demo", "--execute", data_home=data_home)
    assert without_identity.returncode == 1 and "--as EMAIL" in without_identity.stderr

    real = _cloudsweep(
        "cleanup",
        "--demo",
        "--execute",
        "--as",
        "ann@example.com",
        "--yes",
        "-o",
        "json",
        data_home=data_home,
    )
    assert real.returncode == 0, real.stderr
    done = json.loads(real.stdout[real.stdout.index('{\n  "run_id"') :])
    assert done["dry_run"] is False and {r["outcome"] for r in done["results"]} == {"succeeded"}

    trail = _cloudsweep("actions", "--org", "demo", "--real", "-o", "json", data_home=data_home)
    actions = json.loads(trail.stdout)
    assert len(actions) == len(done["results"])
    assert {a["by"] for a in actions} == {"ann@example.com"}
    volume = next(a for a in actions if a["action"] == "snapshot-and-delete")
    assert volume["rollback"] == "possible" and volume["rollback_data"]["snapshot_id"].startswith(
        "snap-"
    )


def test_messages_keep_their_brackets(data_home: Path) -> None:
    """rich reads "[x]" as markup: what users typed (and AWS said) must reach them as it is."""
    result = _cloudsweep("rollback", "not-an-id[demo]", data_home=data_home)
    assert result.returncode == 1
    assert "'not-an-id[demo]' is not an action ID" in result.stderr
