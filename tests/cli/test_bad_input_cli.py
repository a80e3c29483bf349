"""Every bad input to the command line gets one line saying what is wrong, and exit code 1 or 2.

Run as a user runs it (a child process, its real stderr), against a real PostgreSQL. Never a
traceback, never a message meant for the operator ("the scan will be retried later").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.net import free_port

from .test_scan_cli import _cloudsweep

ROLE = "arn:aws:iam::123456789012:role/CloudSweepScanner"

POLICY = """\
name: old-volumes
resourceType: ebs-volume
action: snapshot-and-delete
rules: {minAgeDays: 30}
"""


def assert_one_line_error(result, *, says: str, codes: tuple[int, ...] = (1, 2)) -> None:
    """Exit 1 or 2, no traceback, and the reason on stderr (typer frames usage errors in a box)."""
    shown = result.stderr
    assert result.returncode in codes, (result.returncode, shown)
    assert "Traceback" not in shown and 'File "' not in shown, shown
    assert says in shown, shown
    if result.returncode == 1:
        assert len(shown.strip().splitlines()) == 1, shown


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {"CLOUDSWEEP_DATABASE_URL": database_url}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("NaN", "is not an amount of money"),
        ("Infinity", "is not an amount of money"),
        ("1e999999", "is not an amount of money"),
        ("1E2", "is not an amount of money"),
        ("-5", "is not an amount of money"),
        ("12.345", "more than two decimals"),
        ("123456789012", "at most 99999999.99"),
    ],
)
def test_min_cost_must_be_plain_decimal_money(
    value: str, says: str, data_home: Path, env: dict[str, str]
) -> None:
    result = _cloudsweep("findings", "--min-cost", value, data_home=data_home, env=env)
    assert_one_line_error(result, says=says)


def test_plain_money_is_accepted(data_home: Path, env: dict[str, str]) -> None:
    result = _cloudsweep("findings", "--min-cost", "10.5", data_home=data_home, env=env)
    assert_one_line_error(result, says="no organization 'default' has been scanned yet")


def test_actions_run_must_be_a_run_id(data_home: Path, env: dict[str, str]) -> None:
    result = _cloudsweep("actions", "--run", "not-a-uuid", data_home=data_home, env=env)
    assert_one_line_error(result, says="'not-a-uuid' is not a cleanup run ID")


def test_a_policy_file_that_is_not_utf8(tmp_path: Path, data_home: Path, env) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(POLICY.encode() + b"# caf\xe9 \xff\n")
    result = _cloudsweep("cleanup", "--policy", str(path), data_home=data_home, env=env)
    assert_one_line_error(result, says="is not UTF-8 text")


def test_a_policy_file_that_is_missing(tmp_path: Path, data_home: Path, env) -> None:
    path = tmp_path / "nowhere.yaml"
    result = _cloudsweep("cleanup", "--policy", str(path), data_home=data_home, env=env)
    assert_one_line_error(result, says="cannot read")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('dryRun: "no"', "dryRun: must be true or false"),
        ("dryRun: 0", "dryRun: must be true or false"),
        ("dryRun: no", "dryRun: must be true or false"),  # YAML 1.1 reads `no` as false
        ("autoExecute: 1", "autoExecute: must be true or false"),
        ("name: again", "duplicate key 'name'"),
        ("requireApprovalAbove: 1e3", "plain decimal"),
        ('requireApprovalAbove: "1e3"', "plain decimal"),
        ("maxCostPerRun: .nan", "plain decimal"),
        ("maxCostPerRun: .inf", "plain decimal"),
        ('maxCostPerRun: "Infinity"', "plain decimal"),
        ("maxCostPerRun: 12.5", "quote"),
        ("maxItemsPerRun: true", "maxItemsPerRun: must be a whole number"),
        ('maxItemsPerRun: "20"', "maxItemsPerRun: must be a whole number"),
        ('rules: {excludeTags: {"keep\\0me": "*"}}', "NUL"),
    ],
)
def test_a_bad_policy_file_is_refused_naming_the_field(
    line: str, says: str, tmp_path: Path, data_home: Path, env: dict[str, str]
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.replace("rules: {minAgeDays: 30}\n", "") + line + "\n")
    result = _cloudsweep("cleanup", "--policy", str(path), data_home=data_home, env=env)
    assert_one_line_error(result, says=says)
    assert "policy.yaml" in result.stderr


def test_yaml_true_and_false_are_booleans(tmp_path: Path, data_home: Path, env) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY + "dryRun: false\nautoExecute: true\n")
    result = _cloudsweep("cleanup", "--policy", str(path), data_home=data_home, env=env)
    # The policy is valid: what stops the run is that nothing was scanned yet.
    assert_one_line_error(result, says="has no findings; run `cloudsweep scan` first")


def test_an_unreachable_sts_endpoint_is_one_line_for_a_person(
    data_home: Path, env: dict[str, str]
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    result = _cloudsweep(
        "scan",
        "--role-arn",
        ROLE,
        "--external-id",
        "ext-12345678",
        "--regions",
        "us-east-1",
        data_home=data_home,
        env={**env, "CLOUDSWEEP_AWS_ENDPOINT_URL": closed, "CLOUDSWEEP_AWS_MAX_ATTEMPTS": "1"},
    )
    assert_one_line_error(result, says="could not reach", codes=(1,))
    assert "retried later" not in result.stderr
    assert "ext-12345678" not in result.stderr + result.stdout


def test_the_error_boundary_turns_any_failure_into_one_redacted_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What no check foresaw (a bug, a library's surprise) still reaches the user as one line,
    exit code 1, no traceback, and no secret the error happened to quote."""
    import logging
    import sys

    from cloudsweep import cli

    def explode() -> None:
        raise RuntimeError(
            "boom at https://hooks.slack.com/services/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9e"
            "\nsecond line"
        )

    # The command line configures logging for the whole process: not for the rest of the tests.
    monkeypatch.setattr(cli.redaction, "install", lambda: None)
    for name in cli._QUIET_UNLESS_ASKED:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)
    monkeypatch.setattr(sys, "argv", ["cloudsweep", "explode"])
    cli.app.command("explode")(explode)
    try:
        with pytest.raises(SystemExit) as exited:
            cli.main()
    finally:
        cli.app.registered_commands = [
            c for c in cli.app.registered_commands if c.name != "explode"
        ]
    shown = capsys.readouterr().err
    assert exited.value.code == 1
    assert len(shown.strip().splitlines()) == 1, shown
    assert "RuntimeError: boom at" in shown and "second line" in shown
    assert "Zq4f9a0b1c2d3e4f5a6b7c8d9e" not in shown and "Traceback" not in shown


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--account-id", "123456789012", "--demo"], "--demo, --role-arn, --external-id"),
        (["--account-id", "123456789012", "--role-arn", ROLE], "--account-id scans a registered"),
        (["--scan-id", "0f0f0f0f-0000-0000-0000-000000000000"], "go with --account-id"),
        (["--account-id", "12345"], "must be exactly 12 digits"),
        (["--account-id", "123456789012", "--scan-id", "nope"], "--scan-id is not a UUID"),
        (["--account-id", "123456789012", "--parameters", "{"], "--parameters is not JSON"),
        (["--account-id", "123456789012", "--parameters", "[1]"], "a JSON object"),
        (
            ["--account-id", "123456789012", "--org", "team-z"],
            "account 123456789012 is not registered for organization team-z",
        ),
    ],
)
def test_scanning_a_registered_account_refuses_bad_arguments(
    args: list[str], says: str, data_home: Path, env: dict[str, str]
) -> None:
    """``cloudsweep scan --account-id``: what the operator's scan Jobs run (docs/scan-jobs.md)."""
    result = _cloudsweep("scan", *args, data_home=data_home, env=env)
    assert_one_line_error(result, says=says)
