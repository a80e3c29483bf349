"""CleanupApproval end to end: the operator acting for real on KMock + moto + PostgreSQL.

The API server's part is played by the test: KMock calls no webhooks, so a "properly admitted"
approval is what a real API server does (assign the UID and creationTimestamp, call the
validating webhook ``record-approval`` with the object and the requesting user, then store the
object). A forged one is what a hostile tenant can do: call the webhook directly, then write
the object straight to the API (where the API server assigns its own UID), or write it while
the webhook is bypassed and call the webhook afterwards with the stored UID.
"""

from __future__ import annotations

import calendar
import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
import sqlalchemy as sa

from cloudsweep import aws
from cloudsweep.demo import world as demo_world
from cloudsweep.store import FindingFilter
from tests import faults

from .conftest import Cluster, condition, wait_for
from .test_schedules_and_policies import connected_account, schedule_spec

NS = "team-a"
REGION = "us-east-1"
MARIA = {"username": "maria@example.com", "uid": "u-maria", "groups": ["payments-leads"]}
MALLORY = {"username": "mallory@example.com", "uid": "u-mallory", "groups": ["payments"]}


def utc(offset_seconds: float = 0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset_seconds))


def approval_object(
    name: str, resource_id: str, *, uid: str, created: str | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "cloudsweep.io/v1alpha1",
        "kind": "CleanupApproval",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": uid,
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": created or utc(),
        },
        "spec": {
            "policy": "idle-ips",
            "accountId": spec.pop("accountId"),
            "region": REGION,
            "resourceId": resource_id,
            "maxMonthlyCost": "10.00",
            **spec,
        },
    }


def call_webhook(port: int, obj: dict[str, Any], userinfo: dict[str, Any]) -> dict[str, Any]:
    """POST an AdmissionReview to the webhook, as the API server (or anyone reaching it) can."""
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"req-{obj['metadata']['uid']}",
            "kind": {"group": "cloudsweep.io", "version": "v1alpha1", "kind": "CleanupApproval"},
            "resource": {
                "group": "cloudsweep.io",
                "version": "v1alpha1",
                "resource": "cleanupapprovals",
            },
            "name": obj["metadata"]["name"],
            "namespace": NS,
            "operation": "CREATE",
            "userInfo": userinfo,
            "object": obj,
            "oldObject": None,
            "dryRun": False,
        },
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/record-approval", data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read())["response"])


def store_object(cluster: Cluster, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    cluster.create(
        "cleanupapprovals",
        "CleanupApproval",
        NS,
        meta["name"],
        obj["spec"],
        uid=meta["uid"],
        creationTimestamp=meta["creationTimestamp"],
    )


def admit(cluster: Cluster, port: int, obj: dict[str, Any], userinfo: dict[str, Any]) -> None:
    """A real API server's create: the webhook sees the object with its UID, then it is stored."""
    answer = call_webhook(port, obj, userinfo)
    assert answer["allowed"] is True, answer
    store_object(cluster, obj)


def ready(cluster: Cluster, name: str) -> dict[str, Any]:
    return condition(cluster.get("cleanupapprovals", NS, name), "Ready") or {}


def released(recorder: aws.CallRecorder) -> list[str]:
    return [
        str(c.params.get("AllocationId"))
        for c in recorder.calls(operation="ReleaseAddress")
        if not c.params.get("DryRun")
    ]


def ec2(world: demo_world.DemoWorld) -> Any:
    """moto's EC2, seen from outside CloudSweep (moto's default account is the demo account)."""
    assert world.account_id == "123456789012"
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=world.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def addresses(world: demo_world.DemoWorld) -> set[str]:
    return {a["AllocationId"] for a in ec2(world).describe_addresses()["Addresses"]}


def _run_now(cluster: Cluster, value: str) -> None:
    """Trigger the schedule's scan (and the namespace's policies after it) and wait for it."""
    cluster.patch(
        "scanschedules",
        NS,
        "nightly",
        {"metadata": {"annotations": {"cloudsweep.io/run-now": value}}},
    )
    wait_for(
        lambda: (
            (s := cluster.get("scanschedules", NS, "nightly")["status"])["lastRunNow"] == value
            and s["lastRunOutcome"] == "completed"
        ),
        timeout=60,
        what=f"scan {value}",
    )


def _real_policy_awaiting_three(
    cluster: Cluster, operator: Any, world: demo_world.DemoWorld
) -> tuple[str, list[dict[str, Any]], Callable[[str], None]]:
    """A connected account, a third idle address beside the world's two, and a policy acting for
    real (``dryRun: false``) that a first scan leaves with the three awaiting approval. Returns
    the third address's ID, the pending entries and a ``run_now``."""
    third = ec2(world).allocate_address(Domain="vpc")["AllocationId"]
    cluster.create_namespace(NS, "uid-team-a")
    connected_account(cluster, world)
    cluster.create(
        "cleanuppolicies",
        "CleanupPolicy",
        NS,
        "idle-ips",
        {
            "resourceType": "elastic-ip",
            "action": "release",
            "accountSelector": {},
            "rules": {"minAgeDays": 0, "minConfidence": 50},
            "dryRun": False,
        },
    )
    cluster.create("scanschedules", "ScanSchedule", NS, "nightly", schedule_spec())
    _run_now(cluster, "scan")
    pending = wait_for(
        lambda: (
            len(p := cluster.get("cleanuppolicies", NS, "idle-ips")["status"]["pendingApprovals"])
            == 3
            and p
        ),
        what="three addresses awaiting approval",
    )
    # What the policy's status tells a person: every figure, and each finding waiting for them.
    status = cluster.get("cleanuppolicies", NS, "idle-ips")["status"]
    assert {k: status[k] for k in ("matched", "planned", "awaitingApproval")} == {
        "matched": 3,
        "planned": 0,
        "awaitingApproval": 3,
    }
    assert (status["executed"], status["failed"], status["savingsMonthly"]) == (0, 0, "0.00")
    evaluated_at = calendar.timegm(
        time.strptime(status["lastEvaluationTime"], "%Y-%m-%dT%H:%M:%SZ")
    )
    assert abs(evaluated_at - time.time()) < 120
    costs = {f.resource_id: f.monthly_cost for f in operator.store.findings(FindingFilter(NS))}
    for entry in pending:
        assert entry == {
            "accountId": world.account_id,
            "region": REGION,
            "resourceId": entry["resourceId"],
            "maxMonthlyCost": f"{costs[entry['resourceId']]:.2f}",
            "reason": entry["reason"],
        }
        assert entry["reason"].startswith(f"costs {costs[entry['resourceId']]}/month, above ")
    awaiting = condition(cluster.get("cleanuppolicies", NS, "idle-ips"), "Ready")
    assert awaiting is not None
    assert (awaiting["status"], awaiting["reason"], awaiting["message"]) == (
        "True",
        "AwaitingApproval",
        "3 items wait for an approval",
    )
    return third, list(pending), lambda value: _run_now(cluster, value)


def _why_not_recorded(cluster: Cluster, operator: Any, resource_id: str) -> str:
    """What a failed wait for an approval needs: the finding as the database has it, and each
    approval of it as the API server has it (conditions, and whether kopf took it on: its
    finalizer and annotations) with its admission record."""
    lines = []
    with sa.create_engine(operator.store.url).connect() as db:
        for row in db.execute(
            sa.text(
                "SELECT cleanup_status, cleanup_metadata, gone_at FROM waste_items "
                "WHERE resource_id = :id"
            ),
            {"id": resource_id},
        ):
            lines.append(f"finding {resource_id}: {tuple(row)}")
        listed = cluster.request(
            "GET", f"/apis/cloudsweep.io/v1alpha1/namespaces/{NS}/cleanupapprovals"
        )
        for obj in (listed or {}).get("items") or []:
            if obj.get("spec", {}).get("resourceId") != resource_id:
                continue
            meta = obj["metadata"]
            admitted = db.execute(
                sa.text("SELECT admitted_at FROM approval_admissions WHERE object_uid = :uid"),
                {"uid": meta.get("uid")},
            ).all()
            lines.append(
                f"approval {meta['name']}: created {meta.get('creationTimestamp')}, admitted "
                f"{admitted}, finalizers {meta.get('finalizers')}, annotations "
                f"{sorted(meta.get('annotations') or {})}, status {obj.get('status')}"
            )
        # What ran when: a scan or cleanup run the test did not expect shows here.
        for row in db.execute(
            sa.text("SELECT started_at, completed_at, status, scan_type FROM scan_results")
        ):
            lines.append(f"scan: {tuple(row)}")
        for row in db.execute(
            sa.text(
                "SELECT a.created_at, a.completed_at, a.status, w.resource_id, a.dry_run, "
                "a.run_id, left(a.error_message, 80) FROM cleanup_actions a "
                "JOIN waste_items w ON w.id = a.waste_item_id ORDER BY a.created_at"
            )
        ):
            lines.append(f"action: {tuple(row)}")
    lines.append(f"now {utc()}")
    return "\n".join(lines)


def _wait_recorded(
    cluster: Cluster,
    operator: Any,
    resource_id: str,
    status_of: Callable[[str], str],
    what: str,
) -> None:
    """Wait for the finding to be approved; on time-out, say where it stopped. (At stops 21-23
    about one run in 30 timed out: the finding was already cleaned or failed, by a run that
    ``run_now`` had taken for finished before it began: the operator showed the previous run's
    outcome beside the new lastRunNow.)"""
    try:
        wait_for(lambda: status_of(resource_id) == "approved", what=what)
    except AssertionError as error:
        raise AssertionError(
            f"{error}\n{_why_not_recorded(cluster, operator, resource_id)}"
        ) from None


def test_the_operator_acts_for_real_only_on_admitted_approvals(
    cluster: Cluster, operator, world, recorder, webhook_port: int
) -> None:
    third, pending, run_now = _real_policy_awaiting_three(cluster, operator, world)
    ids = sorted(p["resourceId"] for p in pending)
    assert third in ids
    forged_id, failing_id = (i for i in ids if i != third)
    good_id = third
    account = world.account_id

    def status_of(resource_id: str) -> str:
        [item] = [
            f
            for f in operator.store.findings(FindingFilter(NS, account_id=account, region=REGION))
            if f.resource_id == resource_id
        ]
        return str(item.cleanup_status)

    # 1. A stamp obtained by a direct POST: the webhook answers anyone who reaches it, but what it
    # records is bound to the UID in the request, and the object written straight to the API gets
    # the API server's own UID: the record does not match, the approval is ignored.
    forged = approval_object("forged", forged_id, uid="uid-guessed-by-mallory", accountId=account)
    assert call_webhook(webhook_port, forged, {"username": "the-boss"})["allowed"] is True
    store_object(cluster, {**forged, "metadata": {**forged["metadata"], "uid": "uid-from-api"}})
    # 2. Written while the webhook was bypassed, then the real UID sent to the webhook later.
    late = approval_object("late", forged_id, uid="uid-late", created=utc(-600), accountId=account)
    store_object(cluster, late)
    assert call_webhook(webhook_port, late, {"username": "the-boss"})["allowed"] is True

    for name, why in (("forged", "no record"), ("late", "not made when the object was created")):
        cond = wait_for(
            lambda n=name: (c := ready(cluster, n)).get("reason") == "ApprovalIgnored" and c,
            what=f"{name} ignored",
        )
        assert cond["status"] == "False"
        assert why in cond["message"] or "has no record" in cond["message"], cond
    events = wait_for(
        lambda: [e for e in cluster.events(NS) if e.get("reason") == "ApprovalIgnored"],
        what="ApprovalIgnored events",
    )
    assert {e["involvedObject"]["name"] for e in events} >= {"forged", "late"}
    run_now("after-forgeries")
    assert status_of(forged_id) == "pending"
    assert released(recorder) == []
    assert [c for c in recorder.mutating() if not c.params.get("DryRun")] == []
    assert operator.store.actions(NS, include_dry_runs=False) == []

    # 3. A properly admitted approval: one release, one ledger row, the policy's status counts it.
    admit(
        cluster,
        webhook_port,
        approval_object("good", good_id, uid="uid-good", accountId=account),
        MARIA,
    )
    recorded = wait_for(
        lambda: (c := ready(cluster, "good")).get("reason") == "Recorded" and c,
        what="good approval recorded",
    )
    assert "maria@example.com" in recorded["message"]
    assert (
        cluster.get("cleanupapprovals", NS, "good")["status"]["approvedBy"] == "maria@example.com"
    )
    assert status_of(good_id) == "approved"
    run_now("after-approval")
    assert released(recorder) == [good_id]
    assert good_id not in addresses(world) and forged_id in addresses(world)
    [row] = operator.store.actions(NS, include_dry_runs=False)
    assert (row.resource_id, row.status, row.policy_name) == (good_id, "succeeded", "idle-ips")
    assert "approved by maria@example.com" in str(row.decision_reason)
    status = wait_for(
        lambda: (
            (s := cluster.get("cleanuppolicies", NS, "idle-ips")["status"]).get("executed") == 1
            and s
        ),
        what="executed=1",
    )
    assert status["failed"] == 0
    assert status["savingsMonthly"] == f"{row.estimated_monthly_savings:.2f}"
    assert float(status["savingsMonthly"]) > 0

    # 4. A release that fails: CleanupFailed, until a later attempt succeeds.
    def failing_release(*args: Any, **kwargs: Any) -> aws.AccountSession:
        session = aws.AccountSession(*args, **kwargs)
        faults.fail_with(
            session.events,
            "before-send.ec2.ReleaseAddress",
            status=400,
            body=faults.ec2_error_body("AuthFailure", "not allowed to release this address"),
        )
        return session

    operator.session_factory = failing_release
    admit(
        cluster,
        webhook_port,
        approval_object("fails", failing_id, uid="uid-fails", accountId=account),
        MARIA,
    )
    _wait_recorded(cluster, operator, failing_id, status_of, "second approval recorded")
    run_now("failing")
    failed = wait_for(
        lambda: (
            (c := condition(cluster.get("cleanuppolicies", NS, "idle-ips"), "Ready"))
            and c["reason"] == "CleanupFailed"
            and c
        ),
        what="CleanupFailed",
    )
    assert failed["status"] == "False"
    assert failed["message"] == (
        "the latest cleanup attempt failed (1 failed in all); see `cloudsweep actions`"
    )
    assert cluster.get("cleanuppolicies", NS, "idle-ips")["status"]["failed"] == 1
    assert failing_id in addresses(world)

    operator.session_factory = aws.AccountSession
    admit(
        cluster,
        webhook_port,
        approval_object("second-try", forged_id, uid="uid-second", accountId=account),
        MARIA,
    )
    _wait_recorded(cluster, operator, forged_id, status_of, "a proper approval of the first")
    run_now("recovered")
    cleared = wait_for(
        lambda: (
            (c := condition(cluster.get("cleanuppolicies", NS, "idle-ips"), "Ready"))
            and c["reason"] != "CleanupFailed"
            and c
        ),
        what="CleanupFailed cleared",
    )
    assert cleared["status"] == "True", cleared
    final = cluster.get("cleanuppolicies", NS, "idle-ips")["status"]
    assert (final["executed"], final["failed"]) == (2, 1)
    # One call per approved item (the failed one answered with an error, and not retried).
    assert sorted(released(recorder)) == sorted([good_id, failing_id, forged_id])
    assert addresses(world) & {good_id, failing_id, forged_id} == {failing_id}
    assert len(operator.store.actions(NS, include_dry_runs=False)) == 3


def test_deleting_an_unadmitted_approval_releases_it(cluster: Cluster, operator, world) -> None:
    cluster.create_namespace(NS, "uid-team-a")
    store_object(
        cluster,
        approval_object("unadmitted", "eipalloc-1", uid="uid-x", accountId=world.account_id),
    )
    wait_for(
        lambda: ready(cluster, "unadmitted").get("reason") == "ApprovalIgnored", what="ignored"
    )
    # The honour timer runs every second here: the person is warned once, not on every tick.
    time.sleep(4)
    warned = [
        (e["type"], e["reason"], e["message"])
        for e in cluster.events(NS)
        if e["involvedObject"]["name"] == "unadmitted"
    ]
    assert warned == [("Warning", "ApprovalIgnored", NO_RECORD)]
    assert ready(cluster, "unadmitted")["message"] == NO_RECORD
    cluster.delete("cleanupapprovals", NS, "unadmitted")
    wait_for(
        lambda: cluster.get("cleanupapprovals", NS, "unadmitted") is None,
        what="the approval deleted (finalizer released)",
    )


ARGOCD = "system:serviceaccount:argocd:argocd-application-controller"
NO_RECORD = (
    "CloudSweep's admission webhook has no record of this object: it was written while the "
    "webhook was down or bypassed; delete it and create it again"
)


def gitops_apply(cluster: Cluster, name: str, spec: dict[str, Any], **labels: str) -> None:
    """The GitOps controller's sync: the policy as Git has it, applied server-side by its own
    field manager (KMock merges what it is sent; a real API server applies it field by field)."""
    manifest = {
        "apiVersion": "cloudsweep.io/v1alpha1",
        "kind": "CleanupPolicy",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": spec,
    }
    cluster.request(
        "PATCH",
        f"/apis/cloudsweep.io/v1alpha1/namespaces/{NS}/cleanuppolicies/{name}"
        "?fieldManager=argocd-controller&force=true",
        manifest,
        "application/apply-patch+yaml",
    )


def test_gitops_owns_the_policy_people_own_the_approvals(
    cluster: Cluster, operator, world, webhook_port: int
) -> None:
    """Issue 17.4: a later sync of the policy by the GitOps controller neither removes nor
    forges approvals; it cannot re-approve a rejected finding; a change of the policy's spec
    ends the approvals given under the old spec."""
    cluster.create_namespace(NS, "uid-team-a")
    connected_account(cluster, world)
    spec: dict[str, Any] = {
        "resourceType": "elastic-ip",
        "action": "release",
        "accountSelector": {},
        "rules": {"minAgeDays": 0, "minConfidence": 50},
        "dryRun": True,
    }
    cluster.create("cleanuppolicies", "CleanupPolicy", NS, "idle-ips", spec)
    cluster.create("scanschedules", "ScanSchedule", NS, "nightly", schedule_spec())
    cluster.patch(
        "scanschedules",
        NS,
        "nightly",
        {"metadata": {"annotations": {"cloudsweep.io/run-now": "1"}}},
    )
    pending = wait_for(
        lambda: cluster.get("cleanuppolicies", NS, "idle-ips")["status"]["pendingApprovals"],
        timeout=60,
        what="findings awaiting approval",
    )
    first, second = sorted(p["resourceId"] for p in pending)[:2]
    account = world.account_id

    def status_of(resource_id: str) -> str:
        [found] = [
            f
            for f in operator.store.findings(FindingFilter(NS, account_id=account, region=REGION))
            if f.resource_id == resource_id
        ]
        return str(found.cleanup_status)

    admit(
        cluster, webhook_port, approval_object("a1", first, uid="uid-a1", accountId=account), MARIA
    )
    admit(
        cluster, webhook_port, approval_object("a2", second, uid="uid-a2", accountId=account), MARIA
    )
    wait_for(lambda: {status_of(first), status_of(second)} == {"approved"}, what="both approved")

    # A sync that changes only metadata, and that carries a forged in-policy approval in the name
    # of a person: the approvals stay as they were, the forged entry is reported and ignored.
    forged = {
        "accountId": account,
        "region": REGION,
        "resourceId": first,
        "maxMonthlyCost": "99.00",
        "approvedBy": "maria@example.com",
    }
    gitops_apply(cluster, "idle-ips", {**spec, "approvals": [forged]}, team="payments")
    wait_for(
        lambda: [
            e
            for e in cluster.events(NS)
            if e.get("reason") == "ApprovalIgnored" and e["involvedObject"]["name"] == "idle-ips"
        ],
        what="the forged in-policy entry reported",
    )
    [reported] = [
        e["message"]
        for e in cluster.events(NS)
        if e.get("reason") == "ApprovalIgnored" and e["involvedObject"]["name"] == "idle-ips"
    ][:1]
    assert reported == (
        "1 entries of spec.approvals are ignored: approvals are CleanupApproval objects now, "
        "created with kubectl under your own credentials; see docs/approvals.md"
    )
    listed = cluster.request(
        "GET", f"/apis/cloudsweep.io/v1alpha1/namespaces/{NS}/cleanupapprovals"
    )
    assert sorted(o["metadata"]["name"] for o in listed["items"]) == ["a1", "a2"]
    assert {status_of(first), status_of(second)} == {"approved"}
    approval = operator.store.candidate(
        next(f.id for f in operator.store.findings(FindingFilter(NS)) if f.resource_id == first)
    ).approval
    assert approval.approver_email == "maria@example.com" and approval.monthly_cost == 10

    # Someone rejects the first finding; later syncs (a label change) never re-approve it.
    admit(
        cluster,
        webhook_port,
        approval_object("r1", first, uid="uid-r1", accountId=account, decision="Reject"),
        {"username": "ada@example.com", "groups": ["finops"]},
    )
    wait_for(lambda: status_of(first) == "rejected", what="rejected")
    gitops_apply(cluster, "idle-ips", spec, team="payments", synced="again")
    time.sleep(3)  # several ticks of every timer (1 s here)
    assert status_of(first) == "rejected"
    assert ready(cluster, "a1")["reason"] == "Recorded"  # the object is fine; the decision is newer

    # The policy's spec changes in Git (a wider rule): the approvals given under the old spec end.
    gitops_apply(cluster, "idle-ips", {**spec, "rules": {"minAgeDays": 0, "minConfidence": 10}})
    ignored = wait_for(
        lambda: (c := ready(cluster, "a2")).get("reason") == "ApprovalIgnored" and c,
        what="the old approval ignored",
    )
    assert "changed since this approval was given" in ignored["message"]
    awaiting = wait_for(
        lambda: [
            p["resourceId"]
            for p in cluster.get("cleanuppolicies", NS, "idle-ips")["status"]["pendingApprovals"]
            if p["resourceId"] == second
        ],
        what="the second finding awaiting approval again",
    )
    assert awaiting == [second]


def test_the_webhook_records_once_and_refuses_what_it_cannot_bind(
    cluster: Cluster, operator, world, webhook_port: int
) -> None:
    cluster.create_namespace(NS, "uid-team-a")
    account = world.account_id
    obj = approval_object("a", "eipalloc-1", uid="uid-a", accountId=account)
    # No such policy (yet): refused, nothing recorded.
    answer = call_webhook(webhook_port, obj, MARIA)
    assert answer["allowed"] is False and answer["status"]["code"] == 404
    assert "no valid CleanupPolicy 'idle-ips'" in answer["status"]["message"]
    assert operator.store.admission("uid-a") is None

    cluster.create(
        "cleanuppolicies",
        "CleanupPolicy",
        NS,
        "idle-ips",
        {"resourceType": "elastic-ip", "action": "release", "accountSelector": {}},
    )
    wait_for(lambda: (NS, "idle-ips") in operator.policies, what="the policy known")
    # Without the UID the API server assigns, there is nothing to bind the record to.
    no_uid = approval_object("b", "eipalloc-1", uid="", accountId=account)
    assert call_webhook(webhook_port, no_uid, MARIA)["status"]["code"] == 400
    # A dry run (kubectl create --dry-run=server) records nothing.
    dry = {**obj, "metadata": {**obj["metadata"], "uid": "uid-dry"}}
    body_dry = call_webhook_dry(webhook_port, dry, MARIA)
    assert body_dry["allowed"] is True
    assert operator.store.admission("uid-dry") is None
    # The API server's call records; its retry is fine; a later call in another name is refused.
    assert call_webhook(webhook_port, obj, MARIA)["allowed"] is True
    assert call_webhook(webhook_port, obj, MARIA)["allowed"] is True
    again = call_webhook(webhook_port, obj, MALLORY)
    assert again["allowed"] is False and again["status"]["code"] == 409
    record = operator.store.admission("uid-a")
    assert record is not None and record.username == "maria@example.com"
    assert record.groups == ("payments-leads",)
    # What is stored must be what was admitted: a raised cost is not the admitted approval.
    raised = {**obj, "spec": {**obj["spec"], "maxMonthlyCost": "999.00"}}
    store_object(cluster, raised)
    ignored = wait_for(
        lambda: (c := ready(cluster, "a")).get("reason") == "ApprovalIgnored" and c,
        what="a changed spec ignored",
    )
    assert "differs from what the API server admitted" in ignored["message"]


def call_webhook_dry(port: int, obj: dict[str, Any], userinfo: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "req-dry",
            "kind": {"group": "cloudsweep.io", "version": "v1alpha1", "kind": "CleanupApproval"},
            "resource": {
                "group": "cloudsweep.io",
                "version": "v1alpha1",
                "resource": "cleanupapprovals",
            },
            "name": obj["metadata"]["name"],
            "namespace": NS,
            "operation": "CREATE",
            "userInfo": userinfo,
            "object": obj,
            "oldObject": None,
            "dryRun": True,
        },
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/record-approval", data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read())["response"])


def test_an_expired_or_withdrawn_approval_releases_nothing(
    cluster: Cluster, operator, world, recorder, webhook_port: int, database_url: str
) -> None:
    """Two admitted approvals the person ended: one whose ``expiresAt`` has passed, one whose
    object was deleted (the approval withdrawn). The policy acts for real: a third, valid
    approval is released in the same run, neither of the other two (moto is the oracle); the
    expired approval's status shows the person's expiry."""
    third, pending, run_now = _real_policy_awaiting_three(cluster, operator, world)
    expired_id, withdrawn_id = sorted(p["resourceId"] for p in pending if p["resourceId"] != third)
    account = world.account_id

    def status_of(resource_id: str) -> str:
        [item] = [
            f
            for f in operator.store.findings(FindingFilter(NS, account_id=account, region=REGION))
            if f.resource_id == resource_id
        ]
        return str(item.cleanup_status)

    expired_at = utc(-3600)
    admit(
        cluster,
        webhook_port,
        approval_object(
            "expired", expired_id, uid="uid-expired", accountId=account, expiresAt=expired_at
        ),
        MARIA,
    )
    admit(
        cluster,
        webhook_port,
        approval_object("withdrawn", withdrawn_id, uid="uid-withdrawn", accountId=account),
        MARIA,
    )
    wait_for(
        lambda: {status_of(expired_id), status_of(withdrawn_id)} == {"approved"},
        what="both approvals recorded",
    )
    assert cluster.get("cleanupapprovals", NS, "expired")["status"]["expiresAt"] == expired_at
    # What the run decides by: the ledger holds the person's expiry, not the policy's TTL.
    [expired_item] = [
        f for f in operator.store.findings(FindingFilter(NS)) if f.resource_id == expired_id
    ]
    approval = operator.store.candidate(expired_item.id).approval
    assert approval is not None
    assert approval.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") == expired_at
    # The same resource ID in another account or region is another resource: not this finding.
    for name, where in (
        ("other-account", {"accountId": "210987654321"}),
        ("other-region", {"accountId": account, "region": "eu-west-1"}),
    ):
        admit(
            cluster, webhook_port, approval_object(name, third, uid=f"uid-{name}", **where), MARIA
        )
        not_found = wait_for(
            lambda n=name: (c := ready(cluster, n)).get("reason") == "FindingNotFound" and c,
            what=f"{name}: no finding",
        )
        assert (not_found["status"], not_found["message"]) == (
            "False",
            "no open finding matches accountId, region and resourceId yet; it is recorded as "
            "soon as a scan finds it",
        )
        assert cluster.get("cleanupapprovals", NS, name)["status"]["findings"] == 0
    assert status_of(third) == "pending"
    cluster.delete("cleanupapprovals", NS, "withdrawn")
    wait_for(lambda: status_of(withdrawn_id) == "pending", what="the approval withdrawn")
    admit(
        cluster,
        webhook_port,
        approval_object("valid", third, uid="uid-valid", accountId=account),
        MARIA,
    )
    wait_for(lambda: status_of(third) == "approved", what="the valid approval recorded")

    run_now("after-all")
    # The run that released the valid one decided the other two as well.
    wait_for(lambda: third in released(recorder), what="the valid approval acted on")
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            running = sa.text("SELECT count(*) FROM cleanup_runs WHERE status = 'running'")
            wait_for(
                lambda: connection.execute(running).scalar_one() == 0,
                what="that cleanup run closed",
            )
    finally:
        engine.dispose()
    assert released(recorder) == [third]
    assert {expired_id, withdrawn_id} <= addresses(world)
    assert third not in addresses(world)
    rows = wait_for(
        lambda: operator.store.actions(NS, include_dry_runs=False), what="the release recorded"
    )
    assert [(r.resource_id, r.status) for r in rows] == [(third, "succeeded")]
