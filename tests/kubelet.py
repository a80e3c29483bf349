"""The test playing the kubelet and the Job controller for scan Jobs on KMock.

KMock stores Jobs but runs nothing. ``Kubelet`` does what a node would do with one of the
operator's scan Jobs: it makes the Job's pod (an object with the Job's labels), resolves the
container's environment the way the kubelet does (``value``, ``valueFrom.secretKeyRef`` and
``configMapKeyRef`` read from the emulated API server's Secrets and ConfigMaps, ``fieldRef``
``metadata.namespace``, ``envFrom``), runs the container's command and arguments as a local process
(``cloudsweep`` is the venv's console script, the image's ENTRYPOINT) with only that environment
plus what a node's image would provide (PATH, PYTHONPATH, an empty HOME), then writes the pod's
container status (exit code, reason, and with ``FallbackToLogsOnError`` the log's tail as the
termination message) and the Job's status (``Complete`` or ``Failed`` condition), as the Job
controller would. ``kill`` ends a pod without running it (out of memory, say).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.handlers.conftest import Cluster, wait_for

OPERATOR_SOURCE = str(Path(__file__).resolve().parents[1] / "operator")
# The kubelet keeps at most this much of the log as the termination message (Kubernetes: 2048
# bytes or 80 lines, whichever is smaller).
TERMINATION_MESSAGE_BYTES = 2048
OPERATOR_NS = "cloudsweep"
DEPLOYMENT_UID = "uid-cloudsweep-deployment"
AWS_SECRET_KEY = "job-aws-secret-key-not-in-any-spec"
IMAGE = "ghcr.io/cloudsweep/cloudsweep:0.1.0"


@dataclass(frozen=True)
class Ran:
    exit_code: int
    output: str
    environment: Mapping[str, str]
    argv: list[str]


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Kubelet:
    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace

    # --- reading --------------------------------------------------------------------------

    def jobs(self) -> list[dict[str, Any]]:
        listed = self.cluster.request("GET", f"/apis/batch/v1/namespaces/{self.namespace}/jobs")
        return [j for j in (listed or {}).get("items") or [] if isinstance(j, dict)]

    def job(self, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.cluster.request(
            "GET", f"/apis/batch/v1/namespaces/{self.namespace}/jobs/{name}"
        )
        return result

    def wait_jobs(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            jobs = self.jobs()
            return jobs if len(jobs) >= count else None

        return list(wait_for(enough, timeout=timeout, what=f"{count} scan Jobs"))

    def _object(self, kind: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] | None = self.cluster.request(
            "GET", f"/api/v1/namespaces/{self.namespace}/{kind}/{name}"
        )
        if found is None:
            raise LookupError(f"{kind} {self.namespace}/{name} not found")
        return found

    def _reference(self, kind: str, ref: Mapping[str, Any], key: str) -> str | None:
        try:
            obj = self._object(kind, str(ref["name"]))
        except LookupError:
            if ref.get("optional"):
                return None
            raise
        if kind == "secrets":
            data = obj.get("data") or {}
            return base64.b64decode(data[key]).decode() if key in data else None
        return (obj.get("data") or {}).get(key)

    def environment(self, job: Mapping[str, Any]) -> dict[str, str]:
        """The container's environment, resolved as the kubelet resolves it."""
        container = job["spec"]["template"]["spec"]["containers"][0]
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            for kind, field in (("secrets", "secretRef"), ("configmaps", "configMapRef")):
                if field in source:
                    obj = self._object(kind, source[field]["name"])
                    for key, value in (obj.get("data") or {}).items():
                        env[key] = base64.b64decode(value).decode() if kind == "secrets" else value
        for entry in container.get("env") or []:
            if "value" in entry:
                env[entry["name"]] = str(entry["value"])
                continue
            source = entry.get("valueFrom") or {}
            value: str | None = None
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                value = self._reference("secrets", ref, ref["key"])
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                value = self._reference("configmaps", ref, ref["key"])
            elif source.get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
                value = self.namespace
            if value is not None:
                env[entry["name"]] = value
        return env

    # --- running ------------------------------------------------------------------------------

    def _pod(self, job: Mapping[str, Any]) -> str:
        name = f"{job['metadata']['name']}-pod"
        labels = {
            **(job["spec"]["template"]["metadata"].get("labels") or {}),
            "job-name": job["metadata"]["name"],
            "batch.kubernetes.io/job-name": job["metadata"]["name"],
        }
        self.cluster.request(
            "POST",
            f"/api/v1/namespaces/{self.namespace}/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": self.namespace,
                    "labels": labels,
                    "creationTimestamp": _stamp(),
                },
                "spec": job["spec"]["template"]["spec"],
            },
        )
        return name

    def run(self, job: Mapping[str, Any], timeout: float = 240) -> Ran:
        """Run the Job's container as a local process, then report the pod's and Job's end."""
        container = job["spec"]["template"]["spec"]["containers"][0]
        pod = self._pod(job)
        command = list(container.get("command") or ["cloudsweep"])
        if command[0] == "cloudsweep":
            command[0] = str(Path(sys.executable).with_name("cloudsweep"))
        argv = [*command, *container.get("args", [])]
        env = self.environment(job)
        with tempfile.TemporaryDirectory() as home:
            node = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "PYTHONPATH": OPERATOR_SOURCE,
                "HOME": home,
                "LANG": "C.UTF-8",
                "COLUMNS": "200",
            }
            result = subprocess.run(
                argv,
                env={**node, **env},
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        output = result.stdout + result.stderr
        message = ""
        if result.returncode != 0 and container.get("terminationMessagePolicy") == (
            "FallbackToLogsOnError"
        ):
            tail = "\n".join(output.splitlines()[-80:])
            message = tail.encode()[-TERMINATION_MESSAGE_BYTES:].decode(errors="replace")
        self._terminated(
            job,
            pod,
            exit_code=result.returncode,
            reason="Completed" if result.returncode == 0 else "Error",
            message=message,
        )
        return Ran(result.returncode, output, env, argv)

    def kill(
        self,
        job: Mapping[str, Any],
        *,
        reason: str = "OOMKilled",
        exit_code: int = 137,
        message: str = "",
        job_reason: tuple[str, str] = (
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ),
    ) -> None:
        """The pod ends without its command having done anything (the node killed it), or, with
        ``message``, as if its log's tail had been that; ``job_reason``: the Job's Failed
        condition (``DeadlineExceeded`` when activeDeadlineSeconds passed)."""
        pod = self._pod(job)
        self._terminated(
            job, pod, exit_code=exit_code, reason=reason, message=message, job_reason=job_reason
        )

    def _terminated(
        self,
        job: Mapping[str, Any],
        pod: str,
        *,
        exit_code: int,
        reason: str,
        message: str,
        job_reason: tuple[str, str] = (
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ),
    ) -> None:
        terminated = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": _stamp(),
            "finishedAt": _stamp(),
            **({"message": message} if message else {}),
        }
        self.cluster.request(
            "PATCH",
            f"/api/v1/namespaces/{self.namespace}/pods/{pod}/status",
            {
                "status": {
                    "phase": "Succeeded" if exit_code == 0 else "Failed",
                    "containerStatuses": [
                        {"name": "scan", "ready": False, "state": {"terminated": terminated}}
                    ],
                }
            },
            "application/merge-patch+json",
        )
        if exit_code == 0:
            condition = {"type": "Complete", "status": "True", "lastTransitionTime": _stamp()}
            counts = {"succeeded": 1, "active": 0}
        else:
            condition = {
                "type": "Failed",
                "status": "True",
                "reason": job_reason[0],
                "message": job_reason[1],
                "lastTransitionTime": _stamp(),
            }
            counts = {"failed": 1, "active": 0}
        self.cluster.request(
            "PATCH",
            f"/apis/batch/v1/namespaces/{self.namespace}/jobs/{job['metadata']['name']}/status",
            {"status": {"conditions": [condition], **counts}},
            "application/merge-patch+json",
        )


def _secret(cluster: Cluster, name: str, data: dict[str, str]) -> None:
    cluster.request(
        "POST",
        f"/api/v1/namespaces/{OPERATOR_NS}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": OPERATOR_NS},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        },
    )


def install_operator(
    cluster: Cluster, database_url: str, moto_endpoint: str, signing_key: str = "test-signing-key"
) -> None:
    """The operator's namespace, Secrets and Deployment, as deploy/base has them (plus the AWS
    keys and endpoint a cluster without IRSA would give it)."""
    cluster.create_namespace(OPERATOR_NS, "uid-cloudsweep")
    _secret(cluster, "cloudsweep-database", {"url": database_url})
    _secret(cluster, "cloudsweep-aws", {"id": "job-access-key", "key": AWS_SECRET_KEY})
    _secret(cluster, "cloudsweep-approval-key", {"signing-key": signing_key})

    def ref(name: str, secret: str, key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}

    container = {
        "name": "operator",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": ["operator", "--standalone"],
        "env": [
            {"name": "CLOUDSWEEP_WEBHOOK_HOST", "value": "cloudsweep-webhook.cloudsweep.svc"},
            ref("CLOUDSWEEP_DATABASE_URL", "cloudsweep-database", "url"),
            ref("CLOUDSWEEP_APPROVAL_SIGNING_KEY", "cloudsweep-approval-key", "signing-key"),
            ref("AWS_ACCESS_KEY_ID", "cloudsweep-aws", "id"),
            ref("AWS_SECRET_ACCESS_KEY", "cloudsweep-aws", "key"),
            {"name": "AWS_DEFAULT_REGION", "value": "us-east-1"},
            {"name": "CLOUDSWEEP_AWS_ENDPOINT_URL", "value": moto_endpoint},
            {"name": "CLOUDSWEEP_AWS_MAX_ATTEMPTS", "value": "2"},
        ],
    }
    cluster.request(
        "POST",
        f"/apis/apps/v1/namespaces/{OPERATOR_NS}/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "cloudsweep", "namespace": OPERATOR_NS, "uid": DEPLOYMENT_UID},
            "spec": {
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "cloudsweep"}},
                    "spec": {"serviceAccountName": "cloudsweep", "containers": [container]},
                }
            },
        },
    )
