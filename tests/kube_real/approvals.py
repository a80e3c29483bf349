"""How a user approves a pending cleanup through the real API server, in one place.

An approval is a CleanupApproval object the user creates with kubectl under their own
credentials (RBAC: create cleanupapprovals); CloudSweep's validating webhook ``record-approval``
records the requesting user, bound to the object's UID, and the operator writes it to
``status.approvedBy`` (docs/approvals.md). The tests call only these functions.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from tests.kube_real.server import KubeReal

APPROVAL_FIELDS = ("accountId", "region", "resourceId", "maxMonthlyCost")


def _objects(kube_real: KubeReal, namespace: str) -> list[dict[str, Any]]:
    path = f"/apis/cloudsweep.io/v1alpha1/namespaces/{namespace}/cleanupapprovals"
    return list((kube_real.get(path) or {}).get("items") or [])


def _manifest(namespace: str, policy: str, pending: Mapping[str, Any], comment: str) -> str:
    return json.dumps(
        {
            "apiVersion": "cloudsweep.io/v1alpha1",
            "kind": "CleanupApproval",
            "metadata": {"generateName": f"{policy}-", "namespace": namespace},
            "spec": {
                "policy": policy,
                **{k: pending[k] for k in APPROVAL_FIELDS},
                "comment": comment,
            },
        }
    )


def approve(
    kube_real: KubeReal,
    namespace: str,
    policy: str,
    pending: Mapping[str, Any],
    user: str,
) -> subprocess.CompletedProcess[str]:
    """``user`` approves one entry of the policy's ``status.pendingApprovals`` with kubectl, as
    deploy/samples/cleanupapproval.yaml tells users to. Not checked: see ``returncode`` and
    ``stderr`` (the server's refusal, as users see it). A policy created a moment ago may not
    be known to the operator yet (the webhook says so, "try again shortly"): retried for 30 s."""
    deadline = time.monotonic() + 30
    while True:
        result = kube_real.kubectl(
            "create",
            "-f",
            "-",
            stdin=_manifest(namespace, policy, pending, f"approved by {user} in a test"),
            user=user,
            check=False,
        )
        if "has not read it yet" not in result.stderr or time.monotonic() > deadline:
            return result
        time.sleep(1)


def approver(
    kube_real: KubeReal, namespace: str, policy: str, resource_id: str, wait: float = 30
) -> str | None:
    """Who CloudSweep recorded as the approver of ``resource_id`` under ``policy``, if any: the
    ``status.approvedBy`` the operator writes (from the webhook's record) once it honours the
    object; None when no such object exists or the operator does not honour it."""
    deadline = time.monotonic() + wait
    while True:
        found = [
            o
            for o in _objects(kube_real, namespace)
            if o["spec"].get("resourceId") == resource_id and o["spec"].get("policy") == policy
        ]
        if not found:
            return None
        names = [str((o.get("status") or {}).get("approvedBy") or "") for o in found]
        reasons = {
            c.get("reason")
            for o in found
            for c in (o.get("status") or {}).get("conditions") or []
            if c.get("type") == "Ready"
        }
        if any(names):
            return next(n for n in names if n)
        if "ApprovalIgnored" in reasons or time.monotonic() > deadline:
            return None
        time.sleep(0.5)


def forge(
    kube_real: KubeReal, namespace: str, policy: str, pending: Mapping[str, Any], approved_by: str
) -> subprocess.CompletedProcess[str]:
    """An admin tries to approve in someone else's name: there is no approver field to write, so
    the nearest is a comment; the record names the requesting user whatever the YAML says."""
    deadline = time.monotonic() + 30
    while True:
        result = kube_real.kubectl(
            "create",
            "-f",
            "-",
            stdin=_manifest(namespace, policy, pending, f"approvedBy: {approved_by}"),
            check=False,
        )
        if "has not read it yet" not in result.stderr or time.monotonic() > deadline:
            return result
        time.sleep(1)


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
