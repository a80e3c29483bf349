"""The alert rules: valid for promtool, unit-tested with ``promtool test rules``, and the
PrometheusRule wrapping them says exactly the same.

``python -m tests.metrics.test_rules`` regenerates deploy/prometheus/cloudsweep-rules.yaml from
deploy/prometheus/rules.yaml.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = DEPLOY / "rules.yaml"
PROMETHEUS_RULE = DEPLOY / "cloudsweep-rules.yaml"
RULES_TEST = DEPLOY / "tests" / "rules-test.yaml"
HEADER = (
    "# The alerts of rules.yaml as a PrometheusRule (Prometheus Operator). Generated from rules.yaml;\n"
    "# tests/metrics/test_rules.py fails when the two differ. Regenerate after editing rules.yaml:\n"
    "#   python -m tests.metrics.test_rules\n"
)


def prometheus_rule() -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "cloudsweep",
            "labels": {
                "app.kubernetes.io/name": "cloudsweep",
                "app.kubernetes.io/component": "alerts",
            },
        },
        "spec": yaml.safe_load(RULES.read_text()),
    }


def test_rules_pass_promtool_check(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_pass_their_unit_tests(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", str(RULES_TEST)],
        capture_output=True,
        text=True,
        check=False,
        cwd=RULES_TEST.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert alerts == tested


def test_the_prometheus_rule_wraps_the_same_rules() -> None:
    assert yaml.safe_load(PROMETHEUS_RULE.read_text()) == prometheus_rule(), (
        "deploy/prometheus/cloudsweep-rules.yaml differs from rules.yaml: "
        "run python -m tests.metrics.test_rules"
    )


def test_every_alert_has_a_severity_a_summary_and_a_description() -> None:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


if __name__ == "__main__":
    PROMETHEUS_RULE.write_text(
        HEADER + yaml.safe_dump(prometheus_rule(), sort_keys=False, width=100)
    )
    print(f"wrote {PROMETHEUS_RULE}")
