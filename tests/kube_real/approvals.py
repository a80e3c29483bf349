"""How a user approves a pending cleanup through the real API server, in one place.

Today an approval is an entry a user adds to a CleanupPolicy's ``spec.approvals`` (RBAC: patch;
CloudSweep's validating webhook: the custom verb ``approve``); the mutating webhook stamps it
with the requesting user and signs it. If approvals change shape (objects of their own), change
``approve``, ``approver``, ``forge`` and ``webhooks_called`` here; the tests call only these.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from typing import Any

from tests.kube_real.server import KubeReal

APPROVAL_FIELDS = ("accountId", "region", "resourceId", "maxMonthlyCost")


def _approvals(kube_real: KubeReal, namespace: str, policy: str) -> list[dict[str, Any]]:
    path = f"/apis/cloudsweep.io/v1alpha1/namespaces/{namespace}/cleanuppolicies/{policy}"
    return list((kube_real.get(path) or {}).get("spec", {}).get("approvals") or [])


def approve(
    kube_real: KubeReal,
    namespace: str,
    policy: str,
    pending: Mapping[str, Any],
    user: str,
) -> subprocess.CompletedProcess[str]:
    """``user`` approves one entry of the policy's ``status.pendingApprovals`` with kubectl, as
    the sample's comment tells users to (copied into ``spec.approvals``). Not checked: see
    ``returncode`` and ``stderr`` (the server's refusal, as users see it)."""
    entry = {k: pending[k] for k in APPROVAL_FIELDS}
    entry["comment"] = f"approved by {user} in a test"
    approvals = [*_approvals(kube_real, namespace, policy), entry]
    return kube_real.kubectl(
        "patch",
        "cleanuppolicy",
        policy,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"approvals": approvals}}),
        user=user,
        check=False,
    )


def approver(kube_real: KubeReal, namespace: str, policy: str, resource_id: str) -> str | None:
    """Who the stored approval of ``resource_id`` names (stamped by CloudSweep), if any."""
    for entry in _approvals(kube_real, namespace, policy):
        if entry.get("resourceId") == resource_id:
            return str(entry.get("approvedBy") or "") or None
    return None


def forge(
    kube_real: KubeReal, namespace: str, policy: str, pending: Mapping[str, Any], approved_by: str
) -> subprocess.CompletedProcess[str]:
    """An admin writes an approval naming someone else as its approver (a YAML edit)."""
    entry = {k: pending[k] for k in APPROVAL_FIELDS}
    entry.update(approvedBy=approved_by, approvedAt="2026-01-01T00:00:00Z")
    approvals = [*_approvals(kube_real, namespace, policy), entry]
    return kube_real.kubectl(
        "patch",
        "cleanuppolicy",
        policy,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"approvals": approvals}}),
        check=False,
    )


def webhooks_called(kube_real: KubeReal) -> bool:
    """Whether the API server calls the operator's approval webhooks yet: kopf registers them
    after /healthz answers, and the CRD server sees new configurations through an informer a
    moment later. A server-side dry run (nothing stored) whose approval comes back stamped."""
    probe = {
        "apiVersion": "cloudsweep.io/v1alpha1",
        "kind": "CleanupPolicy",
        "metadata": {"name": "webhook-probe", "namespace": "default"},
        "spec": {
            "resourceType": "elastic-ip",
            "action": "release",
            "accounts": ["probe"],
            "approvals": [
                {
                    "accountId": "123456789012",
                    "region": "us-east-1",
                    "resourceId": "eipalloc-probe",
                    "maxMonthlyCost": "1.00",
                }
            ],
        },
    }
    answer = kube_real.request(
        "POST",
        "/apis/cloudsweep.io/v1alpha1/namespaces/default/cleanuppolicies",
        probe,
        params={"dryRun": "All"},
    )
    entries = (answer.body or {}).get("spec", {}).get("approvals") or [{}]
    return answer.status == 201 and bool(entries[0].get("approvedBy"))
