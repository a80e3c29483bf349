"""The command line as a newcomer uses it: `cloudsweep scan --demo`, then `cloudsweep findings`."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _cloudsweep(
    *args: str, data_home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLOUDSWEEP_", "AWS_ENDPOINT"))
    }
    environment.update({"XDG_DATA_HOME": str(data_home), "COLUMNS": "200", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "cloudsweep.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def demo_home() -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    # Outside pytest's temp root: see the data_home fixture in tests/conftest.py.
    with tempfile.TemporaryDirectory(prefix="cs-") as directory:
        home = Path(directory)
        yield home, _cloudsweep("scan", "--demo", data_home=home)


def test_demo_scan_prints_findings_and_total_and_exits_3(demo_home) -> None:
    home, result = demo_home
    assert result.returncode == 3, result.stderr
    assert "Total waste:" in result.stdout
    assert "USD/month" in result.stdout
    for resource_type in (
        "ebs-volume",
        "ebs-snapshot",
        "elastic-ip",
        "load-balancer",
        "rds-instance",
    ):
        assert resource_type in result.stdout
    assert "demo: emulated AWS at http://127.0.0.1:" in result.stderr
    assert "completed" in result.stderr
    assert (home / "cloudsweep" / "pgdata" / "PG_VERSION").is_file()


def test_findings_after_the_demo_in_json_and_csv(demo_home) -> None:
    home, _ = demo_home
    as_json = _cloudsweep("findings", "--org", "demo", "-o", "json", data_home=home)
    assert as_json.returncode == 0, as_json.stderr
    items = json.loads(as_json.stdout)
    assert items and items == sorted(items, key=lambda i: -float(i["monthly_cost"]))
    assert {"resource_id", "monthly_cost", "evidence", "safety_checks", "region"} <= set(items[0])

    cheap = _cloudsweep(
        "findings", "--org", "demo", "--type", "elastic-ip", "-o", "csv", data_home=home
    )
    rows = list(csv.DictReader(io.StringIO(cheap.stdout)))
    assert rows and {row["resource_type"] for row in rows} == {"elastic-ip"}

    expensive = _cloudsweep(
        "findings", "--org", "demo", "--min-cost", "100", "-o", "json", data_home=home
    )
    assert all(float(i["monthly_cost"]) >= 100 for i in json.loads(expensive.stdout))


def test_bad_input_gets_a_clear_error_and_exit_1(data_home: Path) -> None:
    tmp_path = data_home
    result = _cloudsweep("findings", "--account", "12345", data_home=tmp_path)
    assert result.returncode == 1
    assert "exactly 12 digits" in result.stderr
    assert "Traceback" not in result.stderr

    result = _cloudsweep("scan", "--detectors", "no-such-type", "--demo", data_home=tmp_path)
    assert result.returncode == 1
    assert "unknown resource type 'no-such-type'" in result.stderr

    # No role and your own credentials unusable (here: nothing listens where AWS should be).
    result = _cloudsweep(
        "scan",
        data_home=tmp_path,
        env={
            "CLOUDSWEEP_AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "CLOUDSWEEP_AWS_MAX_ATTEMPTS": "1",
        },
    )
    assert result.returncode == 1
    assert "cannot use your own AWS credentials: could not reach STS" in result.stderr
    assert "--demo" in result.stderr
    assert "Traceback" not in result.stderr and "retried later" not in result.stderr


def test_pricing_show_is_honest_about_its_source(data_home: Path) -> None:
    tmp_path = data_home
    result = _cloudsweep("pricing", "show", "-o", "json", data_home=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["file"] == "bundled"
    assert shown["source"]
    # Every region mixes figures read from dated sources with estimated ones, and says so.
    assert all(r["basis"].startswith("mixed: ") for r in shown["regions"])
    assert all(r["published"] + r["estimated"] > 0 for r in shown["regions"])


def test_scan_with_your_own_credentials_needs_no_role(moto_endpoint: str, data_home: Path) -> None:
    import boto3

    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=50, VolumeType="gp3")
    result = _cloudsweep(
        "scan",
        "--regions",
        "us-east-1",
        "--detectors",
        "ebs-volume",
        "-o",
        "json",
        data_home=data_home,
        env={"CLOUDSWEEP_AWS_ENDPOINT_URL": moto_endpoint},
    )
    assert result.returncode == 3, result.stderr
    assert "scanning account 123456789012 as arn:aws:sts::123456789012:user/moto" in result.stderr
    assert "read-only: GetFederationToken" in result.stderr
    [item] = json.loads(result.stdout)
    assert item["resource_id"] == volume["VolumeId"]
    assert item["account_id"] == "123456789012"
