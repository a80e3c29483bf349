"""`cloudsweep pricing show --region R`: every figure with its basis and its source's date."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _show(*args: str, data_home: Path) -> subprocess.CompletedProcess[str]:
    # Where the migrations are is not configuration: a mutation run's copy of the code has none.
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CLOUDSWEEP_") or k == "CLOUDSWEEP_MIGRATIONS_DIR"
    }
    environment.update({"CLOUDSWEEP_DATA_DIR": str(data_home), "COLUMNS": "200"})
    return subprocess.run(
        [sys.executable, "-m", "cloudsweep.cli", "pricing", "show", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def test_show_region_lists_every_figure_with_its_basis(tmp_path: Path) -> None:
    result = _show("--region", "ap-northeast-1", "-o", "json", data_home=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["figure"]: row for row in json.loads(result.stdout)}
    throughput = rows["ebs_volumes/gp3/throughput_mibps_month"]
    assert throughput == {
        "figure": "ebs_volumes/gp3/throughput_mibps_month",
        "usd": "0.048",  # as published: 49.152 USD per GiBps-month / 1024
        "per": "MiBps-month",
        "basis": "published",
        "source_date": "2026-09-10",
        "how": throughput["how"],
        "source": throughput["source"],
    }
    assert "ap-northeast-1 Price List" in throughput["how"]
    nat = rows["nat_gateway/hourly"]
    assert nat["basis"] == "estimated" and nat["source_date"] == ""
    assert nat["how"].startswith("estimated: us-east-1 x ")
    assert all(row["basis"] in {"published", "estimated"} for row in rows.values())
    assert all(row["how"] for row in rows.values())


def test_show_region_as_a_table_says_the_basis_and_the_date(tmp_path: Path) -> None:
    result = _show("--region", "ap-southeast-1", data_home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ap-southeast-1 (Asia Pacific (Singapore))" in result.stdout
    assert "2025-05-31" in result.stdout and "published" in result.stdout
    assert "estimated" in result.stdout


def test_show_of_an_unknown_region_names_the_known_ones(tmp_path: Path) -> None:
    result = _show("--region", "mars-north-1", data_home=tmp_path)
    assert result.returncode == 1
    assert "no region 'mars-north-1'" in result.stderr
    assert "us-east-1" in result.stderr
    assert "Traceback" not in result.stderr
