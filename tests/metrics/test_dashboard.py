"""The Grafana dashboard's shape and its ConfigMap for the sidecar (``kubectl kustomize``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARD = GRAFANA / "cloudsweep-dashboard.json"


def test_every_panel_is_scoped_by_the_namespace_and_account_variables() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "account"} <= names
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            if "cloudsweep_aws_api_" in expr:
                continue  # per-process counters carry no namespace or account
            for selector in re.findall(r"cloudsweep_[a-z_]+\{[^}]*\}", expr):
                assert 'namespace=~"$namespace"' in selector, (panel["title"], selector)
                assert 'account=~"$account"' in selector, (panel["title"], selector)


def test_panel_ids_are_unique_and_titles_present() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert all(p["title"] for p in panels)


def test_kustomize_builds_a_sidecar_configmap_holding_the_dashboard() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (with kustomize built in) is needed to build deploy/grafana")
    built = subprocess.run(
        [kubectl, "kustomize", str(GRAFANA)], capture_output=True, text=True, check=True
    ).stdout
    (config_map,) = list(yaml.safe_load_all(built))
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["cloudsweep-dashboard.json"]) == json.loads(
        DASHBOARD.read_text()
    )
