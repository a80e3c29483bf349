"""No credential, session token, ExternalId or webhook secret in anything CloudSweep prints.

A real scan (boto3 over HTTP to moto, AssumeRole with an ExternalId) and real notifications (to a
local receiver, and one refused URL) run with debug logging on, as each front door configures it:
the operator's (``handlers.configure_logging(debug=True)``, kopf's handlers and levels) in this
process, the command line's (``cloudsweep --debug scan``) in a child process. Everything written
to stdout and stderr, and every record of every logger (pytest's handler on the root logger sees
the records of all of them), is searched for the secrets.

The credential values are taken from moto's STS backend (what AWS issued), not from CloudSweep.
moto does not check the ExternalId against the trust policy; here it only has to be sent.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.sts.models import sts_backends

from cloudsweep import aws, redaction, scanning
from cloudsweep.notify import Notifier, NotifySettings, RetryPolicy, Timeouts
from cloudsweep.settings import Settings
from cloudsweep.store import Store
from cloudsweep.store.notification_settings import NotificationSettingsStore, Preferences
from tests.notify.conftest import Receiver, receiver  # noqa: F401 - the fixture

from . import helpers

ACCOUNT = "246813579024"


def issued_secrets(account_id: str) -> list[str]:
    """Every credential moto's STS issued for roles in ``account_id``."""
    found = []
    for role in sts_backends[account_id]["aws"].assumed_roles:
        found += [role.access_key_id, role.secret_access_key, role.session_token]
    assert found, "moto issued no credentials: the scan did not assume the role"
    return found


def slack_path() -> str:
    """A Slack-shaped webhook path: team and channel IDs, then the secret."""
    return f"/services/T0{secrets.token_hex(4).upper()}/B0{secrets.token_hex(4).upper()}/" + (
        "Zq" + secrets.token_hex(11)
    )


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """Leave the process's logging as it was (the front doors configure it globally)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    factory = logging.getLogRecordFactory()
    levels = {n: logging.getLogger(n).level for n in ("botocore", "urllib3", "kopf", "asyncio")}
    filters = {n: list(logging.getLogger(n).filters) for n in redaction._FILTERED_LOGGERS}
    installed = redaction._installed
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
        logging.setLogRecordFactory(factory)
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)
        for name, kept in filters.items():
            logging.getLogger(name).filters[:] = kept
        redaction._installed = installed


def test_the_operators_debug_output_carries_no_secret(
    moto_endpoint: str,
    database_url: str,
    receiver: Receiver,  # noqa: F811 - the fixture imported above
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    logging_restored: None,
) -> None:
    from cloudsweep import handlers

    external_id = f"tenant-{secrets.token_hex(6)}"
    delivered_path, refused_path = slack_path(), slack_path()
    handlers.configure_logging("plain", debug=True)
    caplog.set_level(logging.DEBUG)
    # Whatever an earlier test's in-process command line left on these loggers, the operator
    # under --debug logs them (configure_logging sets them; the test makes sure of it).
    for name in ("botocore", "urllib3"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.DEBUG, name

    world = helpers.seed_small_world(moto_endpoint, ACCOUNT, external_id=external_id)
    store = Store(database_url)
    organization = store.ensure_organization("team-a")
    account = store.register_account(
        organization.id,
        account_id=ACCOUNT,
        role_arn=world.role_arn,
        external_id=external_id,
        regions=[helpers.REGION],
    )
    outcome = scanning.run_scan(
        store,
        account,
        helpers.scan_options(),
        settings=Settings(aws_endpoint_url=moto_endpoint, aws_max_attempts=1),
        session_factory=functools.partial(aws.AccountSession),
    )
    assert outcome.scan.status == "completed", outcome.scan.error_message

    # Alice's webhook answers 500 once (a retry is logged), Bob's URL is refused (ftp).
    receiver.behaviour = "fail"
    recipients = NotificationSettingsStore(database_url)
    for email, url in (
        ("alice@example.com", receiver.url + delivered_path),
        ("bob@example.com", "ftp://hooks.example.com" + refused_path),
    ):
        recipients.upsert(
            store.ensure_user(organization.id, email),
            Preferences(slack_enabled=True, slack_webhook_url=url, email_enabled=False),
        )
    notifier = Notifier(
        database_url,
        settings=NotifySettings(notify_allow_private=True),
        timeouts=Timeouts(connect=1, total=2),
        retry=RetryPolicy(attempts=2, initial=0.01, maximum=0.02),
    )
    try:
        notifier.notify_scan(outcome)
        assert notifier.flush(30)
    finally:
        notifier.close()
    assert receiver.count() >= 2 and notifier.stats.refused >= 1

    captured = capfd.readouterr()
    output = captured.out + captured.err + caplog.text
    # The output is really there: botocore's bodies, the refusal, the retried delivery.
    assert "AssumeRole" in output and "<SecretAccessKey>" in output, output[-3000:]
    assert "ExternalId" in output and "not sent to the Slack webhook" in output
    assert "retrying" in output
    leaked = [
        (name, value)
        for name, value in [
            *(("credential", v) for v in issued_secrets(ACCOUNT)),
            ("external id", external_id),
            ("webhook path", delivered_path),
            ("webhook secret", delivered_path.rsplit("/", 1)[1]),
            ("refused webhook secret", refused_path.rsplit("/", 1)[1]),
        ]
        if value in output
    ]
    assert not leaked, leaked


def test_the_command_lines_debug_output_carries_no_secret(
    moto_endpoint: str, database_url: str, data_home: Path
) -> None:
    external_id = f"tenant-{secrets.token_hex(6)}"
    world = helpers.seed_small_world(moto_endpoint, ACCOUNT, external_id=external_id)
    # Where the migrations are is not configuration: a mutation run's copy of the code has none.
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CLOUDSWEEP_") or k == "CLOUDSWEEP_MIGRATIONS_DIR"
    }
    environment.update(
        CLOUDSWEEP_AWS_ENDPOINT_URL=moto_endpoint,
        CLOUDSWEEP_DATABASE_URL=database_url,
        XDG_DATA_HOME=str(data_home),
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cloudsweep.cli",
            "--debug",
            "scan",
            "--role-arn",
            world.role_arn,
            "--external-id",
            external_id,
            "--regions",
            helpers.REGION,
            "--detectors",
            "ebs-volume,elastic-ip",
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=180,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 3, output[-3000:]  # waste found
    assert "AssumeRole" in output and "<SecretAccessKey>" in output, output[-3000:]
    leaked = [v for v in [*issued_secrets(ACCOUNT), external_id] if v in output]
    assert not leaked, leaked
