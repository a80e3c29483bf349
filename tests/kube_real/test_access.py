"""Who may do what, enforced by the real API server: the tenant roles of
deploy/base/tenant-roles.yaml bound as docs/install.md (section 6) says, RBAC for the plain verbs,
and CloudSweep's approval webhooks (registered by the operator, called by the API server with the
requesting user) for ``approve`` and ``configure``; approvals are CleanupApproval objects, which
RBAC alone lets a user create, and the fail-closed webhook ``record-approval`` records who did.

Users are kube-real's: carol (group ``qa``) is a viewer, alice a member, bob an admin, each only
in the test's namespace. Approvals go through ``tests/kube_real/approvals.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cloudsweep.demo import world as demo_world
from tests.kube_real import approvals, moto_calls
from tests.kube_real.conftest import OperatorProcess, bind, condition, wait_for
from tests.kube_real.server import KubeReal, apply_objects
from tests.kube_real.test_operator import (
    account,
    addresses,
    events,
    path,
    policy,
    run_now,
    schedule,
    settled,
)

PLURALS = ("awsaccounts", "scanschedules", "cleanuppolicies", "cleanupapprovals")
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "approve", "configure")
READ = {"get", "list", "watch"}
# docs/install.md, section 6, as RBAC grants it (deploy/base/tenant-roles.yaml): approving is
# creating a CleanupApproval, withdrawing is deleting it; nobody may change one. The custom verbs
# on cleanuppolicies are what the authorize-changes webhook asks RBAC about.
ALLOWED = {
    "carol": {p: READ for p in PLURALS},
    "alice": {
        "awsaccounts": READ,
        "scanschedules": READ,
        "cleanuppolicies": READ | {"patch", "update", "approve"},
        "cleanupapprovals": READ | {"create", "delete"},
    },
    "bob": {
        **{
            p: READ
            | {"create", "update", "patch", "delete"}
            | ({"approve", "configure"} if p == "cleanuppolicies" else set())
            for p in ("awsaccounts", "scanschedules", "cleanuppolicies")
        },
        "cleanupapprovals": READ | {"create", "delete"},
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
    # Alice approves (the webhook records her name), may withdraw (delete) her approval but
    # never change it; she may change the policy's metadata, but not the policy itself: the
    # webhook refuses with the message of docs/install.md.
    approved = approvals.approve(kube_real, own, "idle-ips", ENTRY, user="alice")
    assert approved.returncode == 0, approved.stderr
    assert approvals.approver(kube_real, own, "idle-ips", ENTRY["resourceId"]) == "alice"
    [approval] = approvals.approvals_of(kube_real, own, "idle-ips", ENTRY["resourceId"])
    name = approval["metadata"]["name"]
    for user in ("alice", "bob"):
        changed = kube_real.kubectl(
            "patch",
            "cleanupapproval",
            name,
            "-n",
            own,
            "--type=merge",
            "-p",
            json.dumps({"spec": {"maxMonthlyCost": "500.00"}}),
            user=user,
            check=False,
        )
        assert changed.returncode != 0 and "forbidden" in changed.stderr.lower(), changed
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
    elsewhere_approve = approvals.approve(kube_real, other, "idle-ips", ENTRY, user="alice")
    assert elsewhere_approve.returncode != 0 and "forbidden" in elsewhere_approve.stderr.lower()
    for user in ALLOWED:
        for plural in ("cleanuppolicies", "cleanupapprovals"):
            listed = kube_real.kubectl("get", plural, "-n", other, user=user, check=False)
            assert listed.returncode != 0 and "forbidden" in listed.stderr.lower(), (user, listed)
    withdrawn = kube_real.kubectl("delete", "cleanupapproval", name, "-n", own, user="alice")
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert (
        kube_real.kubectl("delete", "cleanuppolicy", "idle-ips", "-n", own, user="bob").returncode
        == 0
    )


def test_the_api_server_refuses_approvals_by_rbac_and_the_webhook_records_the_requesting_user(
    kube_real: KubeReal, namespace: str, cloudsweep_operator: OperatorProcess
) -> None:
    tenants(kube_real, namespace)
    # A role someone wrote for "editing" policies: patch, but no CleanupApprovals.
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

    # Without the approve role (create cleanupapprovals) the API server itself refuses: RBAC,
    # before any webhook is asked; nothing is stored.
    refused = approvals.approve(kube_real, namespace, "idle-ips", ENTRY, user="carol")
    assert refused.returncode != 0
    assert (
        'cleanupapprovals.cloudsweep.io is forbidden: User "carol" cannot create resource '
        f'"cleanupapprovals" in API group "cloudsweep.io" in the namespace "{namespace}"'
    ) in refused.stderr, refused.stderr
    assert approvals.approvals_of(kube_real, namespace, "idle-ips", ENTRY["resourceId"]) == []
    # The retired in-policy field is no way around it: writing spec.approvals still needs the
    # custom verb approve (authorize-changes), which her patch role lacks.
    retired = patch(kube_real, "carol", namespace, "idle-ips", {"spec": {"approvals": [ENTRY]}})
    assert retired.returncode != 0
    assert (
        f"carol may not make this change to CleanupPolicy {namespace}/idle-ips: changing "
        "spec.approvals (1 added) needs verb 'approve'"
    ) in retired.stderr, retired.stderr

    # Whatever approver the body names, the record is the requesting user's: there is no
    # approver field, and status in a create is dropped by the server.
    approved = approvals.approve(
        kube_real,
        namespace,
        "idle-ips",
        ENTRY,
        user="alice",
        status={"approvedBy": "the-boss"},
    )
    assert approved.returncode == 0, approved.stderr
    assert approvals.approver(kube_real, namespace, "idle-ips", ENTRY["resourceId"]) == "alice"
    # A dry run reaches the webhook and records nothing (side effects: none on dry runs).
    dry = {**ENTRY, "resourceId": "eipalloc-0dry0000000000000"}
    manifest = json.dumps(approvals.approval_object(namespace, "idle-ips", dry, "alice"))
    dry_run = kube_real.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-", stdin=manifest, user="alice"
    )
    assert dry_run.returncode == 0
    assert approvals.approvals_of(kube_real, namespace, "idle-ips", dry["resourceId"]) == []

    # The operator stopped: the persistent, fail-closed webhook refuses every approval, so no
    # approval exists that the webhook did not see.
    assert cloudsweep_operator.stop() == 0
    while_down = approvals.approve(
        kube_real,
        namespace,
        "idle-ips",
        {**ENTRY, "resourceId": "eipalloc-0000000000000003"},
        user="alice",
    )
    assert while_down.returncode != 0
    assert f'failed calling webhook "{approvals.WEBHOOK}"' in while_down.stderr, while_down.stderr
    assert (
        approvals.approvals_of(kube_real, namespace, "idle-ips", "eipalloc-0000000000000003") == []
    )


def test_a_stamp_from_a_direct_post_written_past_the_webhook_is_ignored(
    kube_real: KubeReal,
    namespace: str,
    cloudsweep_operator: OperatorProcess,
    world: demo_world.DemoWorld,
    moto_endpoint: str,
) -> None:
    """Issue 11, point 3, on the real server: whoever reaches the webhook gets its "allowed"
    for any user name and a UID of their choosing, and writes the object past the webhook (its
    configuration removed by an administrator). The operator ignores it (Event and condition
    ApprovalIgnored), the finding stays pending, and moto receives no mutating call."""
    ns = namespace
    tenants(kube_real, ns)
    apply_objects(kube_real, [account(world), schedule(), policy()], "-n", ns)
    wait_for(
        lambda: settled(kube_real.get(path(ns, "awsaccounts", "prod")), "Connected", "Ready"),
        what="the account connected",
    )
    run_now(kube_real, ns, "first")
    status = wait_for(
        lambda: kube_real.get(path(ns, "cleanuppolicies", "idle-ips"))["status"].get(
            "pendingApprovals"
        ),
        what="pending approvals",
    )
    pending = status[0]
    allocation = pending["resourceId"]

    answer, stored = approvals.forge(kube_real, ns, "idle-ips", pending, approved_by="alice")
    # The webhook cannot tell a direct call from the API server's (docs/approvals.md, threat 3).
    assert answer["allowed"] is True, answer
    name = stored["metadata"]["name"]
    ignored = wait_for(
        lambda: (
            (c := condition(kube_real.get(path(ns, "cleanupapprovals", name)), "Ready"))
            and c["reason"] == "ApprovalIgnored"
            and c
        ),
        what="the forged approval ignored",
    )
    assert ignored["status"] == "False"
    assert "no record of this object" in ignored["message"], ignored
    assert "ApprovalIgnored" in events(kube_real, ns, "CleanupApproval", name)
    assert approvals.approver(kube_real, ns, "idle-ips", allocation) is None
    assert "approvedBy" not in (kube_real.get(path(ns, "cleanupapprovals", name)) or {}).get(
        "status", {}
    )

    # Alice properly approves another address (the control: the run happens, the recorder
    # sees it). The cleanup run after the next scan releases that one, and no mutating call
    # names the forged one; it still waits for an approval.
    good = next(p for p in status if p["resourceId"] != allocation)
    approved = approvals.approve(kube_real, ns, "idle-ips", good, user="alice")
    assert approved.returncode == 0, approved.stderr
    assert approvals.approver(kube_real, ns, "idle-ips", good["resourceId"]) == "alice"
    with moto_calls.recorded(moto_endpoint) as calls:
        run_now(kube_real, ns, "second")
        after = wait_for(
            lambda: (
                (s := kube_real.get(path(ns, "cleanuppolicies", "idle-ips"))["status"])["executed"]
                >= 1
                and s
            ),
            what="the properly approved address released",
        )
    released = [
        c for c in calls if c.operation == "ReleaseAddress" and c.params.get("DryRun") != ["true"]
    ]
    assert [c.params.get("AllocationId") for c in released] == [[good["resourceId"]]], calls
    assert [c for c in calls if c.mutating and c.names(allocation)] == [], calls
    assert after["executed"] == 1 and after["failed"] == 0
    assert allocation in {p["resourceId"] for p in after["pendingApprovals"]}
    assert addresses(moto_endpoint, world, allocation)
    assert addresses(moto_endpoint, world, good["resourceId"]) == []


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
