"""``cloudsweep --help`` (and each command's ``--help``) answers without importing the engine.

Start-up time is measured by ``python -m bench startup``; a timed assertion would be flaky on a
shared machine, so this checks the cause instead: which heavy packages a help request imported,
seen from ``sys.modules`` of a child process that runs the console script's ``main`` as a user does.
The light copies of names the help shows (the detector names, the report periods, the default role
name) are checked against the registries they mirror.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cloudsweep import detectors, iam, names
from cloudsweep.cli import notify as notify_cli
from cloudsweep.notify import Period

# What start-up must not pay for: the AWS SDK, the database layer, the Kubernetes operator stack,
# the metrics server and the settings' loader.
HEAVY = (
    "boto3",
    "botocore",
    "moto",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "pgserver",
    "kopf",
    "kubernetes",
    "prometheus_client",
    "pydantic_settings",
    "yaml",
    "cloudsweep.detectors",
    "cloudsweep.store",
    "cloudsweep.aws",
    "cloudsweep.scanning",
    "cloudsweep.handlers",
)

_PROBE = """
import json, sys
from cloudsweep.cli import main
sys.argv = ["cloudsweep", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exit:
    code = exit.code
loaded = sorted({name for name in sys.modules if name.split(".")[0] in HEAVY_ROOTS
                 or any(name == h or name.startswith(h + ".") for h in HEAVY)})
sys.stderr.write(json.dumps({"code": code, "loaded": loaded}))
"""


def _help(*args: str) -> tuple[str, dict[str, object]]:
    """Run the console script's main with ``args`` in a fresh interpreter: (stdout, probe)."""
    heavy_roots = [h for h in HEAVY if "." not in h]
    script = f"HEAVY = {list(HEAVY)!r}\nHEAVY_ROOTS = {heavy_roots!r}\n" + _PROBE
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(list(args))],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "400", "TERM": "dumb"},
        check=False,
    )
    probe = json.loads(result.stderr.strip().splitlines()[-1])
    return result.stdout, probe


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("scan", "--help"),
        ("findings", "--help"),
        ("cleanup", "--help"),
        ("rollback", "--help"),
        ("send-reports", "--help"),
        ("db", "--help"),
        ("db", "upgrade", "--help"),
        ("pricing", "refresh", "--help"),
        ("accounts", "discover", "--help"),
        ("operator", "--help"),
        ("report", "--help"),
    ],
)
def test_help_imports_no_heavy_module(args: tuple[str, ...]) -> None:
    shown, probe = _help(*args)
    assert probe["code"] == 0, (probe, shown)
    assert probe["loaded"] == [], f"`cloudsweep {' '.join(args)}` imported {probe['loaded']}"
    assert "Usage:" in shown


def test_help_lists_every_command() -> None:
    shown, _ = _help("--help")
    for command in ("scan", "findings", "cleanup", "approve", "reject", "actions", "rollback"):
        assert f" {command} " in shown, shown
    for group in ("db", "pricing", "accounts", "operator", "report", "send-reports"):
        assert f" {group} " in shown, shown


def test_scan_help_names_every_detector() -> None:
    shown, _ = _help("scan", "--help")
    for name in detectors.names():
        assert name in shown, (name, shown)


def test_the_light_copies_match_their_registries() -> None:
    assert tuple(detectors.names()) == names.DETECTOR_NAMES
    assert [choice.value for choice in notify_cli.PeriodChoice] == [p.value for p in Period]
    assert iam.DEFAULT_ROLE_NAME == names.SCANNER_ROLE_NAME == "CloudSweep"


def test_an_error_of_the_engine_is_still_one_line() -> None:
    """The error boundary imports the engine's error classes only when reporting one."""
    result = subprocess.run(
        [sys.executable, "-m", "cloudsweep.cli", "scan", "--detectors", "no-such-type"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "400"},
        check=False,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: unknown resource type 'no-such-type'"), result.stderr
