"""The scan Job manifest (cloudsweep.scan_jobs): what it copies from the operator's Deployment,
what it refuses, its name and arguments, and how a finished Job and its pod are read."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from cloudsweep import scan_jobs
from cloudsweep.settings import Settings

REQUEST = scan_jobs.ScanRequest(
    schedule_namespace="team-a",
    schedule="nightly",
    account_id="012345678901",
    scan_type="full",
    regions=("us-east-1", "eu-west-1"),
    detectors=("ebs-volume",),
    parameters={"ebs-volume": {"minAgeDays": 3}},
)


def deployment(*env: dict[str, Any], **container: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "cloudsweep", "namespace": "cloudsweep", "uid": "uid-1"},
        "spec": {
            "template": {
                "spec": {
                    "serviceAccountName": "cloudsweep",
                    "containers": [
                        {"name": "operator", "image": "cloudsweep:1", "env": list(env), **container}
                    ],
                }
            }
        },
    }


def secret_ref(name: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}


def test_the_job_copies_references_and_leaves_the_operators_own_settings() -> None:
    template = scan_jobs.template_from_deployment(
        deployment(
            secret_ref("CLOUDSWEEP_DATABASE_URL"),
            secret_ref("CLOUDSWEEP_APPROVAL_SIGNING_KEY"),
            {"name": "CLOUDSWEEP_WEBHOOK_HOST", "value": "cloudsweep-webhook.cloudsweep.svc"},
            {"name": "CLOUDSWEEP_KUBE_API_URL", "value": "http://proxy"},
            {"name": "CLOUDSWEEP_AWS_ENDPOINT_URL", "value": "http://moto:5000"},
            envFrom=[{"secretRef": {"name": "aws-keys"}}],
        ),
        "operator",
    )
    job = scan_jobs.build_job(template, REQUEST, "scan-1", Settings())
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert [e["name"] for e in container["env"]] == [
        "CLOUDSWEEP_DATABASE_URL",
        "CLOUDSWEEP_AWS_ENDPOINT_URL",
    ]
    assert container["env"][0]["valueFrom"] == {"secretKeyRef": {"name": "s", "key": "k"}}
    assert container["envFrom"] == [{"secretRef": {"name": "aws-keys"}}]
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "cloudsweep"


@pytest.mark.parametrize(
    "variable", ["CLOUDSWEEP_DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
)
def test_a_secret_written_literally_in_the_deployment_refuses_job_mode(variable: str) -> None:
    with pytest.raises(scan_jobs.JobTemplateError) as refused:
        scan_jobs.template_from_deployment(
            deployment({"name": variable, "value": "postgresql://u:hunter2@db/cs"}), "operator"
        )
    assert f"{variable} is written literally" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_a_missing_container_names_the_setting() -> None:
    with pytest.raises(scan_jobs.JobTemplateError, match="CLOUDSWEEP_SCAN_JOB_CONTAINER"):
        scan_jobs.template_from_deployment(deployment(), "scanner")


def test_name_and_arguments() -> None:
    names = {scan_jobs.job_name(REQUEST, f"scan-{n}") for n in range(50)}
    assert len(names) == 50
    for name in names:
        assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
    args = scan_jobs.arguments(REQUEST, "scan-1")
    assert args[:9] == [
        "scan",
        "--org",
        "team-a",
        "--account-id",
        "012345678901",
        "--scan-id",
        "scan-1",
        "--type",
        "full",
    ]
    assert args[args.index("--regions") + 1] == "us-east-1,eu-west-1"
    assert json.loads(args[args.index("--parameters") + 1]) == {"ebs-volume": {"minAgeDays": 3}}
    bare = scan_jobs.ScanRequest("team-a", "nightly", "012345678901", "incremental")
    assert "--regions" not in scan_jobs.arguments(bare, "s")


def test_finished_jobs_and_pods_are_read() -> None:
    assert not scan_jobs.job_state({"status": {"active": 1}}).finished
    done = scan_jobs.job_state({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})
    assert done.finished and done.succeeded
    failed = scan_jobs.job_state(
        {
            "status": {
                "conditions": [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "DeadlineExceeded",
                        "message": "x",
                    }
                ]
            }
        }
    )
    assert failed.finished and not failed.succeeded and failed.reason == "DeadlineExceeded x"
    pod = {
        "metadata": {"creationTimestamp": "2026-12-04T10:00:00Z"},
        "status": {
            "containerStatuses": [
                {"state": {"terminated": {"exitCode": 1, "reason": "Error", "message": "a\n b"}}}
            ]
        },
    }
    assert scan_jobs.pod_failure([pod]) == "Error (exit code 1): a b"
    assert scan_jobs.pod_failure([]) is None
