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

from tests.kube_real.conftest import OperatorProcess, condition, wait_for
from tests.kube_real.server import REPO, KubeReal
from tests.kube_real.test_operator import path

MANAGER = "argocd-controller"
SAMPLES = {
    "awsaccounts": ("payments-prod", "awsaccount.yaml"),
    "scanschedules": ("nightly-production", "scanschedule.yaml"),
    "cleanuppolicies": ("unattached-volumes", "cleanuppolicy.yaml"),
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
    # bookkeeping annotations; and the approval stamped by its webhook during the apply.
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
    # spec.approvals as the sample has them (approvals stamped by the mutating webhook).
    stamped = "approvals" in yaml.safe_load((git / "cleanuppolicy.yaml").read_text())["spec"]
    if stamped:
        [approval] = fetch(kube_real, namespace, "cleanuppolicies")["spec"]["approvals"]
        assert approval["approvedBy"] == "admin"
    before = {plural: fetch(kube_real, namespace, plural) for plural in SAMPLES}
    for plural, obj in before.items():
        entries = managed(obj)
        ours = [e for e in entries if e["manager"] == MANAGER]
        assert ours and all("f:status" not in owned_roots(e) for e in ours), (plural, entries)
        others = [e for e in entries if e["manager"] != MANAGER]
        # Nothing of spec is the operator's: Git keeps sole ownership of what users declare.
        assert not [e for e in others if "f:spec" in owned_roots(e)], (plural, others)
        assert any(e.get("subresource") == "status" for e in others), (plural, others)

    # A change in Git: a new display name, a label, a tightened rule. Applied again, as a
    # GitOps tool does on every sync, by the same manager and without --force-conflicts.
    account = yaml.safe_load((git / "awsaccount.yaml").read_text())
    account["spec"]["displayName"] = "Payments production (EU)"
    account["metadata"]["labels"]["team"] = "payments"
    (git / "awsaccount.yaml").write_text(yaml.safe_dump(account))
    cleanup = yaml.safe_load((git / "cleanuppolicy.yaml").read_text())
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
    if stamped:
        # The approval keeps who approved it (the stored stamp), and its signature.
        [approval_after] = after["cleanuppolicies"]["spec"]["approvals"]
        assert (approval_after["approvedBy"], approval_after["approvedAt"]) == (
            approval["approvedBy"],
            approval["approvedAt"],
        )
        annotations = after["cleanuppolicies"]["metadata"].get("annotations") or {}
        assert "cloudsweep.io/approval-signatures" in annotations
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
            if key == "approvals":
                continue
            assert json.loads(json.dumps(obj["spec"][key])) == json.loads(json.dumps(value)), (
                plural,
                key,
            )
