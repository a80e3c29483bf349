"""`cloudsweep report`: the summary from the views on known data, as tables and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from cloudsweep import reports
from cloudsweep.cli.report import report

from .conftest import Known

app = typer.Typer()
app.command()(report)


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_report_prints_waste_trend_and_savings(cli_database: Known) -> None:
    out = run("--org", "team-a")
    assert "CloudSweep report of team-a" in out
    for expected in ("$63.60", "$763.20", "$10.00"):
        assert expected in out
    lines = out.splitlines()
    [volume] = [line for line in lines if "ebs-volume" in line]
    assert "2" in volume.split() and "60.00" in volume
    [eip] = [line for line in lines if "elastic-ip" in line]
    assert "3.60" in eip
    assert any(
        cli_database.week1.strftime("%Y-%m-%d") in line and "33.60" in line for line in lines
    )
    assert any(
        cli_database.week2.strftime("%Y-%m-%d") in line and "73.60" in line for line in lines
    )


def test_report_as_json(cli_database: Known) -> None:
    data = json.loads(run("--org", "team-a", "--output", "json"))
    assert data["summary"] == {
        "waste_items": 3,
        "monthly_waste_cost": "63.60",
        "annual_waste_cost": "763.20",
        "cleanups": 1,
        "estimated_monthly_savings": "10.00",
        "actual_monthly_savings": "0.00",
        "protected_items": 0,
        "protected_monthly_cost": "0.00",
    }
    assert [(r["resource_type"], r["items"], r["monthly_cost"]) for r in data["waste_by_type"]] == [
        ("ebs-volume", 2, "60.00"),
        ("elastic-ip", 1, "3.60"),
    ]
    weekly = {}
    for point in data["waste_trend"]:
        weekly[point["week"]] = weekly.get(point["week"], 0) + float(point["monthly_cost"])
    assert sorted(weekly.values()) == [33.6, 73.6]
    assert data["accounts"][0]["account_name"] == "payments <prod>"


def test_unknown_organization_is_a_clear_error(cli_database: Known) -> None:
    result = CliRunner().invoke(app, ["--org", "nobody"])
    assert result.exit_code != 0
    assert "no organization 'nobody'" in str(result.exception)


def test_html_is_written_and_escapes_names(cli_database: Known, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    run("--org", "team-a", "--html", str(page))
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "Team &lt;A&gt; &amp; Co" in text and "Team <A>" not in text
    assert "payments &lt;prod&gt;" in text
    assert "http://" not in text and "https://" not in text  # nothing to fetch
    assert text.count("<svg") == 3


def test_empty_organization_renders_placeholders(database_url: str) -> None:
    from cloudsweep.store import Store

    Store(database_url).ensure_organization("empty")
    data = reports.build_report(database_url, "empty")
    page = reports.render_html(data)
    assert (
        "No waste found" in page and "No weekly history yet" in page and "No cleanups yet" in page
    )
