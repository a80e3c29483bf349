"""How a user approves a pending cleanup through the real API server, in one place.

An approval is a CleanupApproval object that a user creates with their own credentials (RBAC:
``create cleanupapprovals``, granted by the tenant roles). The API server calls the operator's
fail-closed validating webhook ``record-approval`` with the object (its UID assigned) and the
requesting user; the webhook records that user in PostgreSQL, and the operator honours the object
only if the record matches it, writing the approver to ``status.approvedBy`` (docs/approvals.md).
The tests call only the functions here.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from tests.kube_real.server import KubeReal

GV = "cloudsweep.io/v1alpha1"
APPROVAL_FIELDS = ("accountId", "region", "resourceId", "maxMonthlyCost")
WEBHOOK = "record-approval.cloudsweep.io"
CONFIGURATION = "cloudsweep.io"  # kopf's managed ValidatingWebhookConfiguration
# The webhook's answer while the operator has not read the policy yet (a user tries again).
_NOT_READ_YET = "operator has not read it yet"


def approval_object(
    namespace: str, policy: str, pending: Mapping[str, Any], user: str, **extra: Any
) -> dict[str, Any]:
    """A CleanupApproval of one ``status.pendingApprovals`` entry, as the sample shows it."""
    slug = re.sub(r"[^a-z0-9-]+", "-", f"{policy}-{pending['resourceId']}-{user}".lower())
    return {
        "apiVersion": GV,
        "kind": "CleanupApproval",
        "metadata": {"name": slug[:200].strip("-"), "namespace": namespace},
        "spec": {
            "policy": policy,
            **{k: pending[k] for k in APPROVAL_FIELDS},
            "comment": f"approved by {user} in a test",
        },
        **extra,
    }


def approve(
    kube_real: KubeReal,
    namespace: str,
    policy: str,
    pending: Mapping[str, Any],
    user: str,
    **extra: Any,
) -> subprocess.CompletedProcess[str]:
    """``user`` approves one entry of the policy's ``status.pendingApprovals``: ``kubectl
    create`` of a CleanupApproval with their own token, as docs/approvals.md tells users to.
    Not checked: see ``returncode`` and ``stderr`` (the server's refusal, as users see it).
    Retried only while the webhook says the operator has not read the policy yet."""
    manifest = json.dumps(approval_object(namespace, policy, pending, user, **extra))
    deadline = time.monotonic() + 30
    while True:
        result = kube_real.kubectl(
            "create", "-n", namespace, "-f", "-", stdin=manifest, user=user, check=False
        )
        if _NOT_READ_YET not in result.stderr or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def approvals_of(
    kube_real: KubeReal, namespace: str, policy: str, resource_id: str
) -> list[dict[str, Any]]:
    listed = kube_real.get(f"/apis/{GV}/namespaces/{namespace}/cleanupapprovals") or {}
    return [
        item
        for item in listed.get("items") or []
        if item["spec"]["policy"] == policy and item["spec"]["resourceId"] == resource_id
    ]


def _ready(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), None)


def approver(
    kube_real: KubeReal, namespace: str, policy: str, resource_id: str, timeout: float = 60
) -> str | None:
    """Who the operator says approved ``resource_id`` (``status.approvedBy``, from the
    webhook's record), once it has judged the approval; None if there is no approval or the
    operator ignores it (ApprovalIgnored)."""
    deadline = time.monotonic() + timeout
    while True:
        found = approvals_of(kube_real, namespace, policy, resource_id)
        judged = [o for o in found if _ready(o)]
        if not found or judged or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    honoured = [
        str(o["status"].get("approvedBy"))
        for o in judged
        if (_ready(o) or {}).get("reason") != "ApprovalIgnored" and o["status"].get("approvedBy")
    ]
    return honoured[0] if honoured else None


def webhook_url(kube_real: KubeReal) -> str:
    """Where the API server calls ``record-approval`` (kopf's registration, by URL here)."""
    configuration = kube_real.get(
        f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{CONFIGURATION}"
    )
    [hook] = [w for w in configuration["webhooks"] if w["name"] == WEBHOOK]
    return str(hook["clientConfig"]["url"])


def direct_post(
    kube_real: KubeReal, obj: Mapping[str, Any], username: str, uid: str | None = None
) -> dict[str, Any]:
    """An AdmissionReview POSTed straight to the webhook by whoever reaches it (not the API
    server): the object with a UID of the caller's choosing and any user name. The answer."""
    forged = json.loads(json.dumps(obj))
    meta = forged["metadata"]
    meta.update(
        uid=uid or str(uuid.uuid4()),
        creationTimestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "cloudsweep.io", "version": "v1alpha1", "kind": "CleanupApproval"},
            "resource": {
                "group": "cloudsweep.io",
                "version": "v1alpha1",
                "resource": "cleanupapprovals",
            },
            "name": meta["name"],
            "namespace": meta["namespace"],
            "operation": "CREATE",
            "userInfo": {"username": username, "uid": f"u-{username}", "groups": []},
            "object": forged,
            "oldObject": None,
            "dryRun": False,
        },
    }
    request = urllib.request.Request(
        webhook_url(kube_real), data=json.dumps(review).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    context = ssl.create_default_context(cafile=str(kube_real.ca))
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return dict(json.loads(response.read())["response"])


@contextmanager
def webhook_removed(kube_real: KubeReal) -> Iterator[None]:
    """An administrator deletes the validating webhook configuration (as admin), and puts it
    back afterwards. Yields once the API server stops calling it (its informer lags)."""
    url = f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{CONFIGURATION}"
    saved = kube_real.get(url)
    assert saved is not None, "the operator registered no validating webhook configuration"
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
        saved["metadata"].pop(key, None)
    kube_real.kubectl("delete", "validatingwebhookconfiguration", CONFIGURATION)
    try:
        yield
    finally:
        answer = kube_real.request(
            "POST", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", saved
        )
        assert answer.status in (201, 409), (answer.status, answer.body)


def forge(
    kube_real: KubeReal, namespace: str, policy: str, pending: Mapping[str, Any], approved_by: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Issue 11's bypass: a stamp obtained by a direct POST to the webhook (a UID of the
    caller's choosing, ``approved_by`` as the user), then the object written straight to the
    API as admin while the webhook configuration is removed, so the API server calls no
    webhook. Returns the webhook's answer to the direct POST and the stored object."""
    obj = approval_object(namespace, policy, pending, "forger")
    answer = direct_post(kube_real, obj, approved_by)
    collection = f"/apis/{GV}/namespaces/{namespace}/cleanupapprovals"
    with webhook_removed(kube_real):
        deadline = time.monotonic() + 60
        while True:
            # While the API server still calls the webhook, a dry run is recorded by nobody
            # and answered by the webhook: wait until a dry run no longer reaches it.
            if not webhooks_called(kube_real, namespace=namespace):
                created = kube_real.request("POST", collection, obj)
                break
            assert time.monotonic() < deadline, "the API server kept calling the webhook"
            time.sleep(0.5)
    assert created.status == 201, (created.status, created.body)
    return answer, dict(created.body)


def webhooks_called(kube_real: KubeReal, namespace: str = "default") -> bool:
    """Whether the API server calls the operator's ``record-approval`` webhook: kopf registers
    it after /healthz answers, and the API server sees new configurations through an informer
    a moment later. A server-side dry run (nothing stored, nothing recorded) of an approval for
    a policy that does not exist: only the webhook refuses it, the schema and RBAC let it pass."""
    probe = {
        "apiVersion": GV,
        "kind": "CleanupApproval",
        "metadata": {"name": "webhook-probe", "namespace": namespace},
        "spec": {
            "policy": "webhook-probe-no-such-policy",
            "accountId": "123456789012",
            "region": "us-east-1",
            "resourceId": "eipalloc-probe",
            "maxMonthlyCost": "1.00",
        },
    }
    answer = kube_real.request(
        "POST",
        f"/apis/{GV}/namespaces/{namespace}/cleanupapprovals",
        probe,
        params={"dryRun": "All"},
    )
    return answer.status != 201 and WEBHOOK in json.dumps(answer.body)
