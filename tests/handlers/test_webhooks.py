"""How the API server is told to reach the webhook: a Service reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudsweep.handlers import webhooks


def test_service_reference_takes_the_pods_namespace_and_port_443(tmp_path: Path) -> None:
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("tools\n")
    assert webhooks.service_reference("cloudsweep-webhook", namespace_file) == {
        "namespace": "tools",
        "name": "cloudsweep-webhook",
        "port": 443,
    }
    assert webhooks.service_reference("ops/hook:8443", namespace_file) == {
        "namespace": "ops",
        "name": "hook",
        "port": 8443,
    }


def test_service_reference_outside_a_pod_needs_a_namespace(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="write it as namespace/cloudsweep-webhook"):
        webhooks.service_reference("cloudsweep-webhook", tmp_path / "missing")
