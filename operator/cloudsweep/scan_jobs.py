"""Scan Jobs: the batch/v1 Job that runs one account's scan, and what a finished Job says.

Called by the operator's Job executor (``cloudsweep.handlers.scan_jobs``), which talks to the
API server; this module only builds and reads manifests. A scan Job runs the operator's own image
and environment (``template_from_deployment``) with ``cloudsweep scan --account-id ... --scan-id
...`` (``cloudsweep.cli.registered``), which writes the run the operator opened, exactly as an
in-process scan writes it.

Secrets never enter a Job's spec: its environment is the operator container's, where a secret is
a reference (``valueFrom.secretKeyRef``, ``envFrom.secretRef``) that the kubelet resolves; a
secret-bearing variable written literally in the Deployment refuses Job mode with a message that
says so, and the operator's own secrets that a scan does not need (the approval signing key,
webhook and Kubernetes API settings) are left out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cloudsweep.settings import Settings

COMMAND = "cloudsweep"  # the image's console script (the Dockerfile's ENTRYPOINT)
CONTAINER = "scan"
MANAGED_BY = "app.kubernetes.io/managed-by"
COMPONENT = "app.kubernetes.io/component"
SCHEDULE_NAMESPACE = "cloudsweep.io/schedule-namespace"
SCHEDULE = "cloudsweep.io/schedule"
ACCOUNT = "cloudsweep.io/account-id"
SCAN_ID = "cloudsweep.io/scan-id"
SCAN_TYPE = "cloudsweep.io/scan-type"
# What marks a Job as one of CloudSweep's scans (list selector; checked again on every item).
SELECTOR = {MANAGED_BY: "cloudsweep", COMPONENT: "scan"}

# Variables that hold a secret: a Job may carry them only as references.
SECRET_VARIABLES = frozenset(
    {
        "CLOUDSWEEP_DATABASE_URL",
        "CLOUDSWEEP_APPROVAL_SIGNING_KEY",
        "CLOUDSWEEP_KUBE_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "PGPASSWORD",
    }
)
# The operator's own settings, which a scan neither needs nor should hold.
_OPERATOR_ONLY = tuple(
    "CLOUDSWEEP_" + setting
    for setting in (
        "APPROVAL_SIGNING_KEY",
        "KUBE_",
        "WEBHOOK_",
        "METRICS_",
        "HEALTH_PORT",
        "SCAN_EXECUTOR",
        "SCAN_JOB_",
        "MAX_CONCURRENT_SCAN",
    )
)


class JobTemplateError(ValueError):
    """The operator's Deployment cannot be copied into a scan Job; the message says what to fix."""


@dataclass(frozen=True)
class JobTemplate:
    """What scan Jobs take from the operator's Deployment."""

    namespace: str
    owner: Mapping[str, Any]  # the Deployment, as an ownerReference
    image: str
    image_pull_policy: str | None
    service_account: str | None
    image_pull_secrets: tuple[Mapping[str, Any], ...] = ()
    env: tuple[Mapping[str, Any], ...] = ()
    env_from: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class ScanRequest:
    """One account's scan, as a ScanSchedule asked for it."""

    schedule_namespace: str  # also the organization
    schedule: str
    account_id: str
    scan_type: str
    regions: tuple[str, ...] | None = None
    detectors: tuple[str, ...] | None = None
    parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class JobState:
    """A scan Job as the Job controller reports it."""

    finished: bool
    succeeded: bool = False
    reason: str | None = None  # why it failed: the Job's Failed condition


def template_from_deployment(deployment: Mapping[str, Any], container_name: str) -> JobTemplate:
    meta = deployment.get("metadata") or {}
    name, uid, namespace = meta.get("name"), meta.get("uid"), meta.get("namespace")
    if not (name and uid and namespace):
        raise JobTemplateError("the operator's Deployment has no name, uid or namespace")
    pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = {c.get("name"): c for c in pod.get("containers") or []}
    container = containers.get(container_name)
    if container is None or not container.get("image"):
        raise JobTemplateError(
            f"Deployment {namespace}/{name} has no container {container_name!r} with an image "
            f"(it has {', '.join(sorted(map(str, containers))) or 'none'}); set "
            "CLOUDSWEEP_SCAN_JOB_CONTAINER"
        )
    env = []
    for entry in container.get("env") or []:
        variable = str(entry.get("name", ""))
        if variable.startswith(_OPERATOR_ONLY):
            continue
        if variable in SECRET_VARIABLES and "value" in entry:
            raise JobTemplateError(
                f"{variable} is written literally in Deployment {namespace}/{name}: scan Jobs "
                "need it from a Secret (env valueFrom.secretKeyRef), so that no secret is "
                "copied into a Job's spec"
            )
        env.append(dict(entry))
    return JobTemplate(
        namespace=namespace,
        owner={
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
            "uid": uid,
            "blockOwnerDeletion": False,
            "controller": False,
        },
        image=str(container["image"]),
        image_pull_policy=container.get("imagePullPolicy"),
        service_account=pod.get("serviceAccountName"),
        image_pull_secrets=tuple(pod.get("imagePullSecrets") or ()),
        env=tuple(env),
        env_from=tuple(container.get("envFrom") or ()),
    )


def job_name(request: ScanRequest, scan_id: str) -> str:
    """Unique per run and stable, so a retried create is a conflict, never a second Job."""
    digest = hashlib.sha256(f"{request.schedule_namespace}/{scan_id}".encode()).hexdigest()[:10]
    return f"cloudsweep-scan-{request.account_id}-{digest}"


def labels(request: ScanRequest, scan_id: str) -> dict[str, str]:
    return {
        **SELECTOR,
        "app.kubernetes.io/name": "cloudsweep",
        SCHEDULE_NAMESPACE: request.schedule_namespace,
        SCHEDULE: request.schedule,
        ACCOUNT: request.account_id,
        SCAN_ID: scan_id,
        SCAN_TYPE: request.scan_type,
    }


def arguments(request: ScanRequest, scan_id: str) -> list[str]:
    """``cloudsweep scan`` for this one account, into the run ``scan_id``; no secret."""
    args = [
        "scan",
        "--org",
        request.schedule_namespace,
        "--account-id",
        request.account_id,
        "--scan-id",
        scan_id,
        "--type",
        request.scan_type,
    ]
    if request.regions:
        args += ["--regions", ",".join(request.regions)]
    if request.detectors:
        args += ["--detectors", ",".join(request.detectors)]
    if request.parameters:
        args += ["--parameters", json.dumps(request.parameters, sort_keys=True)]
    return args


_RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def build_job(
    template: JobTemplate, request: ScanRequest, scan_id: str, settings: Settings
) -> dict[str, Any]:
    """The Job for one account's scan (Pod Security Standard "restricted")."""
    name = job_name(request, scan_id)
    job_labels = labels(request, scan_id)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": template.image,
        "command": [COMMAND],
        "args": arguments(request, scan_id),
        "env": [dict(e) for e in template.env],
        "resources": {k: dict(v) for k, v in settings.scan_job_resources.items()},
        "securityContext": dict(_RESTRICTED),
        # A crash before the CLI says why (out of memory, no database) leaves the log's tail.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if template.env_from:
        container["envFrom"] = [dict(e) for e in template.env_from]
    if template.image_pull_policy:
        container["imagePullPolicy"] = template.image_pull_policy
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        # The scan talks to AWS and PostgreSQL, never to Kubernetes: no API token in the pod.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    if template.service_account:
        pod["serviceAccountName"] = template.service_account  # IRSA / Pod Identity: AWS access
    if template.image_pull_secrets:
        pod["imagePullSecrets"] = [dict(s) for s in template.image_pull_secrets]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": template.namespace,
            "labels": job_labels,
            # Owned by the operator's Deployment, in the same namespace: a ScanSchedule in a
            # tenant's namespace cannot own it (owner references never cross namespaces).
            "ownerReferences": [dict(template.owner)],
        },
        "spec": {
            "backoffLimit": settings.scan_job_backoff_limit,
            "activeDeadlineSeconds": settings.scan_job_deadline_seconds,
            "ttlSecondsAfterFinished": settings.scan_job_ttl_seconds,
            "template": {"metadata": {"labels": job_labels}, "spec": pod},
        },
    }


def is_scan_job(job: Mapping[str, Any]) -> bool:
    job_labels = (job.get("metadata") or {}).get("labels") or {}
    return all(job_labels.get(k) == v for k, v in SELECTOR.items()) and bool(
        job_labels.get(SCAN_ID)
    )


def request_of(job: Mapping[str, Any]) -> tuple[ScanRequest, str]:
    """The request and run a scan Job was made for, from its labels (an adopted Job's too)."""
    job_labels = (job.get("metadata") or {}).get("labels") or {}
    request = ScanRequest(
        schedule_namespace=job_labels.get(SCHEDULE_NAMESPACE, ""),
        schedule=job_labels.get(SCHEDULE, ""),
        account_id=job_labels.get(ACCOUNT, ""),
        scan_type=job_labels.get(SCAN_TYPE, "full"),
    )
    return request, str(job_labels.get(SCAN_ID, ""))


def job_state(job: Mapping[str, Any]) -> JobState:
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return JobState(finished=True, succeeded=True)
        if condition.get("type") == "Failed":
            why = " ".join(
                str(part) for part in (condition.get("reason"), condition.get("message")) if part
            )
            return JobState(finished=True, reason=why or "the Job failed")
    return JobState(finished=False)


def pod_failure(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """Why the scan container of the Job's last pod ended: its termination reason, exit code
    and message (the CLI's error, or the log's tail)."""
    for pod in sorted(
        pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp", ""))
    )[::-1]:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated") or {}
            if terminated and terminated.get("exitCode") not in (0, None):
                message = " ".join(str(terminated.get("message") or "").split())
                head = f"{terminated.get('reason') or 'Error'} (exit code {terminated['exitCode']})"
                return f"{head}: {message}" if message else head
    return None
