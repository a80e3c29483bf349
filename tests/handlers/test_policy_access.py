"""Who may change a CleanupPolicy: the validating webhook checks the tenant verbs ``approve`` and
``configure`` with SubjectAccessReviews (deploy/base/tenant-roles.yaml, docs/install.md § 6).

The webhook is called over HTTP with AdmissionReview bodies, as the API server calls it; the
emulated API server answers the reviews from a table (``access_reviews``)."""

from __future__ import annotations

import base64
import copy
import json
import os
import time
import urllib.request
from typing import Any

import jsonpatch  # type: ignore[import-untyped]
import pytest

from cloudsweep.handlers import cleanuppolicies
from tests import rbac

from .conftest import AccessReviews, Cluster, wait_for

NS = "team-a"
MEMBER = {"username": "maria@example.com", "uid": "u-maria", "groups": ["payments-leads"]}
ADMIN = {"username": "ada@example.com", "uid": "u-ada", "groups": ["finops"]}
VIEWER = {"username": "victor@example.com", "uid": "u-victor", "groups": ["payments"]}
OPERATOR = {
    "username": "system:serviceaccount:cloudsweep:cloudsweep",
    "uid": "u-operator",
    "groups": ["system:serviceaccounts", "system:serviceaccounts:cloudsweep"],
}


def policy(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cloudsweep.io/v1alpha1",
        "kind": "CleanupPolicy",
        "metadata": {"name": "ips", "namespace": NS, "uid": "uid-ips", "resourceVersion": "7"},
        "spec": {
            "resourceType": "elastic-ip",
            "action": "release",
            "accounts": ["prod"],
            "rules": {"minAgeDays": 7, "minConfidence": 80},
            "autoExecute": False,
            "dryRun": True,
            "maxMonthlyCost": "10.00",
            "requireApprovalAbove": "50.00",
            **spec,
        },
    }


def approval(resource_id: str = "eipalloc-1", cost: str = "4.00") -> dict[str, Any]:
    return {
        "accountId": "123456789012",
        "region": "us-east-1",
        "resourceId": resource_id,
        "maxMonthlyCost": cost,
    }


def review(
    port: int,
    webhook: str,
    obj: dict[str, Any],
    old: dict[str, Any] | None,
    userinfo: dict[str, Any],
) -> dict[str, Any]:
    """The webhook's answer (``response``) to an AdmissionReview, as the API server sends it."""
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "req-1",
            "kind": {"group": "cloudsweep.io", "version": "v1alpha1", "kind": "CleanupPolicy"},
            "resource": {
                "group": "cloudsweep.io",
                "version": "v1alpha1",
                "resource": "cleanuppolicies",
            },
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"],
            "operation": "UPDATE" if old else "CREATE",
            "userInfo": userinfo,
            "object": obj,
            "oldObject": old,
            "dryRun": False,
        },
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/{webhook}", data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read())["response"])


def authorize(
    port: int, obj: dict[str, Any], old: dict[str, Any] | None, userinfo: dict[str, Any]
) -> dict[str, Any]:
    return review(port, "authorize-changes", obj, old, userinfo)


def admitted(
    port: int, obj: dict[str, Any], old: dict[str, Any] | None, userinfo: dict[str, Any]
) -> dict[str, Any]:
    """What the API server would store: the mutating webhook's patch applied, then validated."""
    stamped = review(port, "stamp-approvals", obj, old, userinfo)
    assert stamped["allowed"] is True
    if stamped.get("patch"):
        obj = jsonpatch.apply_patch(obj, json.loads(base64.b64decode(stamped["patch"])))
    answer = authorize(port, obj, old, userinfo)
    assert answer["allowed"] is True, answer
    return obj


def edited(obj: dict[str, Any], **spec: Any) -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    changed["spec"].update(spec)
    return changed


def verbs(reviews: AccessReviews) -> list[tuple[str, str]]:
    return [
        (r["spec"]["user"], r["spec"]["resourceAttributes"]["verb"]) for r in reviews.received or []
    ]


@pytest.fixture
def webhook(cluster: Cluster, operator: Any, webhook_port: int) -> int:
    """The operator's webhook port, once kopf serves it (after its resources are scanned)."""

    def serving() -> bool:
        try:
            authorize(webhook_port, policy(), policy(), OPERATOR)
        except OSError:
            return False
        return True

    wait_for(serving, what="the admission webhook")
    return webhook_port


@pytest.fixture
def roles(access_reviews: AccessReviews) -> AccessReviews:
    """The tenant roles bound as docs/install.md § 6 binds them, by group."""
    access_reviews.allow("group:payments-leads", "approve", NS)  # cloudsweep-member
    access_reviews.allow("group:finops", "approve", NS)  # cloudsweep-admin
    access_reviews.allow("group:finops", "configure", NS)
    return access_reviews


# --- which verbs a change needs (no webhook) ---------------------------------------------------


def test_needed_verbs_name_what_changed() -> None:
    base = policy(approvals=[approval()])
    assert cleanuppolicies.needed_verbs(base, None) == {
        "configure": "creating a CleanupPolicy",
        "approve": "changing spec.approvals (1 added)",
    }
    assert cleanuppolicies.needed_verbs(policy(), None) == {"configure": "creating a CleanupPolicy"}
    assert cleanuppolicies.needed_verbs(base, base) == {}
    metadata_only = copy.deepcopy(base)
    metadata_only["metadata"]["finalizers"] = ["cloudsweep.io/finalizer"]
    metadata_only["metadata"]["annotations"] = {"cloudsweep.io/last-handled-configuration": "{}"}
    metadata_only["status"] = {"matched": 3}
    assert cleanuppolicies.needed_verbs(metadata_only, base) == {}
    assert cleanuppolicies.needed_verbs(
        edited(base, autoExecute=True, rules={"minAgeDays": 0}), base
    ) == {"configure": "changing spec.autoExecute, spec.rules"}
    reordered = edited(base, approvals=[approval("eipalloc-2"), approval()])
    assert cleanuppolicies.needed_verbs(reordered, base) == {
        "approve": "changing spec.approvals (1 added)"
    }
    # The entries are a map by account, region and resource: their order means nothing.
    swapped = edited(base, approvals=[approval(), approval("eipalloc-2")])
    assert cleanuppolicies.needed_verbs(swapped, reordered) == {}
    assert cleanuppolicies.needed_verbs(base, reordered) == {
        "approve": "changing spec.approvals (1 removed)"
    }
    raised = edited(base, approvals=[approval(cost="9.00")])
    assert cleanuppolicies.needed_verbs(raised, base) == {
        "approve": "changing spec.approvals (1 changed)"
    }
    # A field removed is a change too.
    fewer = copy.deepcopy(base)
    del fewer["spec"]["maxMonthlyCost"]
    assert cleanuppolicies.needed_verbs(fewer, base) == {
        "configure": "changing spec.maxMonthlyCost"
    }


def test_approvals_are_told_apart_by_account_region_and_resource() -> None:
    """An approval is one resource in one account and region: the same resource ID elsewhere is
    another approval (added, needing ``approve``), not a change of the first."""
    base = policy(approvals=[approval()])
    for field, value in (
        ("accountId", "210987654321"),
        ("region", "eu-west-1"),
        ("resourceId", "eipalloc-2"),
    ):
        other = {**approval(), field: value}
        assert cleanuppolicies.needed_verbs(edited(base, approvals=[approval(), other]), base) == {
            "approve": "changing spec.approvals (1 added)"
        }, field
        # Replacing the entry by the other one: one added, one removed, in that order.
        assert cleanuppolicies.needed_verbs(edited(base, approvals=[other]), base) == {
            "approve": "changing spec.approvals (1 added, 1 removed)"
        }, field


def test_an_approval_written_with_its_fields_in_another_order_is_unchanged() -> None:
    """YAML tools and the API server may reorder an entry's keys: that is no change, and needs
    no ``approve`` (an admin's edit of another field must not be refused for it)."""
    base = policy(approvals=[approval()])
    reordered = edited(base, approvals=[dict(reversed(list(approval().items())))])
    assert list(reordered["spec"]["approvals"][0]) != list(approval())
    assert cleanuppolicies.needed_verbs(reordered, base) == {}
    assert cleanuppolicies.needed_verbs(edited(reordered, dryRun=False), base) == {
        "configure": "changing spec.dryRun"
    }


# --- the webhook, with SubjectAccessReviews ----------------------------------------------------


def test_a_member_may_approve_but_not_change_the_policy(
    cluster: Cluster, webhook: int, roles: AccessReviews
) -> None:
    stored = policy()
    # Approving: the mutating webhook stamps the entry, the validating one checks "approve".
    approved = admitted(webhook, edited(stored, approvals=[approval()]), stored, MEMBER)
    assert approved["spec"]["approvals"][0]["approvedBy"] == "maria@example.com"
    assert verbs(roles) == [("maria@example.com", "approve")]
    # Withdrawing an approval needs "approve" too.
    admitted(webhook, stored, approved, MEMBER)

    for change in (
        {"autoExecute": True},
        {"dryRun": False},
        {"maxMonthlyCost": "500.00"},
        {"rules": {"minAgeDays": 0, "minConfidence": 0}},
    ):
        answer = authorize(webhook, edited(approved, **change), approved, MEMBER)
        assert answer["allowed"] is False, change
        assert answer["status"]["code"] == 403
        message = answer["status"]["message"]
        field = f"spec.{next(iter(change))}"
        assert message.startswith(
            f"maria@example.com may not make this change to CleanupPolicy {NS}/ips"
        )
        assert (
            f"changing {field} needs verb 'configure' on cleanuppolicies.cloudsweep.io" in message
        )
        assert f"in namespace {NS} (the role cloudsweep-admin grants it)" in message
        assert "approve" not in message

    # Approving and changing in one write: refused as a whole, for the missing verb only.
    both = edited(approved, autoExecute=True, approvals=[approval(), approval("eipalloc-2")])
    answer = authorize(webhook, both, approved, MEMBER)
    assert answer["allowed"] is False
    assert "'configure'" in answer["status"]["message"]
    assert "'approve'" not in answer["status"]["message"]


def test_an_admin_may_configure_and_approve(
    cluster: Cluster, webhook: int, roles: AccessReviews
) -> None:
    created = admitted(webhook, policy(approvals=[approval()]), None, ADMIN)
    assert sorted(verbs(roles)) == [
        ("ada@example.com", "approve"),
        ("ada@example.com", "configure"),
    ]
    roles.received = []
    # Editing the policy leaves the approvals as the mutating webhook found them: only
    # "configure" is asked, and Ada's approval keeps its stamp.
    changed = admitted(webhook, edited(created, autoExecute=True, dryRun=False), created, ADMIN)
    assert changed["spec"]["approvals"] == created["spec"]["approvals"]
    assert verbs(roles) == [("ada@example.com", "configure")]


def test_an_approvals_stamp_is_kept_until_what_it_asks_for_changes(
    cluster: Cluster, webhook: int, roles: AccessReviews
) -> None:
    """The mutating webhook stamps an entry with who wrote it and when; a later write keeps the
    stored stamp (a name typed into the YAML is not taken), unless the entry now asks for
    something else (its cost or its expiry): then it is the new writer's approval."""
    stored = policy()
    started = time.time()
    approved = admitted(webhook, edited(stored, approvals=[approval()]), stored, MEMBER)
    [entry] = approved["spec"]["approvals"]
    assert entry["approvedBy"] == "maria@example.com"
    stamped_at = time.mktime(time.strptime(entry["approvedAt"], "%Y-%m-%dT%H:%M:%SZ"))
    assert started - 2 <= stamped_at - time.timezone <= time.time() + 2  # a UTC time of now

    forged = copy.deepcopy(approved)
    forged["spec"]["approvals"][0].update(approvedBy="the-boss", approvedAt="2020-01-01T00:00:00Z")
    for change in (edited(approved, dryRun=False), forged):
        kept = admitted(webhook, change, approved, ADMIN)
        assert kept["spec"]["approvals"] == [entry]

    for field, value in (("maxMonthlyCost", "9.00"), ("expiresAt", "2030-01-01T00:00:00Z")):
        changed = copy.deepcopy(approved)
        changed["spec"]["approvals"][0][field] = value
        [restamped] = admitted(webhook, changed, approved, ADMIN)["spec"]["approvals"]
        assert (restamped["approvedBy"], restamped[field]) == ("ada@example.com", value), field

    # Without a user name in the request (the API server always sends one) the stamp says so.
    answer = review(webhook, "stamp-approvals", edited(stored, approvals=[approval()]), stored, {})
    [patched] = jsonpatch.apply_patch(
        edited(stored, approvals=[approval()]), json.loads(base64.b64decode(answer["patch"]))
    )["spec"]["approvals"]
    assert patched["approvedBy"] == "unknown"


def test_without_a_signing_key_approvals_are_not_stamped_and_the_writer_is_warned(
    cluster: Cluster, operator: Any, webhook: int, roles: AccessReviews
) -> None:
    operator.settings = operator.settings.model_copy(update={"approval_signing_key": None})
    stored = policy()
    answer = review(
        webhook, "stamp-approvals", edited(stored, approvals=[approval()]), stored, ADMIN
    )
    assert answer["allowed"] is True
    assert not answer.get("patch")
    assert answer["warnings"] == [
        "approvals are disabled: the operator has no approval signing key"
    ]


def test_a_viewer_may_not_approve_or_withdraw_approvals(
    cluster: Cluster, webhook: int, roles: AccessReviews
) -> None:
    stored = admitted(webhook, policy(approvals=[approval()]), None, ADMIN)
    for obj, change in (
        (
            edited(stored, approvals=[*stored["spec"]["approvals"], approval("eipalloc-2")]),
            "1 added",
        ),
        (edited(stored, approvals=[]), "1 removed"),
    ):
        answer = authorize(webhook, obj, stored, VIEWER)
        assert answer["allowed"] is False
        assert answer["status"]["code"] == 403
        assert answer["status"]["message"] == (
            f"victor@example.com may not make this change to CleanupPolicy {NS}/ips: changing "
            f"spec.approvals ({change}) needs verb 'approve' on cleanuppolicies.cloudsweep.io in "
            f"namespace {NS} (the roles cloudsweep-member and cloudsweep-admin grant it)"
        )


def test_creating_a_policy_needs_configure(
    cluster: Cluster, webhook: int, roles: AccessReviews
) -> None:
    answer = authorize(webhook, policy(), None, MEMBER)
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 403
    assert "creating a CleanupPolicy needs verb 'configure'" in answer["status"]["message"]
    assert verbs(roles) == [("maria@example.com", "configure")]
    # The verb is granted per namespace: Ada is an admin of team-a only.
    elsewhere = policy()
    elsewhere["metadata"]["namespace"] = "team-b"
    answer = authorize(webhook, elsewhere, None, ADMIN)
    assert answer["allowed"] is False
    assert "in namespace team-b" in answer["status"]["message"]


def test_the_operators_own_updates_need_no_review(
    cluster: Cluster, webhook: int, roles: AccessReviews
) -> None:
    stored = policy(approvals=[approval()])
    stored["metadata"]["annotations"] = {"cloudsweep.io/approval-signatures": "{}"}
    patched = copy.deepcopy(stored)
    patched["metadata"]["finalizers"] = ["cloudsweep.io/finalizer"]
    patched["metadata"]["annotations"]["cloudsweep.io/last-handled-configuration"] = "{}"
    patched["metadata"]["labels"] = {"team": "payments"}
    patched["status"] = {"matched": 2, "conditions": []}
    for userinfo in (OPERATOR, VIEWER):  # metadata is RBAC's business alone
        assert authorize(webhook, patched, stored, userinfo)["allowed"] is True
    assert roles.received == []
    assert cluster.requests("POST", "subjectaccessreviews") == []


def test_the_review_carries_the_users_groups_uid_and_extra(
    cluster: Cluster, webhook: int, access_reviews: AccessReviews
) -> None:
    access_reviews.allow("group:payments-leads", "approve", NS)  # bound to the group only
    userinfo = {
        **MEMBER,
        "extra": {"authentication.kubernetes.io/credential-id": ["X509SHA256=ab"]},
    }
    stored = policy()
    admitted(webhook, edited(stored, approvals=[approval()]), stored, userinfo)
    [sent] = access_reviews.received or []
    assert sent["spec"] == {
        "user": "maria@example.com",
        "uid": "u-maria",
        "groups": ["payments-leads"],
        "extra": {"authentication.kubernetes.io/credential-id": ["X509SHA256=ab"]},
        "resourceAttributes": {
            "namespace": NS,
            "verb": "approve",
            "group": "cloudsweep.io",
            "resource": "cleanuppolicies",
            "name": "ips",
        },
    }
    # Without the group, the same user is refused: the bindings are by group.
    answer = authorize(
        webhook, edited(stored, approvals=[approval()]), stored, {**MEMBER, "groups": []}
    )
    assert answer["allowed"] is False

    # The operator's ClusterRole allows the request it made, with its own credentials.
    from tests.deploy.conftest import one, render

    [request, *_] = cluster.requests("POST", "subjectaccessreviews")
    assert request.headers.get("User-Agent", "").startswith("cloudsweep/")
    token = os.environ.get("CLOUDSWEEP_KUBE_TOKEN", "none")
    assert request.headers.get("Authorization") == f"Bearer {token}"
    wanted = rbac.need("POST", request.url.path, dict(request.params))
    assert wanted == rbac.Need("authorization.k8s.io", "subjectaccessreviews", "create")
    role = one(render("deploy/base"), "ClusterRole", "cloudsweep-operator")
    assert rbac.permits(role["rules"], wanted)


@pytest.mark.parametrize("failure", ["error", "stall"])
def test_a_failed_review_refuses_the_change(
    failure: str, cluster: Cluster, webhook: int, roles: AccessReviews
) -> None:
    if failure == "error":
        roles.failure = 500
    else:
        roles.stall = True
    stored = policy()
    started = time.monotonic()
    answer = authorize(webhook, edited(stored, approvals=[approval()]), stored, ADMIN)
    assert time.monotonic() - started < 20  # well inside the API server's 30 s for a webhook
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 503
    message = answer["status"]["message"]
    assert message.startswith(
        f"CloudSweep could not check whether ada@example.com may approve CleanupPolicies in "
        f"namespace {NS} (its SubjectAccessReview failed: "
    )
    assert message.endswith("the change is refused, try again shortly")
    if failure == "error":
        assert "HTTP 500" in message and "injected failure" in message
    else:
        assert "timed out" in message.lower()

    # Once the API server answers again, so does the webhook.
    roles.failure, roles.stall = None, False
    assert authorize(webhook, edited(stored, approvals=[approval()]), stored, ADMIN)["allowed"]


# --- in a pod: the service account's token and CA ----------------------------------------------


def test_in_a_pod_the_review_uses_the_service_account_and_a_rotated_token(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without CLOUDSWEEP_KUBE_API_URL the review goes to KUBERNETES_SERVICE_HOST over TLS checked
    against the service account's CA, with its token; a rotated token is read again on a 401."""
    import http.server
    import ssl
    import threading

    from kubernetes.config import incluster_config

    from cloudsweep.handlers import access, certificates
    from cloudsweep.settings import get_settings

    certfile, keyfile = certificates.self_signed(["127.0.0.1"], tmp_path)
    token = tmp_path / "token"
    token.write_text("first-token")
    seen: list[str] = []
    accepted = {"value": "first-token"}

    class APIServer(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(self.headers.get("Authorization", ""))
            ok = self.headers.get("Authorization") == f"bearer {accepted['value']}"
            body = {**review, "status": {"allowed": True}} if ok else {"kind": "Status"}
            data = json.dumps(body).encode()
            self.send_response(201 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), APIServer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.delenv("CLOUDSWEEP_KUBE_API_URL", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.server_address[1]))
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(certfile))
    get_settings.cache_clear()
    try:
        ask = {
            "verb": "approve",
            "group": "cloudsweep.io",
            "resource": "cleanuppolicies",
            "namespace": NS,
        }
        assert access.review(MEMBER, **ask).allowed
        token.write_text("second-token")  # the kubelet rotated it
        accepted["value"] = "second-token"
        assert access.review(MEMBER, **ask).allowed
        assert seen == ["bearer first-token", "bearer first-token", "bearer second-token"]
    finally:
        server.shutdown()
        server.server_close()
        access._forget_client()
        get_settings.cache_clear()
