"""Server-side apply as GitOps tools do it (Argo CD and Flux apply with one field manager):
deploy/samples/ applied, the operator writes status, finalizers and its annotations, then Git is
applied again. The second apply must meet no conflict on what the operator owns, and nothing the
user applied may be reverted by the operator afterwards.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from tests.kube_real import approvals
from tests.kube_real.conftest import OperatorProcess, bind, condition, wait_for
from tests.kube_real.server import REPO, KubeReal
from tests.kube_real.test_operator import events, path

MANAGER = "argocd-controller"
SAMPLES = {
    "awsaccounts": ("payments-prod", "awsaccount.yaml"),
    "scanschedules": ("nightly-production", "scanschedule.yaml"),
    "cleanuppolicies": ("unattached-volumes", "cleanuppolicy.yaml"),
}
POLICY = SAMPLES["cleanuppolicies"][0]
# A finding of the sample policy, as status.pendingApprovals would list it (no scan runs here:
# the samples' role cannot be assumed; the approval is recorded and waits for its finding).
FINDING = {
    "accountId": "123456789012",
    "region": "us-east-1",
    "resourceId": "vol-0a1b2c3d4e5f67890",
    "maxMonthlyCost": "80.00",
}


def git_apply(kube_real: KubeReal, namespace: str, folder: Path) -> str:
    result = kube_real.kubectl(
        "apply",
        "--server-side",
        f"--field-manager={MANAGER}",
        "-n",
        namespace,
        "-f",
        str(folder),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def managed(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list(obj["metadata"].get("managedFields") or [])


def owned_roots(entry: dict[str, Any]) -> set[str]:
    """The top-level fields (``f:spec``, ``f:status``, ``f:metadata``) an entry owns."""
    return set((entry.get("fieldsV1") or {}).keys())


def fetch(kube_real: KubeReal, namespace: str, plural: str) -> dict[str, Any]:
    obj: dict[str, Any] = kube_real.get(path(namespace, plural, SAMPLES[plural][0]))
    return obj


def test_a_second_apply_from_git_meets_no_conflict_and_nothing_is_reverted(
    kube_real: KubeReal, namespace: str, cloudsweep_operator: OperatorProcess, tmp_path: Path
) -> None:
    git = tmp_path / "git"
    git.mkdir()
    for _, file in SAMPLES.values():
        (git / file).write_text((REPO / "deploy" / "samples" / file).read_text())

    out = git_apply(kube_real, namespace, git)
    assert out.count("serverside-applied") == 3, out

    # The operator's writes: status (through the status subresource), its finalizer, its
    # bookkeeping annotations.
    for plural in SAMPLES:
        wait_for(
            lambda plural=plural: condition(fetch(kube_real, namespace, plural), "Ready"),
            what=f"{plural} status",
        )
        wait_for(
            lambda plural=plural: (
                "cloudsweep.io/finalizer"
                in (fetch(kube_real, namespace, plural)["metadata"].get("finalizers") or [])
            ),
            what=f"{plural} finalizer",
        )
    # A person approves a finding of the policy: a CleanupApproval, created with their own
    # credentials, which Git does not hold (deploy/gitops/).
    bind(kube_real, namespace, "cloudsweep-member", "user:alice")
    approved = approvals.approve(kube_real, namespace, POLICY, FINDING, user="alice")
    assert approved.returncode == 0, approved.stderr
    assert approvals.approver(kube_real, namespace, POLICY, FINDING["resourceId"]) == "alice"
    [approval] = approvals.approvals_of(kube_real, namespace, POLICY, FINDING["resourceId"])
    before = {plural: fetch(kube_real, namespace, plural) for plural in SAMPLES}
    for plural, obj in before.items():
        entries = managed(obj)
        ours = [e for e in entries if e["manager"] == MANAGER]
        assert ours and all("f:status" not in owned_roots(e) for e in ours), (plural, entries)
        others = [e for e in entries if e["manager"] != MANAGER]
        # Nothing of spec is the operator's: Git keeps sole ownership of what users declare.
        assert not [e for e in others if "f:spec" in owned_roots(e)], (plural, others)
        assert any(e.get("subresource") == "status" for e in others), (plural, others)

    # A sync that changes no decision: a new display name, labels, and an approval someone
    # committed into the policy's retired spec.approvals naming another approver. Applied
    # again, as a GitOps tool does on every sync, by the same manager, without --force-conflicts.
    account = yaml.safe_load((git / "awsaccount.yaml").read_text())
    account["spec"]["displayName"] = "Payments production (EU)"
    account["metadata"]["labels"]["team"] = "payments"
    (git / "awsaccount.yaml").write_text(yaml.safe_dump(account))
    cleanup = yaml.safe_load((git / "cleanuppolicy.yaml").read_text())
    cleanup["metadata"].setdefault("labels", {})["team"] = "payments"
    forged = {**FINDING, "resourceId": "vol-0f0f0f0f0f0f0f0f0", "approvedBy": "the-boss"}
    cleanup["spec"]["approvals"] = [forged]
    (git / "cleanuppolicy.yaml").write_text(yaml.safe_dump(cleanup))
    out = git_apply(kube_real, namespace, git)
    assert out.count("serverside-applied") == 3 and "conflict" not in out.lower(), out

    # The approval is neither removed nor forged: the same object, still alice's; the entry
    # from Git is reported ignored and approves nothing.
    wait_for(
        lambda: "ApprovalIgnored" in events(kube_real, namespace, "CleanupPolicy", POLICY),
        what="the in-policy approval reported ignored",
    )
    assert approvals.approver(kube_real, namespace, POLICY, FINDING["resourceId"]) == "alice"
    assert approvals.approver(kube_real, namespace, POLICY, forged["resourceId"]) is None
    kept = approvals.approvals_of(kube_real, namespace, POLICY, FINDING["resourceId"])
    assert [o["metadata"]["uid"] for o in kept] == [approval["metadata"]["uid"]]
    assert kept[0]["spec"] == approval["spec"]
    listed = kube_real.get(path(namespace, "cleanupapprovals"))["items"]
    assert [o["metadata"]["uid"] for o in listed] == [approval["metadata"]["uid"]], listed

    # A change of a decision in Git: a tightened rule. The approval object survives the sync
    # (Git does not own it), but it no longer counts: it was given for the policy as it was.
    cleanup["spec"]["maxItemsPerRun"] = 10
    (git / "cleanuppolicy.yaml").write_text(yaml.safe_dump(cleanup))
    out = git_apply(kube_real, namespace, git)
    assert out.count("serverside-applied") == 3 and "conflict" not in out.lower(), out

    # Give the operator a few of its cycles (status every 2 s here) to revert anything.
    time.sleep(8)
    after = {plural: fetch(kube_real, namespace, plural) for plural in SAMPLES}
    assert after["awsaccounts"]["spec"]["displayName"] == "Payments production (EU)"
    assert after["awsaccounts"]["metadata"]["labels"]["team"] == "payments"
    assert after["cleanuppolicies"]["spec"]["maxItemsPerRun"] == 10
    ended = wait_for(
        lambda: (
            (o := approvals.approvals_of(kube_real, namespace, POLICY, FINDING["resourceId"]))
            and (c := condition(o[0], "Ready"))
            and c["reason"] == "ApprovalIgnored"
            and (o[0], c)
        ),
        what="the approval ended by the policy change",
    )
    assert ended[0]["metadata"]["uid"] == approval["metadata"]["uid"]
    assert f"CleanupPolicy {POLICY} changed since this approval was given" in ended[1]["message"]
    for plural, obj in after.items():
        assert "cloudsweep.io/finalizer" in obj["metadata"]["finalizers"], plural
        assert obj["status"].get("conditions"), plural
        # The operator saw the new generation (its conditions say so), and Git's view of spec
        # is unchanged by it: every field Git applied has Git's value.
        gen = obj["metadata"]["generation"]
        assert wait_for(
            lambda plural=plural, gen=gen: (
                (condition(fetch(kube_real, namespace, plural), "Ready") or {}).get(
                    "observedGeneration"
                )
                == gen
            ),
            what=f"{plural} observed generation {gen}",
        )
        applied = yaml.safe_load((git / SAMPLES[plural][1]).read_text())["spec"]
        for key, value in applied.items():
            if key == "approvals":  # retired, ignored (above), stamped by the webhook
                continue
            assert json.loads(json.dumps(obj["spec"][key])) == json.loads(json.dumps(value)), (
                plural,
                key,
            )
