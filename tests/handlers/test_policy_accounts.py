"""Which accounts a CleanupPolicy covers: the ones it names or selects in its own namespace, never
every account there (``cleanuppolicies._policy``, checked without an operator).

The resolved ``accounts`` is what the executor asks the ledger for (``cleaning.run_cleanup``
passes ``policy.accounts`` as the candidates' account filter), so an account left out here is
never planned, approved or cleaned by this policy.
"""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest

from cloudsweep import crds, domain, policies
from cloudsweep.handlers import cleanuppolicies, runtime
from cloudsweep.settings import Settings
from cloudsweep.store import FindingFilter, Store
from tests.store.conftest import finding

from .conftest import Cluster, condition, wait_for

NS = "team-a"
# A kopf index as the operator holds it: (namespace, name) -> the AwsAccount's selection facts.
ACCOUNTS: dict[tuple[str, str], list[dict[str, Any]]] = {
    (NS, "prod"): [{"accountId": "111111111111", "labels": {"env": "prod"}}],
    (NS, "sandbox"): [{"accountId": "222222222222", "labels": {"env": "dev"}}],
    ("team-b", "theirs"): [{"accountId": "333333333333", "labels": {"env": "prod"}}],
}


def policy_object(**selection: Any) -> dict[str, Any]:
    return {"spec": {"resourceType": "elastic-ip", "action": "release", **selection}}


@pytest.mark.parametrize(
    "selection",
    [
        {"accounts": ["prod"]},
        {"accountSelector": {"matchLabels": {"env": "prod"}}},
        {"accounts": ["prod"], "accountSelector": {}},  # names win over a selector of all
    ],
    ids=["by-name", "by-label", "names-and-selector"],
)
def test_a_policy_covers_only_the_accounts_it_selects(selection: dict[str, Any]) -> None:
    policy, selected = cleanuppolicies._policy(policy_object(**selection), "p", NS, ACCOUNTS)
    assert selected
    assert policy.accounts == ("111111111111",)  # not the sandbox, not team-b's prod


def test_a_selector_of_all_covers_the_namespaces_accounts_only() -> None:
    policy, selected = cleanuppolicies._policy(policy_object(accountSelector={}), "p", NS, ACCOUNTS)
    assert selected
    assert sorted(policy.accounts) == ["111111111111", "222222222222"]


def test_a_selection_that_matches_nothing_selects_nothing() -> None:
    policy, selected = cleanuppolicies._policy(
        policy_object(accounts=["theirs"]), "p", NS, ACCOUNTS
    )
    assert not selected  # another namespace's account is not found by name
    assert policy.accounts == ()


def test_an_invalid_policy_is_named_by_its_namespace_and_name() -> None:
    with pytest.raises(policies.PolicyError) as refused:
        cleanuppolicies._policy(
            {"spec": {"resourceType": "elastic-ip", "action": "shred", "accountSelector": {}}},
            "p",
            NS,
            ACCOUNTS,
        )
    assert str(refused.value).startswith("CleanupPolicy team-a/p: policy 'p' is invalid: ")


def test_the_policys_status_says_what_it_may_do_or_why_not(cluster: Cluster, operator: Any) -> None:
    """On the operator: a policy over an account without findings may act on nothing yet;
    suspended, it says so; one whose selection matches no AwsAccount is not Ready."""
    cluster.create_namespace(NS, "uid-team-a")
    account = {
        "accountId": "111111111111",
        "roleArn": "arn:aws:iam::111111111111:role/cloudsweep-scanner",
        "regions": ["us-east-1"],
    }
    cluster.create("awsaccounts", "AwsAccount", NS, "prod", account)
    spec = {"resourceType": "elastic-ip", "action": "release"}
    cluster.create("cleanuppolicies", "CleanupPolicy", NS, "all", {**spec, "accountSelector": {}})
    cluster.create("cleanuppolicies", "CleanupPolicy", NS, "none", {**spec, "accounts": ["gone"]})
    started = time.time()

    def ready(name: str, reason: str) -> dict[str, Any]:
        return wait_for(  # type: ignore[no-any-return]
            lambda: (
                (c := condition(cluster.get("cleanuppolicies", NS, name), "Ready"))
                and c["reason"] == reason
                and c
            ),
            what=f"{name}: {reason}",
        )

    evaluated = ready("all", "Evaluated")
    assert (evaluated["status"], evaluated["message"]) == (
        "True",
        "0 items may be acted on in the next run",
    )
    status = cluster.get("cleanuppolicies", NS, "all")["status"]
    assert {k: status.get(k) for k in FIGURES} == {
        "matched": 0,
        "planned": 0,
        "awaitingApproval": 0,
        "executed": 0,
        "failed": 0,
        "savingsMonthly": "0.00",
        "pendingApprovals": [],
    }
    evaluated_at = calendar.timegm(
        time.strptime(status["lastEvaluationTime"], "%Y-%m-%dT%H:%M:%SZ")
    )
    assert started - 2 <= evaluated_at <= time.time() + 2

    unselected = ready("none", "NoAccountsSelected")
    assert (unselected["status"], unselected["message"]) == (
        "False",
        "no AwsAccount in this namespace matches the policy's accounts or selector",
    )

    cluster.patch("cleanuppolicies", NS, "all", {"spec": {"suspend": True}})
    suspended = ready("all", "Suspended")
    assert (suspended["status"], suspended["message"]) == ("True", "the policy is suspended")


FIGURES = (
    "matched",
    "planned",
    "awaitingApproval",
    "executed",
    "failed",
    "savingsMonthly",
    "pendingApprovals",
)


def test_a_policy_evaluated_before_its_namespace_has_an_organization_has_no_findings_yet(
    database_url: str, operator_settings: Settings
) -> None:
    """The evaluation timer can come before ``register`` made the namespace's organization: an
    operator restarted on a new database (kopf does not run the create handler again for an
    object it handled). The policy is Ready with nothing found yet, and no organization is made."""
    rt = runtime.Runtime(settings=operator_settings, store=Store(database_url))
    runtime.configure(rt)
    body = {"metadata": {"name": "all", "namespace": "new-team", "generation": 3}}
    patch = kopf.Patch()
    try:
        policy, selected = cleanuppolicies._policy(
            policy_object(accounts=["prod"]), "all", NS, ACCOUNTS
        )
        cleanuppolicies._evaluate(body, patch, "new-team", "all", policy, selected, False)
    finally:
        runtime.configure(None)
        rt.shutdown()

    assert [
        (c["type"], c["status"], c["reason"], c["message"]) for c in patch.status["conditions"]
    ] == [("Ready", "True", "Evaluated", "no findings yet")]
    assert patch.status["observedGeneration"] == 3
    assert "matched" not in patch.status
    assert rt.store.organization("new-team") is None


def test_a_pending_approvals_reason_is_cut_to_what_the_crd_holds(
    database_url: str, operator_settings: Settings
) -> None:
    """A waiting item's reason can outgrow the 256 characters the CRD allows a
    ``pendingApprovals[].reason``: here the note of an approval that lapsed, by a Kubernetes user
    with a long name. A real API server refuses the whole status patch over one long reason, and
    every figure with it, so the status carries the reason's first 256 characters."""
    store = Store(database_url)
    org = store.ensure_organization(NS)
    record = store.register_account(
        org.id,
        account_id="111111111111",
        role_arn="arn:aws:iam::111111111111:role/cloudsweep-scanner",
        external_id="ext-1",
        regions=["us-east-1"],
    )
    now = datetime.now(UTC)
    scan = store.open_scan(
        record.id,
        scan_type=domain.ScanType.FULL,
        regions=["us-east-1"],
        started_at=now - timedelta(days=8),
    )
    address = finding("eipalloc-0a1b", resource_type="elastic-ip", cost="3.60")
    store.upsert_findings(scan, [address], seen_at=now - timedelta(days=8))
    store.close_scan(
        scan,
        status=domain.ScanStatus.COMPLETED,
        completed_at=now - timedelta(days=8),
        resources_scanned=1,
    )
    [item] = store.findings(FindingFilter(NS))
    approver = "system:serviceaccount:payments-approvals:" + "release-bot-" * 17
    assert store.decide_items(
        org.id,
        [item.id],
        approve=True,
        approver_email=approver,
        now=now - timedelta(hours=2),
        expires_at=now - timedelta(hours=1),
    )
    spec = {"accounts": ["prod"], "requireApprovalAbove": "1.00", "maxMonthlyCost": "1.00"}
    rt = runtime.Runtime(settings=operator_settings, store=store)
    runtime.configure(rt)
    body = {"metadata": {"name": "ips", "namespace": NS, "generation": 1}}
    patch = kopf.Patch()
    try:
        policy, selected = cleanuppolicies._policy(policy_object(**spec), "ips", NS, ACCOUNTS)
        cleanuppolicies._evaluate(body, patch, NS, "ips", policy, selected, False)
    finally:
        runtime.configure(None)
        rt.shutdown()

    [pending] = patch.status["pendingApprovals"]
    assert pending["resourceId"] == "eipalloc-0a1b"
    expected = f"costs 3.60/month, above requireApprovalAbove 1.00 (the approval by {approver}"
    assert len(pending["reason"]) == 256 and expected.startswith(pending["reason"])
    stored = {
        "apiVersion": "cloudsweep.io/v1alpha1",
        "kind": "CleanupPolicy",
        "metadata": body["metadata"],
        "spec": {**policy_object(**spec)["spec"]},
        "status": dict(patch.status),
    }
    assert crds.validate("CleanupPolicy", stored) == []
