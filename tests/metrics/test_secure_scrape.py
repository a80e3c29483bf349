"""A real Prometheus scrapes the secured /metrics the way docs/install.md tells it to: over HTTPS,
sending its service account token. The scrape configuration is read from docs/install.md, so the
documented one is the one proven; a job without the token is refused (401) and gets nothing.

Who may scrape is the operator's business (``handlers.metrics_access``, TokenReview and
SubjectAccessReview, tested in tests/handlers/test_metrics_access.py); here a table stands in
for the API server's answers.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudsweep import metrics
from cloudsweep.handlers import certificates
from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "prometheus-service-account-token"


def documented_scrape_config() -> dict[str, Any]:
    text = (ROOT / "docs" / "install.md").read_text()
    section = text.split("### Metrics", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "docs/install.md, Metrics: the scrape configuration block is missing"
    [job] = yaml.safe_load(block.group(1))
    return dict(job)


def authorize(token: str | None, path: str) -> tuple[int, str]:
    if token is None:
        return 401, "send a bearer token"
    return (200, "") if (token, path) == (TOKEN, "/metrics") else (403, "not allowed")


def test_prometheus_scrapes_with_its_token_over_https(
    database_url: str, prometheus_binary: str, tmp_path: Path
) -> None:
    certfile, keyfile = certificates.self_signed(["127.0.0.1"], tmp_path)
    server = metrics.serve(
        0,
        database_url,
        addr="127.0.0.1",
        authorize=authorize,
        certfile=str(certfile),
        keyfile=str(keyfile),
    )
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    job = documented_scrape_config()
    assert job["scheme"] == "https"
    job["authorization"]["credentials_file"] = str(token_file)
    job["static_configs"] = [{"targets": [f"127.0.0.1:{server.port}"]}]
    anonymous = {k: v for k, v in job.items() if k != "authorization"}
    anonymous["job_name"] = "anonymous"
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [job, anonymous]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            prometheus_binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    try:
        targets = _targets_after_scrapes(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        server.stop()
    assert targets["cloudsweep"]["health"] == "up", targets["cloudsweep"]
    assert targets["anonymous"]["health"] == "down"
    assert "401" in targets["anonymous"]["lastError"]


def _targets_after_scrapes(url: str, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "prometheus exited"
        try:
            with urllib.request.urlopen(f"{url}/api/v1/targets", timeout=5) as response:
                active = json.loads(response.read())["data"]["activeTargets"]
        except OSError:
            active = []
        targets = {t["labels"]["job"]: t for t in active}
        if len(targets) == 2 and all(t["health"] != "unknown" for t in targets.values()):
            return targets
        time.sleep(0.5)
    pytest.fail("prometheus did not scrape both targets in time")
