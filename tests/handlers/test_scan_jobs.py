"""ScanSchedule scans as Kubernetes Jobs, against KMock, with the test playing the kubelet.

The operator runs as in the other handler tests (kopf against KMock, a real PostgreSQL, moto);
its Deployment, the Secrets it reads and its namespace are objects in KMock, as ``deploy/base``
makes them. ``tests.kubelet.Kubelet`` runs each Job's container as a local ``cloudsweep``
process with the Job's own environment (secret references resolved from KMock's Secrets) and
reports the pod's and the Job's end, as a node and the Job controller would.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest

from cloudsweep import scan_jobs
from cloudsweep.settings import Settings
from cloudsweep.store import FindingFilter
from tests import kubelet as kubelet_module
from tests.kubelet import AWS_SECRET_KEY, DEPLOYMENT_UID, IMAGE, OPERATOR_NS, Kubelet

from .conftest import SIGNING_KEY, Cluster, condition, wait_for
from .test_schedules_and_policies import connected_account, schedule_spec

NS = "team-jobs"
CAP = 2


@pytest.fixture
def operator_settings(moto_endpoint: str) -> Settings:
    return Settings(
        aws_endpoint_url=moto_endpoint,
        aws_max_attempts=2,
        schedule_jitter_seconds=0,
        cleanup_takeover_seconds=0,
        approval_signing_key=SIGNING_KEY,
        metrics_port=0,
        health_port=0,
        webhook_port=0,
        status_refresh_seconds=1,
        operator_namespace=OPERATOR_NS,
        max_concurrent_scan_jobs=CAP,
        scan_job_poll_seconds=0.3,
        scan_job_ttl_seconds=600,
    )


def _run_now(cluster: Cluster, name: str, value: str) -> None:
    cluster.patch(
        "scanschedules", NS, name, {"metadata": {"annotations": {"cloudsweep.io/run-now": value}}}
    )


def _outcome(cluster: Cluster, name: str, wanted: str, timeout: float = 90) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: (
                (s := cluster.get("scanschedules", NS, name)["status"]).get("lastRunOutcome")
                == wanted
                and s.get("lastRunNow")
                and s
            ),
            timeout=timeout,
            what=f"lastRunOutcome {wanted}",
        )
    )


def _findings(operator: Any, account_id: str) -> set[tuple[Any, ...]]:
    return {
        (f.region, f.resource_type, f.resource_id, f.monthly_cost, f.confidence_score)
        for f in operator.store.findings(FindingFilter(NS, account_id=account_id))
    }


def test_a_scan_job_writes_what_an_in_process_scan_writes(
    cluster: Cluster,
    operator: Any,
    world: Any,
    recorder: Any,
    database_url: str,
    moto_endpoint: str,
) -> None:
    kubelet_module.install_operator(cluster, database_url, moto_endpoint)
    kubelet = Kubelet(cluster, OPERATOR_NS)
    cluster.create_namespace(NS, "uid-team-jobs")
    connected_account(cluster, world, namespace=NS)
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

    # The same world scanned in the operator first: what a Job's scan must equal.
    _run_now(cluster, "nightly", "in-process")
    _outcome(cluster, "nightly", "completed")
    account = operator.store.account(operator.store.organization(NS).id, world.account_id)
    in_process = operator.store.latest_scan(account.id)
    found_in_process = _findings(operator, world.account_id)
    assert found_in_process and kubelet.jobs() == []
    calls_in_operator = len(recorder.records)

    cluster.patch("scanschedules", NS, "nightly", {"spec": {"executor": "job"}})
    _run_now(cluster, "nightly", "as-a-job")
    [job] = kubelet.wait_jobs(1)

    # The Job: owned by the operator's Deployment (a ScanSchedule in a tenant's namespace
    # cannot own an object in the operator's), labelled, bounded, restricted, no secrets.
    meta, spec = job["metadata"], job["spec"]
    assert meta["namespace"] == OPERATOR_NS
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "cloudsweep",
            "uid": DEPLOYMENT_UID,
            "blockOwnerDeletion": False,
            "controller": False,
        }
    ]
    labels = meta["labels"]
    assert labels[scan_jobs.SCHEDULE_NAMESPACE] == NS and labels[scan_jobs.SCHEDULE] == "nightly"
    assert labels[scan_jobs.ACCOUNT] == world.account_id
    assert labels["app.kubernetes.io/managed-by"] == "cloudsweep"
    assert spec["ttlSecondsAfterFinished"] == 600 and spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 7200
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "cloudsweep"
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    [container] = pod["containers"]
    assert container["image"] == IMAGE
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    assert container["command"] == ["cloudsweep"]
    assert container["args"][:7] == [
        "scan",
        "--org",
        NS,
        "--account-id",
        world.account_id,
        "--scan-id",
        labels[scan_jobs.SCAN_ID],
    ]
    env = {e["name"]: e for e in container["env"]}
    for name in ("CLOUDSWEEP_DATABASE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert set(env[name]) == {"name", "valueFrom"}, env[name]
    # The operator's own secret and settings stay with the operator.
    assert "CLOUDSWEEP_APPROVAL_SIGNING_KEY" not in env and "CLOUDSWEEP_WEBHOOK_HOST" not in env
    text = json.dumps(job)
    for secret in (database_url, AWS_SECRET_KEY, SIGNING_KEY):
        assert secret not in text

    ran = kubelet.run(job)
    assert ran.exit_code == 0, ran.output[-3000:]
    assert ran.environment["CLOUDSWEEP_DATABASE_URL"] == database_url  # resolved by the kubelet
    done = _outcome(cluster, "nightly", "completed")
    assert done["lastRunNow"] == "as-a-job"
    ready = condition(cluster.get("scanschedules", NS, "nightly"), "Ready")
    assert ready is not None and ready["reason"] == "Scheduled"
    # The cleanup policies ran after it, in the operator.
    assert "cleanup runs" in ready["message"], ready
    # The scan ran in the Job's process: the operator made no AWS call of the scan.
    scan_calls = [
        r for r in recorder.records[calls_in_operator:] if r.operation.startswith("Describe")
    ]
    assert scan_calls == []

    as_job = operator.store.scan(uuid.UUID(labels[scan_jobs.SCAN_ID]))
    assert as_job.status == "completed" and as_job.id != in_process.id
    for field in (
        "total_waste_items_found",
        "total_monthly_waste_cost",
        "total_resources_scanned",
        "regions",
        "scan_type",
    ):
        assert getattr(as_job, field) == getattr(in_process, field), field
    for key in ("detectors", "listings", "regions_failed", "errors"):
        assert as_job.metadata[key] == in_process.metadata[key], key
    assert _findings(operator, world.account_id) == found_in_process
    last = wait_for(
        lambda: (
            (s := cluster.get("awsaccounts", NS, "prod")["status"].get("lastScan"))
            and s["scanId"] == str(as_job.id)
            and s
        ),
        what="the Job's scan in the AwsAccount's status",
    )
    assert last["outcome"] == "completed" and int(last["wasteItems"]) > 0
    # Cleaned up: a Job that did its work is deleted once read.
    wait_for(lambda: kubelet.job(meta["name"]) is None, what="the succeeded Job deleted")


def _failed_reason(cluster: Cluster) -> str:
    ready = wait_for(
        lambda: (
            (c := condition(cluster.get("scanschedules", NS, "nightly"), "Ready"))
            and c["reason"] == "ScanFailed"
            and c
        ),
        timeout=60,
        what="the schedule's Ready condition ScanFailed",
    )
    return str(ready["message"])


@pytest.mark.parametrize("failure", ["killed", "no-database", "crashed", "deadline"])
def test_a_failed_job_is_a_failed_scan_with_its_reason(
    failure: str,
    cluster: Cluster,
    operator: Any,
    world: Any,
    database_url: str,
    moto_endpoint: str,
) -> None:
    kubelet_module.install_operator(cluster, database_url, moto_endpoint)
    kubelet = Kubelet(cluster, OPERATOR_NS)
    cluster.create_namespace(NS, "uid-team-jobs")
    connected_account(cluster, world, namespace=NS)
    cluster.create("scanschedules", "ScanSchedule", NS, "nightly", schedule_spec(executor="job"))
    _run_now(cluster, "nightly", "fail")
    [job] = kubelet.wait_jobs(1)
    if failure == "killed":
        kubelet.kill(job, reason="OOMKilled", exit_code=137)
        expected = "OOMKilled (exit code 137)"
    elif failure == "deadline":
        deadline = ("DeadlineExceeded", "Job was active longer than specified deadline")
        kubelet.kill(job, reason="Error", exit_code=143, job_reason=deadline)
        expected = "DeadlineExceeded Job was active longer than specified deadline; the pod: Error"
    elif failure == "crashed":
        # A crash whose log tail (the termination message) quotes the database URL.
        tail = "Traceback (most recent call last):\nOperationalError: postgresql://cs:hunter2@db/cs"
        kubelet.kill(job, reason="Error", exit_code=1, message=tail)
        expected = "Error (exit code 1): Traceback (most recent call last): OperationalError"
    else:
        # The Secret the Job's database URL comes from now names a server that is not there.
        cluster.request(
            "PATCH",
            f"/api/v1/namespaces/{OPERATOR_NS}/secrets/cloudsweep-database",
            {"data": {"url": base64.b64encode(b"postgresql://cs:hunter2@127.0.0.1:9/cs").decode()}},
            "application/merge-patch+json",
        )
        ran = kubelet.run(job)
        assert ran.exit_code == 1, ran.output[-3000:]
        expected = "cannot use the database"

    message = _failed_reason(cluster)
    assert expected in message and job["metadata"]["name"] in message, message
    assert "hunter2" not in message
    if failure != "crashed":
        assert "Traceback" not in message
    assert cluster.get("scanschedules", NS, "nightly")["status"]["lastRunOutcome"] == "failed"
    warnings = [e for e in cluster.events(NS) if e.get("reason") == "ScanFailed"]
    assert any(expected in e.get("message", "") for e in warnings), warnings
    # The run the operator opened is closed as failed, with the reason: the AwsAccount shows it.
    run = operator.store.scan(uuid.UUID(job["metadata"]["labels"][scan_jobs.SCAN_ID]))
    assert run.status == "failed" and expected in (run.error_message or "")
    assert "hunter2" not in (run.error_message or "")  # notifications and reports quote it
    last = wait_for(
        lambda: (
            (s := cluster.get("awsaccounts", NS, "prod")["status"].get("lastScan"))
            and s["scanId"] == str(run.id)
            and s
        ),
        what="the failed scan in the AwsAccount's status",
    )
    assert last["outcome"] == "failed"
    # A failed Job stays (its logs readable) until its TTL; the operator does not read it again.
    assert kubelet.job(job["metadata"]["name"]) is not None


def _registered(cluster: Cluster, name: str, account_id: str) -> None:
    cluster.create(
        "awsaccounts",
        "AwsAccount",
        NS,
        name,
        {
            "accountId": account_id,
            "roleArn": f"arn:aws:iam::{account_id}:role/CloudSweepScanner",
            "regions": ["us-east-1"],
        },
        labels={"env": "prod"},
    )
    wait_for(
        lambda: cluster.get("awsaccounts", NS, name)["status"].get("externalId"),
        what=f"{name} registered",
    )


def test_at_most_the_limit_of_scan_jobs_run_and_the_next_starts_when_one_ends(
    cluster: Cluster, operator: Any, database_url: str, moto_endpoint: str
) -> None:
    kubelet_module.install_operator(cluster, database_url, moto_endpoint)
    kubelet = Kubelet(cluster, OPERATOR_NS)
    cluster.create_namespace(NS, "uid-team-jobs")
    # Someone else's Job in the operator's namespace: neither counted, adopted nor touched.
    foreign = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "backup", "namespace": OPERATOR_NS, "labels": {"app": "backup"}},
        "spec": {"template": {"spec": {"containers": [{"name": "b", "image": "busybox"}]}}},
    }
    cluster.request("POST", f"/apis/batch/v1/namespaces/{OPERATOR_NS}/jobs", foreign)
    accounts = [f"{n}{n}{n}{n}{n}{n}{n}{n}{n}{n}{n}{n}" for n in range(1, CAP + 2)]
    for index, account_id in enumerate(accounts):
        _registered(cluster, f"acct-{index}", account_id)
    cluster.create("scanschedules", "ScanSchedule", NS, "nightly", schedule_spec(executor="job"))
    _run_now(cluster, "nightly", "all")

    first = [j for j in kubelet.wait_jobs(CAP + 1) if j["metadata"]["name"] != "backup"]
    assert len(first) == CAP
    # Many polls later, still CAP: the third scan waits for a slot.
    wait_for(
        lambda: (
            cluster.get("scanschedules", NS, "nightly")["status"].get("lastRunOutcome") == "running"
        ),
        what="the run in progress",
    )
    for _ in range(10):
        assert len(kubelet.jobs()) == CAP + 1
        time.sleep(0.3)
    waiting = set(accounts) - {j["metadata"]["labels"][scan_jobs.ACCOUNT] for j in first}
    assert len(waiting) == 1

    kubelet.kill(first[0])
    everything = [j for j in kubelet.wait_jobs(CAP + 2) if j["metadata"]["name"] != "backup"]
    started = {j["metadata"]["labels"][scan_jobs.ACCOUNT] for j in everything}
    assert started == set(accounts)
    unfinished = [j for j in everything if not (j.get("status") or {}).get("conditions")]
    assert len(unfinished) == CAP
    for job in unfinished:
        kubelet.kill(job)
    wait_for(lambda: operator.scan_jobs.counts() == (0, 0), what="every scan Job read")
    _outcome(cluster, "nightly", "failed")
    results = wait_for(
        lambda: (r := operator.results[(NS, "nightly")]) and len(r) == len(accounts) and r,
        what="an outcome per account",
    )
    assert {r.outcome for r in results.values()} == {"failed"}
    assert kubelet.job("backup") is not None


def test_deleting_the_account_stops_its_scan_job(
    cluster: Cluster, operator: Any, database_url: str, moto_endpoint: str
) -> None:
    kubelet_module.install_operator(cluster, database_url, moto_endpoint)
    kubelet = Kubelet(cluster, OPERATOR_NS)
    cluster.create_namespace(NS, "uid-team-jobs")
    _registered(cluster, "prod", "444444444444")
    cluster.create("scanschedules", "ScanSchedule", NS, "nightly", schedule_spec(executor="job"))
    _run_now(cluster, "nightly", "go")
    [job] = kubelet.wait_jobs(1)
    cluster.delete("awsaccounts", NS, "prod")
    wait_for(lambda: kubelet.job(job["metadata"]["name"]) is None, what="the Job deleted")
    scan_id = uuid.UUID(job["metadata"]["labels"][scan_jobs.SCAN_ID])
    # Deleted first, then the run closed: the run may still be open for a moment.
    wait_for(lambda: operator.store.scan(scan_id).status == "cancelled", what="the run cancelled")
    _outcome(cluster, "nightly", "cancelled")
    deletes = cluster.requests(method="DELETE", path=f"/jobs/{job['metadata']['name']}")
    assert [r.params.get("propagationPolicy") for r in deletes] == ["Background"]


def test_a_restarted_operator_adopts_the_scan_jobs_it_left(
    cluster: Cluster, operator: Any, database_url: str, moto_endpoint: str
) -> None:
    kubelet_module.install_operator(cluster, database_url, moto_endpoint)
    kubelet = Kubelet(cluster, OPERATOR_NS)
    cluster.create_namespace(NS, "uid-team-jobs")
    _registered(cluster, "prod", "555555555555")
    cluster.create("scanschedules", "ScanSchedule", NS, "nightly", schedule_spec(executor="job"))
    _run_now(cluster, "nightly", "before")
    [job] = kubelet.wait_jobs(1)

    # What a new operator process knows: nothing in memory; the Job goes on running.
    operator.scan_jobs.shutdown()
    with operator.lock:
        operator.scan_jobs = None
        operator.running.clear()
        operator.results.clear()
    _run_now(cluster, "nightly", "after")
    wait_for(
        lambda: [
            e
            for e in cluster.events(NS)
            if e.get("reason") == "ScanSkipped" and "still running" in e.get("message", "")
        ],
        what="the run skipped: the adopted Job still scans the account (Forbid)",
    )
    assert [j["metadata"]["name"] for j in kubelet.jobs()] == [job["metadata"]["name"]]
    assert operator.scan_jobs.counts() == (1, 0)

    kubelet.kill(job)
    wait_for(lambda: operator.scan_jobs.counts() == (0, 0), what="the adopted Job read")
    run = operator.store.scan(uuid.UUID(job["metadata"]["labels"][scan_jobs.SCAN_ID]))
    assert run.status == "failed" and "OOMKilled" in (run.error_message or "")
    assert "OOMKilled" in _failed_reason(cluster)


def test_replace_waits_for_the_old_job_to_be_deleted(
    cluster: Cluster, operator: Any, database_url: str, moto_endpoint: str
) -> None:
    """Replace stops the running scan's Job first; while its deletion fails (the API server
    answers 503), the new scan's Job is not created: one scan of an account at a time."""
    kubelet_module.install_operator(cluster, database_url, moto_endpoint)
    kubelet = Kubelet(cluster, OPERATOR_NS)
    cluster.create_namespace(NS, "uid-team-jobs")
    _registered(cluster, "prod", "666666666666")
    cluster.create(
        "scanschedules",
        "ScanSchedule",
        NS,
        "nightly",
        schedule_spec(executor="job", concurrencyPolicy="Replace"),
    )
    _run_now(cluster, "nightly", "first")
    [old] = kubelet.wait_jobs(1)
    refused = cluster.inject(method="DELETE", path="/jobs/", status=503, times=4)
    _run_now(cluster, "nightly", "second")
    wait_for(lambda: refused.hits >= 4, what="the deletions refused")
    assert [j["metadata"]["name"] for j in kubelet.jobs()] == [old["metadata"]["name"]]
    assert operator.scan_jobs.counts() == (1, 1)

    new = wait_for(
        lambda: [j for j in kubelet.jobs() if j["metadata"]["name"] != old["metadata"]["name"]],
        what="the new Job, once the old one is gone",
    )
    assert kubelet.job(old["metadata"]["name"]) is None and len(new) == 1
    run = operator.store.scan(uuid.UUID(old["metadata"]["labels"][scan_jobs.SCAN_ID]))
    assert run.status == "cancelled"


def test_no_job_is_created_while_the_jobs_cannot_be_listed(
    cluster: Cluster, operator: Any, database_url: str, moto_endpoint: str
) -> None:
    """How many scan Jobs run is unknown while the list fails: none is created (the limit
    holds), and the scan waits, not fails; it starts once the API server answers again."""
    kubelet_module.install_operator(cluster, database_url, moto_endpoint)
    kubelet = Kubelet(cluster, OPERATOR_NS)
    cluster.create_namespace(NS, "uid-team-jobs")
    _registered(cluster, "prod", "777777777777")
    cluster.create("scanschedules", "ScanSchedule", NS, "nightly", schedule_spec(executor="job"))
    failing = cluster.inject(
        method="GET", path=f"/namespaces/{OPERATOR_NS}/jobs$", status=503, times=None
    )
    _run_now(cluster, "nightly", "go")
    wait_for(lambda: failing.hits >= 4, what="the Jobs listed (and refused) several times")
    assert cluster.requests(method="POST", path="/jobs") == []
    assert operator.scan_jobs.counts() == (0, 1)
    wait_for(
        lambda: (
            cluster.get("scanschedules", NS, "nightly")["status"].get("lastRunOutcome") == "running"
        ),
        what="the run waiting",
    )
    assert cluster.requests(method="POST", path="/jobs") == []
    cluster.clear_faults()
    kubelet.wait_jobs(1)


def test_a_literal_database_url_in_the_deployment_refuses_job_mode(
    cluster: Cluster, operator: Any, database_url: str, moto_endpoint: str
) -> None:
    """Copying it would write the database password into every Job's spec: no Job, and the
    schedule says what to fix (without the URL)."""
    kubelet_module.install_operator(cluster, database_url, moto_endpoint)
    path = f"/apis/apps/v1/namespaces/{OPERATOR_NS}/deployments/cloudsweep"
    deployment = cluster.request("GET", path)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    container["env"] = [
        {"name": "CLOUDSWEEP_DATABASE_URL", "value": "postgresql://cs:hunter2@db/cs"},
        *[e for e in container["env"] if e["name"] != "CLOUDSWEEP_DATABASE_URL"],
    ]
    cluster.request(
        "PATCH",
        path,
        {"spec": {"template": {"spec": {"containers": [container]}}}},
        "application/merge-patch+json",
    )
    cluster.create_namespace(NS, "uid-team-jobs")
    _registered(cluster, "prod", "888888888888")
    cluster.create("scanschedules", "ScanSchedule", NS, "nightly", schedule_spec(executor="job"))
    _run_now(cluster, "nightly", "go")
    message = _failed_reason(cluster)
    assert "CLOUDSWEEP_DATABASE_URL is written literally" in message, message
    assert "hunter2" not in message
    assert cluster.requests(method="POST", path="/jobs") == []
