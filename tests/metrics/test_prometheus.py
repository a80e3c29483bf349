"""A real Prometheus (Debian's package) scrapes the operator's metrics after a demo scan and cleanup;
every dashboard query and every alert expression must parse and return data.

The scan and cleanups run on a moto server into a real PostgreSQL, with the recorder feeding the
per-process AWS counters. Alert expressions that are rightly empty when nothing is wrong (no
disconnected account, no $500 item in the demo world) must still evaluate, and each metric selector
inside them must return data, so an empty result means "nothing wrong", never "wrong metric name".
Prometheus also loads the rule file and must report every rule healthy after evaluating it.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudsweep import aws, cleaning, domain, metrics, policies, scanning
from cloudsweep.demo import world as demo_world
from cloudsweep.settings import Settings
from cloudsweep.store import FindingFilter, Intent, Store
from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "cloudsweep-dashboard.json"
RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
ORG = "team-a"
SELECTOR = re.compile(r"cloudsweep_[a-z_]+(?:\{[^}]*\})?")


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _eip_policy(**overrides: Any) -> policies.CleanupPolicy:
    document: dict[str, Any] = {
        "name": "idle-ips",
        "resourceType": "elastic-ip",
        "action": "release",
        "rules": {"minAgeDays": 0, "minConfidence": 50},
        "dryRun": False,
    }
    document.update(overrides)
    return policies.parse_policy(document)


def _demo(database_url: str, endpoint: str) -> None:
    """A demo scan, a dry-run and a real cleanup, a confirming scan, and one failed attempt."""
    world = demo_world.seed_demo_world(endpoint, regions=("us-east-1",))
    settings = Settings(aws_endpoint_url=endpoint, aws_max_attempts=2)
    store = Store(database_url)
    org = store.ensure_organization(ORG)
    account = store.register_account(
        org.id,
        account_id=world.account_id,
        role_arn=world.scanner_role_arn,
        external_id=world.external_id,
        regions=list(world.regions),
    )
    recorder = aws.CallRecorder()
    recorder.add_listener(metrics.observe_aws_call)
    first = scanning.run_scan(store, account, settings=settings, recorder=recorder)
    assert first.scan.status == "completed"
    for dry_run in (True, False):
        report = cleaning.run_cleanup(
            store,
            ORG,
            [_eip_policy()],
            cleaning.CleanupOptions(
                settings=settings, recorder=recorder, dry_run=dry_run, actor_email="ann@example.com"
            ),
        )
        assert report.results, "the demo world has idle Elastic IPs to clean"
    # The next full scan no longer sees the released addresses: their savings are confirmed.
    second = scanning.run_scan(store, account, settings=settings, recorder=recorder)
    assert second.scan.status == "completed"
    # One failed real attempt, recorded the way the executor records one, for the failure alert.
    volume = next(
        item
        for item in store.findings(FindingFilter(ORG))
        if item.resource_type == "ebs-volume" and item.cleanup_status == "pending"
    )
    intent = Intent(
        item_id=volume.id,
        run_id=None,
        action="delete",
        action_type=domain.ActionType.DELETE,
        description="delete the volume",
        method=domain.ExecutionMethod.MANUAL,
        executed_by=None,
        policy_name="old-volumes",
        decision_reason="test",
        rollback_possible=True,
        estimated_monthly_savings=Decimal(volume.monthly_cost),
    )
    now = domain.utcnow()
    action = store.claim(intent, allowed=["pending"], now=now - timedelta(seconds=1))
    assert action is not None
    store.finish(
        action,
        status=domain.AttemptStatus.FAILED,
        now=now,
        error="VolumeInUse",
        item_status=domain.CleanupStatus.FAILED,
    )


@pytest.fixture
def prometheus(
    database_url: str, moto_endpoint: str, prometheus_binary: str, tmp_path: Path
) -> Iterator[str]:
    """The URL of a Prometheus that has scraped the metrics of a demo world a few times."""
    _demo(database_url, moto_endpoint)
    server = metrics.serve(0, database_url, addr="127.0.0.1")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "cloudsweep",
                "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
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
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_scrapes(url, process, tmp_path / "prometheus.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        server.stop()


def _wait_for_scrapes(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until three scrapes are stored (rate() and increase() need two) and rules were evaluated."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited: {log.read_text()}")
        try:
            result = _query(url, 'count_over_time(cloudsweep_database_up{job="cloudsweep"}[1m])')
            rules = _get(f"{url}/api/v1/rules")["data"]["groups"]
        except OSError:
            result, rules = [], []
        evaluated = rules and all(
            rule.get("lastEvaluation", "").startswith("2") and rule["health"] != "unknown"
            for group in rules
            for rule in group["rules"]
        )
        if result and float(result[0]["value"][1]) >= 3 and evaluated:
            return
        time.sleep(0.5)
    pytest.fail(f"prometheus did not scrape the metrics in time: {log.read_text()}")


def _query(url: str, expr: str) -> list[Any]:
    body = _get(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


def _substitute(expr: str) -> str:
    return expr.replace("$namespace", ".*").replace("$account", ".*")


def _dashboard_targets() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def _check_every_dashboard_query_returns_data(prometheus: str) -> None:
    targets = _dashboard_targets()
    assert len(targets) >= 20
    empty = [(title, expr) for title, expr in targets if not _query(prometheus, _substitute(expr))]
    assert empty == []


def _check_template_variables_list_the_demo_namespace_and_account(prometheus: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"] if v["type"] == "query"}
    assert set(variables) == {"namespace", "account"}
    for name, variable in variables.items():
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert match is not None, variable["query"]
        selector, label = match.groups()
        values = {s["metric"][label] for s in _query(prometheus, _substitute(selector))}
        assert values, name
    assert ORG in {
        s["metric"]["namespace"] for s in _query(prometheus, "cloudsweep_account_connection_state")
    }


def _check_every_alert_expression_evaluates_and_its_selectors_return_data(prometheus: str) -> None:
    rules = [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]
    firing = {}
    for rule in rules:
        firing[rule["alert"]] = bool(_query(prometheus, rule["expr"]))
        for selector in SELECTOR.findall(rule["expr"]):
            assert _query(prometheus, selector), (rule["alert"], selector)
    # What the demo data must and must not trigger: a cleanup failed a moment ago; all else is fine.
    assert firing["CloudSweepCleanupFailed"]
    assert not firing["CloudSweepScanFailing"]
    assert not firing["CloudSweepAccountDisconnected"]
    assert not firing["CloudSweepScanStale"]
    assert not firing["CloudSweepDatabaseUnreachable"]
    groups = _get(f"{prometheus}/api/v1/rules")["data"]["groups"]
    loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert set(loaded) == {rule["alert"] for rule in rules}
    assert all(rule["health"] == "ok" for rule in loaded.values()), loaded


def _check_the_scrape_passes_promtool_check_metrics(prometheus: str, promtool: str) -> None:
    targets = _get(f"{prometheus}/api/v1/targets")["data"]["activeTargets"]
    (target,) = targets
    with urllib.request.urlopen(target["scrapeUrl"], timeout=10) as response:
        exposition = response.read()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert b"cloudsweep_aws_api_calls_total{" in exposition


def test_dashboard_and_alerts_on_a_real_prometheus(prometheus: str, promtool: str) -> None:
    """One Prometheus and one demo world (about 15 s to build) for all four checks."""
    _check_every_dashboard_query_returns_data(prometheus)
    _check_template_variables_list_the_demo_namespace_and_account(prometheus)
    _check_every_alert_expression_evaluates_and_its_selectors_return_data(prometheus)
    _check_the_scrape_passes_promtool_check_metrics(prometheus, promtool)
