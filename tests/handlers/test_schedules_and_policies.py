"""ScanSchedule and CleanupPolicy through the operator: run-now, status, policies after a scan,
tenancy across namespaces, and approvals stamped (and signed) by the admission webhook."""

from __future__ import annotations

import json
import time
from typing import Any

from cloudsweep.demo import world as demo_world
from cloudsweep.store import FindingFilter

from .conftest import Cluster, condition, wait_for
from .test_awsaccounts import account_spec
from .test_policy_access import review

NS = "team-a"


def connected_account(
    cluster: Cluster, world: demo_world.DemoWorld, namespace: str = NS, name: str = "prod"
) -> None:
    cluster.create(
        "awsaccounts", "AwsAccount", namespace, name, account_spec(world), labels={"env": "prod"}
    )
    wait_for(
        lambda: (
            (condition(cluster.get("awsaccounts", namespace, name), "Connected") or {}).get(
                "status"
            )
            == "True"
        ),
        what="account connected",
    )


def schedule_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "schedule": "0 3 * * *",
        "timeZone": "Europe/Berlin",
        "accountSelector": {"matchLabels": {"env": "prod"}},
    }
    spec.update(overrides)
    return {k: v for k, v in spec.items() if v is not None}


def test_run_now_scans_reports_back_and_runs_the_namespaces_policies(
    cluster: Cluster, operator, world, recorder
) -> None:
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
        },
    )
    cluster.create("scanschedules", "ScanSchedule", NS, "nightly", schedule_spec())
    scheduled = wait_for(
        lambda: cluster.get("scanschedules", NS, "nightly")["status"]["nextScheduleTime"],
        what="next time",
    )
    assert scheduled.endswith("Z")  # 03:00 in Berlin, expressed in UTC
    assert scheduled[11:16] in ("02:00", "01:00")

    cluster.patch(
        "scanschedules",
        NS,
        "nightly",
        {"metadata": {"annotations": {"cloudsweep.io/run-now": "first"}}},
    )
    done = wait_for(
        lambda: (
            (s := cluster.get("scanschedules", NS, "nightly")["status"]).get("lastRunOutcome")
            == "completed"
            and s
        ),
        timeout=60,
        what="scan completed",
    )
    assert done["lastRunNow"] == "first"
    assert condition(cluster.get("scanschedules", NS, "nightly"), "Ready")["status"] == "True"
    account = wait_for(
        lambda: cluster.get("awsaccounts", NS, "prod")["status"].get("lastScan"), what="lastScan"
    )
    assert account["outcome"] == "completed" and int(account["wasteItems"]) > 0
    assert float(account["monthlyWaste"]) > 0
    # The policy was evaluated after the scan. Auto cleanup is off (the default), so the operator
    # acts on nothing by itself: the items wait for approval, listed ready to copy into approvals.
    assert [c for c in recorder.mutating() if not c.params.get("DryRun")] == []
    policy = wait_for(
        lambda: (
            (p := cluster.get("cleanuppolicies", NS, "idle-ips")["status"]).get("awaitingApproval")
            and p
        ),
        what="policy status",
    )
    assert policy["matched"] >= policy["awaitingApproval"] >= 1
    pending = policy["pendingApprovals"][0]
    assert pending["accountId"] == world.account_id and pending["resourceId"].startswith(
        "eipalloc-"
    )
    ready = condition(cluster.get("cleanuppolicies", NS, "idle-ips"), "Ready")
    assert ready is not None and ready["reason"] == "AwaitingApproval"
    assert operator.store.actions(NS) == []

    # The same annotation value again does nothing; a new value runs again. "Nothing" is only
    # proven once the operator has looked at the object since: suspending and resuming it flips
    # its Ready reason (Suspended, then Scheduled), each seen by a timer tick that also read the
    # unchanged annotation.
    scans_before = len(recorder.calls(operation="DescribeVolumes"))
    assert scans_before > 0

    def ready_reason() -> str | None:
        return (condition(cluster.get("scanschedules", NS, "nightly"), "Ready") or {}).get("reason")

    cluster.patch(
        "scanschedules",
        NS,
        "nightly",
        {
            "metadata": {"annotations": {"cloudsweep.io/run-now": "first"}},
            "spec": {"suspend": True},
        },
    )
    wait_for(lambda: ready_reason() == "Suspended", what="suspended seen")
    cluster.patch("scanschedules", NS, "nightly", {"spec": {"suspend": False}})
    wait_for(lambda: ready_reason() == "Scheduled", what="resumed seen")
    assert len(recorder.calls(operation="DescribeVolumes")) == scans_before
    assert cluster.get("scanschedules", NS, "nightly")["status"]["lastRunNow"] == "first"

    cluster.patch(
        "scanschedules",
        NS,
        "nightly",
        {"metadata": {"annotations": {"cloudsweep.io/run-now": "second"}}},
    )
    wait_for(
        lambda: len(recorder.calls(operation="DescribeVolumes")) > scans_before,
        timeout=60,
        what="a new run-now value scans again",
    )
    wait_for(
        lambda: cluster.get("scanschedules", NS, "nightly")["status"].get("lastRunNow") == "second",
        what="lastRunNow second",
    )


def test_a_new_run_now_never_shows_the_previous_runs_outcome(
    cluster: Cluster, operator, world, recorder
) -> None:
    """``lastRunOutcome`` is how the latest run ended: from the tick that takes a new run-now
    value, it says ``running`` until that run's scan (slowed at the botocore layer) has ended.
    Showing the previous run's ``completed`` beside the new ``lastRunNow`` told anyone waiting
    for the run (a script, a GitOps check, these tests) that it was done before it started."""
    from cloudsweep import aws

    cluster.create_namespace(NS, "uid-team-a")
    connected_account(cluster, world)
    cluster.create("scanschedules", "ScanSchedule", NS, "nightly", schedule_spec())

    def run_now(value: str) -> list[tuple[str | None, str | None]]:
        """Every (lastRunNow, lastRunOutcome) the status shows until this run is reported."""
        cluster.patch(
            "scanschedules",
            NS,
            "nightly",
            {"metadata": {"annotations": {"cloudsweep.io/run-now": value}}},
        )
        seen: list[tuple[str | None, str | None]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = cluster.get("scanschedules", NS, "nightly").get("status") or {}
            shown = (status.get("lastRunNow"), status.get("lastRunOutcome"))
            if not seen or seen[-1] != shown:
                seen.append(shown)
            if shown == (value, "completed"):
                return seen
            time.sleep(0.05)
        raise AssertionError(f"run {value} not reported; status showed {seen}")

    run_now("first")
    scans = len(recorder.calls(operation="DescribeVolumes"))

    def slow(*args: Any, **kwargs: Any) -> aws.AccountSession:
        session = aws.AccountSession(*args, **kwargs)
        session.events.register("before-call.ec2.DescribeVolumes", lambda **_: time.sleep(3))
        return session

    operator.session_factory = slow
    seen = run_now("second")
    # When the status first says the second run completed, its scan has listed the volumes.
    assert len(recorder.calls(operation="DescribeVolumes")) == scans + 1
    second = [outcome for run, outcome in seen if run == "second"]
    assert second[0] == "running", seen
    assert second[-1] == "completed", seen


def test_a_schedule_never_reaches_another_namespaces_account(
    cluster: Cluster, operator, world, recorder
) -> None:
    cluster.create_namespace(NS, "uid-team-a")
    cluster.create_namespace("team-b", "uid-team-b")
    connected_account(cluster, world)
    cluster.create(
        "scanschedules",
        "ScanSchedule",
        "team-b",
        "sneaky",
        schedule_spec(accountSelector=None, accounts=["prod"]),
        annotations={"cloudsweep.io/run-now": "go"},
    )
    ready = wait_for(
        lambda: condition(cluster.get("scanschedules", "team-b", "sneaky"), "Ready"), what="Ready"
    )
    assert ready["status"] == "False" and ready["reason"] == "NoAccountsSelected"
    assert recorder.calls(operation="DescribeVolumes") == []
    assert operator.store.organization("team-b") is not None
    assert operator.store.findings(FindingFilter("team-b")) == []


def test_suspended_schedules_and_invalid_objects_are_conditions(
    cluster: Cluster, operator, world, recorder
) -> None:
    cluster.create_namespace(NS, "uid-team-a")
    cluster.create("scanschedules", "ScanSchedule", NS, "paused", schedule_spec(suspend=True))
    cluster.create(
        "scanschedules", "ScanSchedule", NS, "broken", schedule_spec(schedule="every tuesday")
    )
    cluster.create(
        "cleanuppolicies",
        "CleanupPolicy",
        NS,
        "bad",
        {"resourceType": "elastic-ip", "action": "delete", "accountSelector": {}},
    )
    paused = wait_for(
        lambda: condition(cluster.get("scanschedules", NS, "paused"), "Ready"), what="paused"
    )
    assert paused["reason"] == "Suspended"
    broken = wait_for(
        lambda: condition(cluster.get("scanschedules", NS, "broken"), "Ready"), what="broken"
    )
    assert (
        broken["status"] == "False"
        and broken["reason"] == "InvalidSpec"
        and "schedule" in broken["message"]
    )
    bad = wait_for(
        lambda: condition(cluster.get("cleanuppolicies", NS, "bad"), "Ready"), what="bad policy"
    )
    assert (
        bad["status"] == "False" and bad["reason"] == "InvalidSpec" and "action" in bad["message"]
    )
    assert recorder.records == []


def _admission(
    port: int, obj: dict[str, Any], old: dict[str, Any] | None, user: str
) -> dict[str, Any]:
    """The mutating webhook's AdmissionReview answer, as the API server receives it."""
    return {"response": review(port, "stamp-approvals", obj, old, {"username": user})}


def _apply_patch(obj: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    import base64

    import jsonpatch  # type: ignore[import-untyped]

    patch = json.loads(base64.b64decode(response["response"]["patch"]))
    return dict(jsonpatch.apply_patch(obj, patch))


def test_the_webhook_stamps_approvals_but_spec_approvals_are_never_honoured(
    cluster: Cluster, operator, world, webhook_port: int
) -> None:
    cluster.create_namespace(NS, "uid-team-a")
    connected_account(cluster, world)
    policy = {
        "apiVersion": "cloudsweep.io/v1alpha1",
        "kind": "CleanupPolicy",
        "metadata": {"name": "ips", "namespace": NS},
        "spec": {
            "resourceType": "elastic-ip",
            "action": "release",
            "accounts": ["prod"],
            "approvals": [
                {
                    "accountId": world.account_id,
                    "region": "us-east-1",
                    "resourceId": "eipalloc-1",
                    "maxMonthlyCost": "4.00",
                    "approvedBy": "the-boss",
                }
            ],
        },
    }
    first = _admission(webhook_port, policy, None, "alice@example.com")
    assert first["response"]["allowed"] is True
    stamped = _apply_patch(policy, first)
    [entry] = stamped["spec"]["approvals"]
    assert entry["approvedBy"] == "alice@example.com"  # not the forged "the-boss"
    signatures = json.loads(stamped["metadata"]["annotations"]["cloudsweep.io/approval-signatures"])
    assert list(signatures) == [f"{world.account_id}/us-east-1/eipalloc-1"]

    # Bob edits something else: Alice's approval keeps her name; a changed approval gets Bob's.
    edited = json.loads(json.dumps(stamped))
    edited["spec"]["approvals"][0]["approvedBy"] = "bob-pretending"
    second = _apply_patch(edited, _admission(webhook_port, edited, stamped, "bob@example.com"))
    assert second["spec"]["approvals"][0]["approvedBy"] == "alice@example.com"
    raised = json.loads(json.dumps(second))
    raised["spec"]["approvals"][0]["maxMonthlyCost"] = "9.00"
    third = _apply_patch(raised, _admission(webhook_port, raised, second, "bob@example.com"))
    assert third["spec"]["approvals"][0]["approvedBy"] == "bob@example.com"

    # Even with the webhook's valid stamp, entries of spec.approvals are never honoured: the
    # stamp could be had by a direct call to the webhook (docs/approvals.md). They are
    # reported, and approvals are CleanupApproval objects (test_approvals.py).
    cluster.create(
        "cleanuppolicies",
        "CleanupPolicy",
        NS,
        "ips",
        third["spec"],
        annotations=third["metadata"]["annotations"],
    )
    event = wait_for(
        lambda: [
            e
            for e in cluster.events(NS)
            if e.get("reason") == "ApprovalIgnored" and e["involvedObject"]["name"] == "ips"
        ],
        what="ApprovalIgnored on the policy",
    )
    assert "CleanupApproval" in event[0]["message"]
    assert not [
        f for f in operator.store.findings(FindingFilter(NS)) if f.cleanup_status == "approved"
    ]


def test_the_plans_monthly_scan_limit_is_enforced_with_a_condition(
    cluster: Cluster, operator, world, recorder
) -> None:
    operator.settings = operator.settings.model_copy(update={"default_monthly_scan_limit": 1})
    cluster.create_namespace(NS, "uid-team-a")
    connected_account(cluster, world)
    assert operator.store.organization(NS).monthly_scan_limit == 1  # type: ignore[union-attr]
    cluster.create("scanschedules", "ScanSchedule", NS, "often", schedule_spec())
    cluster.patch(
        "scanschedules", NS, "often", {"metadata": {"annotations": {"cloudsweep.io/run-now": "1"}}}
    )
    wait_for(
        lambda: (
            cluster.get("scanschedules", NS, "often")["status"].get("lastRunOutcome") == "completed"
        ),
        timeout=60,
        what="first scan",
    )
    scans = len(recorder.calls(operation="DescribeVolumes"))
    cluster.patch(
        "scanschedules", NS, "often", {"metadata": {"annotations": {"cloudsweep.io/run-now": "2"}}}
    )
    ready = wait_for(
        lambda: (
            (c := condition(cluster.get("scanschedules", NS, "often"), "Ready"))
            and c["reason"] == "ScanLimitReached"
            and c
        ),
        what="ScanLimitReached",
    )
    assert "1 scans a month" in ready["message"] and "monthly_scan_limit" in ready["message"]
    assert len(recorder.calls(operation="DescribeVolumes")) == scans


def test_forbid_never_runs_two_scans_of_one_account_at_once(
    cluster: Cluster, operator, world, recorder
) -> None:
    """Two schedules select the same account; the scan is slowed at the botocore layer so the
    second request arrives while the first runs."""
    import time as _time

    from cloudsweep import aws

    def slow(*args: Any, **kwargs: Any) -> aws.AccountSession:
        session = aws.AccountSession(*args, **kwargs)
        session.events.register("before-call.ec2.DescribeVolumes", lambda **_: _time.sleep(3))
        return session

    cluster.create_namespace(NS, "uid-team-a")
    connected_account(cluster, world)
    operator.session_factory = slow
    for name in ("first", "second"):
        cluster.create("scanschedules", "ScanSchedule", NS, name, schedule_spec())
    for name in ("first", "second"):
        cluster.patch(
            "scanschedules", NS, name, {"metadata": {"annotations": {"cloudsweep.io/run-now": "x"}}}
        )
    wait_for(
        lambda: any("still running" in (e.get("message") or "") for e in cluster.events(NS)),
        what="a skipped run",
    )
    wait_for(lambda: not operator.running, timeout=30, what="the scan to finish")
    assert len(recorder.calls(operation="DescribeVolumes")) == 1


def test_a_restart_does_not_fire_every_due_schedule_at_once(
    cluster: Cluster, operator, world, recorder
) -> None:
    """Every schedule below was due long ago (as after an outage). Each fires after a delay
    derived from its name, within schedule_jitter_seconds; none of these names falls in the first
    seconds, so nothing fires right away."""
    from cloudsweep.handlers import scanschedules

    operator.settings = operator.settings.model_copy(update={"schedule_jitter_seconds": 3600})
    names = [
        n for n in (f"s{i}" for i in range(60)) if scanschedules._jitter(NS, n).total_seconds() > 60
    ][:6]
    cluster.create_namespace(NS, "uid-team-a")
    connected_account(cluster, world)
    for name in names:
        cluster.create(
            "scanschedules", "ScanSchedule", NS, name, schedule_spec(schedule="* * * * *")
        )
        cluster.request(
            "PATCH",
            f"/apis/cloudsweep.io/v1alpha1/namespaces/{NS}/scanschedules/{name}/status",
            {"status": {"lastScheduleTime": "2026-01-01T00:00:00Z"}},
            "application/merge-patch+json",
        )
    wait_for(
        lambda: all(
            cluster.get("scanschedules", NS, n)["status"].get("nextScheduleTime") for n in names
        ),
        what="every schedule seen",
    )
    import time as _time

    _time.sleep(3)
    fired = {n: cluster.get("scanschedules", NS, n)["status"] for n in names}
    assert recorder.calls(operation="DescribeVolumes") == [], fired
    assert all(
        cluster.get("scanschedules", NS, n)["status"].get("lastScheduleTime")
        == "2026-01-01T00:00:00Z"
        for n in names
    )


def test_auto_execute_needs_the_namespace_the_account_and_the_policy(
    cluster: Cluster, operator, world, recorder
) -> None:
    """Three keys: without the namespace's annotation the items wait; with it, a dry-run policy
    plans and dry-runs them by itself, changing nothing; removing it closes the door again."""
    cluster.create_namespace(NS, "uid-team-a")
    cluster.create(
        "awsaccounts",
        "AwsAccount",
        NS,
        "prod",
        account_spec(world, autoCleanupEnabled=True),
        labels={"env": "prod"},
    )
    policy_spec = {
        "resourceType": "elastic-ip",
        "action": "release",
        "accountSelector": {},
        "rules": {"minAgeDays": 0, "minConfidence": 50},
        "autoExecute": True,
        "maxMonthlyCost": "10.00",
        "dryRun": True,
    }
    cluster.create("cleanuppolicies", "CleanupPolicy", NS, "idle-ips", policy_spec)
    cluster.create("scanschedules", "ScanSchedule", NS, "nightly", schedule_spec())

    def run_now(value: str) -> None:
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

    run_now("closed")
    pending = wait_for(
        lambda: cluster.get("cleanuppolicies", NS, "idle-ips")["status"].get("pendingApprovals"),
        what="items waiting",
    )
    assert "cloudsweep.io/auto-cleanup" in pending[0]["reason"], pending[0]
    assert operator.store.actions(NS) == []

    def annotate(value: str | None) -> None:
        cluster.request(
            "PATCH",
            f"/api/v1/namespaces/{NS}",
            {"metadata": {"annotations": {"cloudsweep.io/auto-cleanup": value}}},
            "application/merge-patch+json",
        )

    annotate("enabled")
    # The policy's periodic evaluation reads the namespace index and syncs the organization.
    wait_for(
        lambda: operator.store.organization(NS).auto_cleanup_enabled,
        what="the namespace's opt-in reaching the organization",
    )
    run_now("open")
    actions = wait_for(lambda: operator.store.actions(NS), timeout=60, what="dry-run actions")
    assert actions and all(a.dry_run and a.success for a in actions), actions
    assert {a.resource_type for a in actions} == {"elastic-ip"}
    # A dry run asks AWS with DryRun=True and changes nothing.
    assert [c for c in recorder.mutating() if not c.params.get("DryRun")] == []

    annotate(None)
    wait_for(
        lambda: not operator.store.organization(NS).auto_cleanup_enabled,
        what="the opt-in withdrawn",
    )


def test_settled_objects_cost_no_api_writes(cluster: Cluster, operator, world) -> None:
    """Timers run every second here (every 5-30 s in production) for every object: once an
    object's status is what the timer computes, the timer must not write it again."""
    cluster.create_namespace(NS, "uid-team-a")
    connected_account(cluster, world)
    cluster.create("scanschedules", "ScanSchedule", NS, "nightly", schedule_spec())
    cluster.create(
        "cleanuppolicies",
        "CleanupPolicy",
        NS,
        "idle-ips",
        {"resourceType": "elastic-ip", "action": "release", "accountSelector": {}},
    )
    wait_for(
        lambda: (
            condition(cluster.get("cleanuppolicies", NS, "idle-ips"), "Ready")
            and cluster.get("scanschedules", NS, "nightly")["status"].get("nextScheduleTime")
        ),
        what="everything settled",
    )
    time.sleep(3)  # a few more timer rounds settle what the first wrote
    before = len(cluster.requests("PATCH"))
    time.sleep(4)  # four rounds of every timer
    writes = [(r.url.path, r.text) for r in cluster.requests("PATCH")[before:]]
    assert writes == [], writes
