"""Who may do what, enforced by the real API server: the tenant roles of
deploy/base/tenant-roles.yaml bound as docs/install.md (section 6) says, RBAC for the plain verbs,
and CloudSweep's approval webhooks (registered by the operator, called by the API server with the
requesting user) for ``approve`` and ``configure``.

Users are kube-real's: carol (group ``qa``) is a viewer, alice a member, bob an admin, each only
in the test's namespace. Approvals go through ``tests/kube_real/approvals.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.kube_real import approvals
from tests.kube_real.conftest import OperatorProcess, bind, wait_for
from tests.kube_real.server import KubeReal, apply_objects
from tests.kube_real.test_operator import events, path, policy

PLURALS = ("awsaccounts", "scanschedules", "cleanuppolicies", "cleanupapprovals")
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "approve", "configure")
READ = {"get", "list", "watch"}
# docs/install.md, section 6, as RBAC grants it (the webhook adds what each custom verb guards).
# Approving is creating a CleanupApproval; nobody may change one (docs/approvals.md).
ALLOWED = {
    "carol": {p: READ for p in PLURALS},
    "alice": {
        "awsaccounts": READ,
        "scanschedules": READ,
        "cleanuppolicies": READ | {"patch", "update", "approve"},
        "cleanupapprovals": READ | {"create", "delete"},
    },
    "bob": {
        p: READ
        | (
            {"create", "delete"}
            if p == "cleanupapprovals"
            else {"create", "update", "patch", "delete"}
        )
        | ({"approve", "configure"} if p == "cleanuppolicies" else set())
        for p in PLURALS
    },
}
ENTRY = {
    "accountId": "123456789012",
    "region": "us-east-1",
    "resourceId": "eipalloc-0123456789abcdef0",
    "maxMonthlyCost": "5.00",
}


def tenants(kube_real: KubeReal, namespace: str) -> None:
    bind(kube_real, namespace, "cloudsweep-viewer", "group:qa")
    bind(kube_real, namespace, "cloudsweep-member", "user:alice")
    bind(kube_real, namespace, "cloudsweep-admin", "user:bob")


def can(kube_real: KubeReal, user: str, verb: str, plural: str, namespace: str) -> bool:
    """What ``kubectl auth can-i`` asks for the user: a SelfSubjectAccessReview, as them."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "namespace": namespace,
                "verb": verb,
                "group": "cloudsweep.io",
                "resource": plural,
            }
        },
    }
    answer = kube_real.request(
        "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review, user=user
    )
    assert answer.status == 201, answer.body
    return bool(answer.body["status"].get("allowed"))


def patch(kube_real: KubeReal, user: str, namespace: str, name: str, body: dict[str, Any]) -> Any:
    return kube_real.kubectl(
        "patch",
        "cleanuppolicy",
        name,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps(body),
        user=user,
        check=False,
    )


def test_each_tenant_role_can_do_what_the_docs_say_in_its_namespace_and_nothing_elsewhere(
    kube_real: KubeReal, namespace: str, cloudsweep_operator: OperatorProcess
) -> None:
    own, other = namespace, f"{namespace}-other"
    kube_real.kubectl("create", "namespace", other)
    tenants(kube_real, own)

    # RBAC, every verb (CloudSweep's own two included) on every kind, in both namespaces.
    seen = {
        (user, plural, verb): can(kube_real, user, verb, plural, own)
        for user in ALLOWED
        for plural in PLURALS
        for verb in VERBS
    }
    wrong = sorted(k for k, allowed in seen.items() if allowed != (k[2] in ALLOWED[k[0]][k[1]]))
    assert wrong == [], wrong
    elsewhere = sorted(
        (user, plural, verb)
        for user in ALLOWED
        for plural in PLURALS
        for verb in VERBS
        if can(kube_real, user, verb, plural, other)
    )
    assert elsewhere == [], elsewhere

    # What they really do. Bob (admin) creates the policy; the webhook checks his "configure".
    created = kube_real.kubectl(
        "apply", "-n", own, "-f", "-", stdin=json.dumps(policy()), user="bob", check=False
    )
    assert created.returncode == 0, created.stderr
    # Carol reads it, and nothing more: RBAC refuses before any webhook is asked.
    assert (
        kube_real.kubectl("get", "cleanuppolicy", "idle-ips", "-n", own, user="carol").returncode
        == 0
    )
    refused = approvals.approve(kube_real, own, "idle-ips", ENTRY, user="carol")
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr
    # Alice approves (stamped with her name), may change metadata, but not the policy itself:
    # the webhook refuses with the message of docs/install.md.
    approved = approvals.approve(kube_real, own, "idle-ips", ENTRY, user="alice")
    assert approved.returncode == 0, approved.stderr
    assert approvals.approver(kube_real, own, "idle-ips", ENTRY["resourceId"]) == "alice"
    assert (
        patch(
            kube_real, "alice", own, "idle-ips", {"metadata": {"labels": {"seen": "yes"}}}
        ).returncode
        == 0
    )
    edit = patch(kube_real, "alice", own, "idle-ips", {"spec": {"dryRun": True}})
    assert edit.returncode != 0
    assert (
        'admission webhook "authorize-changes.cloudsweep.io" denied the request: alice may not '
        f"make this change to CleanupPolicy {own}/idle-ips: changing spec.dryRun needs verb "
        f"'configure' on cleanuppolicies.cloudsweep.io in namespace {own} (the role "
        "cloudsweep-admin grants it)"
    ) in edit.stderr, edit.stderr
    assert kube_real.get(path(own, "cleanuppolicies", "idle-ips"))["spec"]["dryRun"] is False
    deleted = kube_real.kubectl(
        "delete", "cleanuppolicy", "idle-ips", "-n", own, user="alice", check=False
    )
    assert deleted.returncode != 0 and "forbidden" in deleted.stderr.lower()
    # Bob edits the policy; in the other namespace he can do nothing at all.
    assert patch(kube_real, "bob", own, "idle-ips", {"spec": {"dryRun": True}}).returncode == 0
    elsewhere_create = kube_real.kubectl(
        "apply", "-n", other, "-f", "-", stdin=json.dumps(policy()), user="bob", check=False
    )
    assert elsewhere_create.returncode != 0 and "forbidden" in elsewhere_create.stderr.lower()
    for user in ALLOWED:
        listed = kube_real.kubectl("get", "cleanuppolicies", "-n", other, user=user, check=False)
        assert listed.returncode != 0 and "forbidden" in listed.stderr.lower(), (user, listed)
    assert (
        kube_real.kubectl("delete", "cleanuppolicy", "idle-ips", "-n", own, user="bob").returncode
        == 0
    )


def test_the_api_server_calls_the_approval_webhooks_with_the_requesting_user(
    kube_real: KubeReal, namespace: str, cloudsweep_operator: OperatorProcess
) -> None:
    tenants(kube_real, namespace)
    # A role someone wrote for "editing" policies: patch, but not CloudSweep's approve.
    kube_real.kubectl(
        "create",
        "role",
        "policy-patcher",
        "-n",
        namespace,
        "--verb=get,list,patch",
        "--resource=cleanuppolicies.cloudsweep.io",
    )
    kube_real.kubectl(
        "create",
        "rolebinding",
        "carol-patches",
        "-n",
        namespace,
        "--role=policy-patcher",
        "--user=carol",
    )
    wait_for(
        lambda: can(kube_real, "carol", "patch", "cleanuppolicies", namespace), what="carol's role"
    )
    apply_objects(kube_real, [policy()], "-n", namespace)

    # RBAC lets carol patch policies, but approving is creating a CleanupApproval, which her
    # role does not grant: the API server itself refuses (docs/approvals.md).
    refused = approvals.approve(kube_real, namespace, "idle-ips", ENTRY, user="carol")
    assert refused.returncode != 0
    assert 'cannot create resource "cleanupapprovals"' in refused.stderr, refused.stderr
    assert approvals.approver(kube_real, namespace, "idle-ips", ENTRY["resourceId"]) is None

    # Whatever an admin writes into YAML, the approver recorded is the requesting user: the
    # API server told the webhook, bound to the UID it assigned.
    forged = approvals.forge(kube_real, namespace, "idle-ips", ENTRY, approved_by="the-boss")
    assert forged.returncode == 0, forged.stderr
    assert approvals.approver(kube_real, namespace, "idle-ips", ENTRY["resourceId"]) == "admin"

    # The operator stopped: the persistent, fail-closed record refuses new approvals (one it did
    # not see would never count anyway).
    assert cloudsweep_operator.stop() == 0
    while_down = approvals.approve(
        kube_real, namespace, "idle-ips", {**ENTRY, "resourceId": "eipalloc-3"}, user="alice"
    )
    assert while_down.returncode != 0
    assert 'failed calling webhook "record-approval.cloudsweep.io"' in while_down.stderr, (
        while_down.stderr
    )


@pytest.mark.parametrize("user", ["alice", "bob", "carol"])
def test_no_tenant_role_is_bound_by_default(kube_real: KubeReal, namespace: str, user: str) -> None:
    """Installing CloudSweep grants tenants nothing until an administrator binds a role (the
    aggregation into `view` needs a controller manager, which kube-real does not run)."""
    assert not any(can(kube_real, user, verb, p, namespace) for p in PLURALS for verb in VERBS)


def test_an_approval_written_past_the_webhook_is_ignored(
    kube_real: KubeReal, namespace: str, cloudsweep_operator: OperatorProcess
) -> None:
    """With the webhook's registration removed (only a cluster administrator can), a
    CleanupApproval is stored without a record: the operator never honours it, and says why
    (docs/approvals.md, threat 4). The operator's next start registers the webhook again."""
    tenants(kube_real, namespace)
    apply_objects(kube_real, [policy()], "-n", namespace)
    assert approvals.approve(kube_real, namespace, "idle-ips", ENTRY, user="alice").returncode == 0
    assert approvals.approver(kube_real, namespace, "idle-ips", ENTRY["resourceId"]) == "alice"

    kube_real.kubectl("delete", "validatingwebhookconfiguration", "cloudsweep.io")
    attempts = iter(range(1000))

    def unrecorded() -> str | None:
        entry = {**ENTRY, "resourceId": f"eipalloc-past-{next(attempts)}"}
        created = approvals.approve(kube_real, namespace, "idle-ips", entry, user="alice")
        assert created.returncode == 0, created.stderr
        if approvals.approver(kube_real, namespace, "idle-ips", entry["resourceId"]) is None:
            return created.stdout.split()[0].split("/")[-1]  # "cleanupapproval.../NAME created"
        return None  # the API server still called the webhook (its informer catches up)

    name = wait_for(unrecorded, what="a CleanupApproval stored past the webhook")
    stored = kube_real.get(path(namespace, "cleanupapprovals", name))
    [ready] = [c for c in stored["status"]["conditions"] if c["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "ApprovalIgnored")
    assert "no record of this object" in ready["message"]
    assert "approvedBy" not in stored["status"]
    wait_for(
        lambda: "ApprovalIgnored" in events(kube_real, namespace, "CleanupApproval", name),
        what="the ApprovalIgnored event",
    )
