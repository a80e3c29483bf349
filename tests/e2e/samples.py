"""deploy/samples adapted for the end-to-end tiers: pointed at moto's account, and a dry-run policy
that matches a volume made a moment ago."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"  # moto's default account
ROLE_NAME = "CloudSweep"
AUTO_CLEANUP_ANNOTATION = "cloudsweep.io/auto-cleanup"  # on the team's namespace
PLURALS = {
    "AwsAccount": "awsaccounts",
    "ScanSchedule": "scanschedules",
    "CleanupPolicy": "cleanuppolicies",
}


def adapted_samples() -> list[dict[str, Any]]:
    docs = []
    for name in ("awsaccount", "scanschedule", "cleanuppolicy"):
        doc = yaml.safe_load((REPO / "deploy" / "samples" / f"{name}.yaml").read_text())
        spec = doc["spec"]
        if doc["kind"] == "AwsAccount":
            spec.update(accountId=ACCOUNT, roleArn=f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}")
            spec["regions"] = ["us-east-1"]
            # The account opts in to unattended cleanup, so the dry-run policy really plans and
            # dry-runs its cheap findings (and records them) instead of waiting for approvals.
            spec["autoCleanupEnabled"] = True
        elif doc["kind"] == "ScanSchedule":
            spec.update(regions=["us-east-1"], resourceTypes=["ebs-volume"])
            spec["parameters"] = {"ebs-volume": {"min_age_days": 0}}
        else:
            # A volume without a snapshot is a medium risk (cleanup snapshots it first).
            spec["rules"].update(
                minAgeDays=0, minConfidence=1, maxRiskLevel="medium", regions=["us-east-1"]
            )
            spec.update(dryRun=True, approvals=[])
            spec["rules"].pop("excludeTags", None)
        docs.append(doc)
    return docs


def apply_to(cluster: Any, namespace: str, account: dict[str, Any] | None = None) -> None:
    """Create the namespace, opted in to unattended cleanup by its administrator (docs/install.md),
    and the adapted samples in it, on KMock's emulator (``tests.handlers.conftest.Cluster``).
    ``account`` overrides the AwsAccount's spec (another seeded account)."""
    cluster.request(
        "POST",
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "uid": f"uid-{namespace}",
                "annotations": {AUTO_CLEANUP_ANNOTATION: "enabled"},
            },
        },
    )
    for doc in adapted_samples():
        spec = doc["spec"]
        if doc["kind"] == "AwsAccount" and account:
            spec = {**spec, **account}
        meta = {k: v for k, v in doc["metadata"].items() if k != "name"}
        cluster.create(
            PLURALS[doc["kind"]], doc["kind"], namespace, doc["metadata"]["name"], spec, **meta
        )
