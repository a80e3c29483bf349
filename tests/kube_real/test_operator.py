"""``cloudsweep operator`` against the real API server, as the Deployment runs it: AwsAccount,
ScanSchedule and CleanupPolicy reconciled end to end (moto and PostgreSQL behind it), a scan, and
a real cleanup of an item a tenant approved with a CleanupApproval, admitted through the API
server's admission chain.

Everything is observed as users and AWS see it: ``kubectl get`` (printer columns), the objects'
status through the API, Events, and moto's state.
"""

from __future__ import annotations

import json
from typing import Any

import botocore.exceptions

from cloudsweep.demo import world as demo_world
from tests.kube_real import approvals
from tests.kube_real.conftest import OperatorProcess, bind, condition, wait_for
from tests.kube_real.server import KubeReal, apply_objects

GV = "cloudsweep.io/v1alpha1"


def path(namespace: str, plural: str, name: str = "") -> str:
    return f"/apis/{GV}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


def account(world: demo_world.DemoWorld, name: str = "prod") -> dict[str, Any]:
    return {
        "apiVersion": GV,
        "kind": "AwsAccount",
        "metadata": {"name": name, "labels": {"env": "prod"}},
        "spec": {
            "accountId": world.account_id,
            "roleArn": world.scanner_role_arn,
            "regions": ["us-east-1"],
        },
    }


def schedule(name: str = "nightly") -> dict[str, Any]:
    return {
        "apiVersion": GV,
        "kind": "ScanSchedule",
        "metadata": {"name": name},
        "spec": {
            "schedule": "0 3 * * *",
            "accountSelector": {"matchLabels": {"env": "prod"}},
            "resourceTypes": ["elastic-ip"],
        },
    }


def policy(name: str = "idle-ips", **spec: Any) -> dict[str, Any]:
    """Release idle Elastic IPs, for real (dryRun false), each only after an approval."""
    return {
        "apiVersion": GV,
        "kind": "CleanupPolicy",
        "metadata": {"name": name},
        "spec": {
            "resourceType": "elastic-ip",
            "action": "release",
            "accountSelector": {},
            "rules": {"minAgeDays": 0, "minConfidence": 50},
            "requireApprovalAbove": "0.00",
            "dryRun": False,
            **spec,
        },
    }


def run_now(
    kube_real: KubeReal, namespace: str, value: str, name: str = "nightly"
) -> dict[str, Any]:
    kube_real.kubectl(
        "annotate",
        "scanschedule",
        name,
        "-n",
        namespace,
        "--overwrite",
        f"cloudsweep.io/run-now={value}",
    )
    status: dict[str, Any] = wait_for(
        lambda: (
            (s := kube_real.get(path(namespace, "scanschedules", name))["status"])["lastRunNow"]
            == value
            and s["lastRunOutcome"] == "completed"
            and s
        ),
        timeout=90,
        what=f"scan {value}",
    )
    return status


def settled(obj: dict[str, Any], *kinds: str) -> bool:
    """Each condition is there, True, and about this generation of the object."""
    generation = obj["metadata"]["generation"]
    for kind in kinds:
        found = condition(obj, kind)
        if not found or found["status"] != "True" or found.get("observedGeneration") != generation:
            return False
    return True


def events(kube_real: KubeReal, namespace: str, kind: str, name: str) -> list[str]:
    listed = kube_real.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    return [
        e["reason"]
        for e in json.loads(listed)["items"]
        if e["involvedObject"].get("kind") == kind and e["involvedObject"].get("name") == name
    ]


def table(kube_real: KubeReal, namespace: str, resource: str) -> list[dict[str, str]]:
    """``kubectl get RESOURCE`` as users read it: the printer columns by header."""
    lines = kube_real.kubectl("get", resource, "-n", namespace).stdout.splitlines()
    header = lines[0]
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    names = [header[a:b].strip() for a, b in bounds]
    return [
        {n: line[a:b].strip() for n, (a, b) in zip(names, bounds, strict=True)}
        for line in lines[1:]
    ]


def addresses(moto_endpoint: str, world: demo_world.DemoWorld, allocation: str) -> list[Any]:
    """The Elastic IP as the account's own EC2 API lists it (empty once released)."""
    ec2 = demo_world.Account(moto_endpoint, world.account_id).ec2("us-east-1")
    try:
        return list(ec2.describe_addresses(AllocationIds=[allocation])["Addresses"])
    except botocore.exceptions.ClientError as error:
        if "NotFound" in error.response["Error"]["Code"]:
            return []
        raise


def test_the_operator_reconciles_scans_and_cleans_an_approved_item(
    kube_real: KubeReal,
    namespace: str,
    cloudsweep_operator: OperatorProcess,
    world: demo_world.DemoWorld,
    moto_endpoint: str,
) -> None:
    ns = namespace
    bind(kube_real, ns, "cloudsweep-member", "user:alice")
    apply_objects(kube_real, [account(world), schedule(), policy()], "-n", ns)

    # AwsAccount: connected, conditions about this generation, the finalizer, an ExternalId, and
    # all of it written through the status subresource (a spec write could not carry it).
    obj = wait_for(
        lambda: (
            (o := kube_real.get(path(ns, "awsaccounts", "prod")))
            and settled(o, "Connected", "Ready")
            and o
        ),
        what="the account connected",
    )
    assert "cloudsweep.io/finalizer" in obj["metadata"]["finalizers"]
    assert obj["status"]["externalId"]
    assert "Connected" in events(kube_real, ns, "AwsAccount", "prod")
    [row] = table(kube_real, ns, "awsaccounts")
    assert (row["NAME"], row["ACCOUNT"], row["READY"], row["CONNECTED"]) == (
        "prod",
        world.account_id,
        "True",
        "True",
    ), row

    # A scan, started the documented way; the policy evaluated after it lists what waits.
    run_now(kube_real, ns, "first")
    assert {"ScanStarted", "ScanCompleted"} <= set(events(kube_real, ns, "ScanSchedule", "nightly"))
    scanned = wait_for(
        lambda: kube_real.get(path(ns, "awsaccounts", "prod"))["status"].get("lastScan"),
        what="lastScan",
    )
    assert scanned["outcome"] == "completed" and int(scanned["wasteItems"]) > 0
    status = wait_for(
        lambda: (
            (s := kube_real.get(path(ns, "cleanuppolicies", "idle-ips"))["status"]).get(
                "pendingApprovals"
            )
            and s
        ),
        what="pending approvals",
    )
    assert status["executed"] == 0
    ready = condition(kube_real.get(path(ns, "cleanuppolicies", "idle-ips")), "Ready")
    assert ready is not None and ready["reason"] == "AwaitingApproval"
    [row] = table(kube_real, ns, "cleanuppolicies")
    assert row["NAME"] == "idle-ips"
    pending = status["pendingApprovals"][0]
    # Kept whole by the server's schema (it prunes what the CRD does not name): an entry has
    # what an approval needs, and why it waits.
    assert set(pending) == {"accountId", "region", "resourceId", "maxMonthlyCost", "reason"}
    allocation = pending["resourceId"]
    assert allocation.startswith("eipalloc-") and addresses(moto_endpoint, world, allocation)

    # Alice (cloudsweep-member) approves with kubectl: a CleanupApproval created with her own
    # token; the API server calls the record-approval webhook, which records her name as the
    # server authenticated it, and the operator honours the object because the record matches.
    approved = approvals.approve(kube_real, ns, "idle-ips", pending, user="alice")
    assert approved.returncode == 0, approved.stderr
    assert approvals.approver(kube_real, ns, "idle-ips", allocation) == "alice"

    # The next scan's cleanup run releases exactly that address, for real.
    run_now(kube_real, ns, "second")
    done = wait_for(
        lambda: (
            (s := kube_real.get(path(ns, "cleanuppolicies", "idle-ips"))["status"])["executed"] >= 1
            and s
        ),
        what="the approved item cleaned",
    )
    assert done["executed"] == 1 and done["failed"] == 0
    assert addresses(moto_endpoint, world, allocation) == []
    others = {p["resourceId"] for p in done.get("pendingApprovals") or []}
    assert allocation not in others and others, "only the approved address is released"
    for other in others:
        assert addresses(moto_endpoint, world, other), f"{other} was released without approval"

    # Deleting the account: the operator's finalizer runs, then the object is gone.
    kube_real.kubectl("delete", "awsaccount", "prod", "-n", ns, "--timeout=60s")
    assert kube_real.get(path(ns, "awsaccounts", "prod")) is None
    assert "Deleting" in events(kube_real, ns, "AwsAccount", "prod")


def test_an_invalid_object_the_server_cannot_judge_gets_a_permanent_condition(
    kube_real: KubeReal, namespace: str, cloudsweep_operator: OperatorProcess
) -> None:
    """The two checks a CRD schema cannot make (tests/kube_real/test_crds.py: OPERATOR_ONLY)
    are the operator's: the object is stored, and its status says what is wrong."""
    bad = schedule("bad-zone")
    bad["spec"]["timeZone"] = "Mars/Olympus_Mons"
    apply_objects(kube_real, [bad], "-n", namespace)

    ready = wait_for(
        lambda: condition(kube_real.get(path(namespace, "scanschedules", "bad-zone")), "Ready"),
        what="a Ready condition",
    )
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec", ready
    assert "unknown time zone 'Mars/Olympus_Mons'" in ready["message"]
    assert "InvalidSpec" in events(kube_real, namespace, "ScanSchedule", "bad-zone")
