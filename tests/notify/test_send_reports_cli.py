"""`cloudsweep send-reports`, as a CronJob runs it: every organization's opted-in users get it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cloudsweep.cli import app
from cloudsweep.settings import get_settings

from .conftest import Mailbox, Tenant
from .test_dispatch import subjects


def test_weekly_reports_reach_the_users_who_want_them(
    tenant: Tenant, smtp_server: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant.user("alice@example.com", monthly_report=False)
    tenant.user("bob@example.com", weekly_report=False)
    tenant.scan(["10.00", "20.00"])
    tenant.store.refresh_views()
    for name, value in {
        "CLOUDSWEEP_DATABASE_URL": tenant.store.url,
        "CLOUDSWEEP_SMTP_HOST": "127.0.0.1",
        "CLOUDSWEEP_SMTP_PORT": str(smtp_server.port),
        "CLOUDSWEEP_SMTP_FROM": "cloudsweep@example.com",
        "CLOUDSWEEP_SMTP_STARTTLS": "false",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["send-reports", "--period", "weekly"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert subjects(smtp_server) == {
        "alice@example.com": ["[CloudSweep] Weekly report for team-a: $30.00/month of waste"]
    }
