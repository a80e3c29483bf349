"""The Job executor: ScanSchedule scans run as Kubernetes Jobs in the operator's namespace.

Called by ``scanschedules`` for schedules whose executor is ``job`` (spec.executor, else
CLOUDSWEEP_SCAN_EXECUTOR). It opens the run in PostgreSQL, creates the Job
(``cloudsweep.scan_jobs`` builds it), and at most ``max_concurrent_scan_jobs`` run at once; the
rest wait in order. One thread reads the Jobs every ``scan_job_poll_seconds`` (one list request,
with the label selector), so the operator needs no cluster-wide watch on Jobs, and with its
RBAC only a Role in its own namespace. A finished Job's outcome is the run its scan wrote; a Job
that failed before writing it (out of memory, no database, image not pulled, deadline) closes
the run as failed with the pod's termination reason or the Job's condition. Succeeded Jobs are
deleted once read; failed ones stay for ``ttlSecondsAfterFinished`` so their logs can be read;
Jobs found at start (from before a restart) are adopted and count against the limit.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client

from cloudsweep import domain, redaction, scan_jobs
from cloudsweep.handlers import access
from cloudsweep.settings import Settings
from cloudsweep.store import Store

log = logging.getLogger(__name__)
_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
READ_TIMEOUT_SECONDS = 15.0


class KubeError(Exception):
    """The API server refused or did not answer; the message says which request and why."""


class Kube:
    """The few requests the executor makes, in the operator's namespace only."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def _call(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            response = call(
                *args,
                _preload_content=False,
                _request_timeout=(access.CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
                **kwargs,
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            if error.status == 409:
                return {"conflict": True}
            raise KubeError(f"{what}: {access._describe(error)}") from None
        except Exception as error:  # connection refused, time-out
            raise KubeError(f"{what}: {type(error).__name__}: {error}") from None
        try:
            return json.loads(response.data or b"null")
        finally:
            response.release_conn()

    def deployment(self, name: str) -> Any:
        api = kubernetes.client.AppsV1Api(access._api_client())
        return self._call(
            f"get Deployment {self.namespace}/{name}",
            api.read_namespaced_deployment,
            name,
            self.namespace,
        )

    def create_job(self, job: Mapping[str, Any]) -> None:
        api = kubernetes.client.BatchV1Api(access._api_client())
        self._call("create scan Job", api.create_namespaced_job, self.namespace, job)

    def jobs(self) -> list[dict[str, Any]]:
        api = kubernetes.client.BatchV1Api(access._api_client())
        selector = ",".join(f"{k}={v}" for k, v in scan_jobs.SELECTOR.items())
        listed = self._call(
            "list scan Jobs", api.list_namespaced_job, self.namespace, label_selector=selector
        )
        items = (listed or {}).get("items") or []
        return [job for job in items if isinstance(job, dict) and scan_jobs.is_scan_job(job)]

    def delete_job(self, name: str) -> None:
        api = kubernetes.client.BatchV1Api(access._api_client())
        self._call(
            f"delete scan Job {name}",
            api.delete_namespaced_job,
            name,
            self.namespace,
            propagation_policy="Background",  # its pod goes too
        )

    def pods(self, job_name: str) -> list[dict[str, Any]]:
        api = kubernetes.client.CoreV1Api(access._api_client())
        listed = self._call(
            f"list pods of {job_name}",
            api.list_namespaced_pod,
            self.namespace,
            label_selector=f"job-name={job_name}",
        )
        items = (listed or {}).get("items") or []
        return [
            pod
            for pod in items
            if isinstance(pod, dict)
            and ((pod.get("metadata") or {}).get("labels") or {}).get("job-name") == job_name
        ]


def operator_namespace(settings: Settings, namespace_file: Path = _NAMESPACE_FILE) -> str:
    if settings.operator_namespace:
        return settings.operator_namespace
    try:
        return namespace_file.read_text().strip()
    except OSError:
        raise scan_jobs.JobTemplateError(
            "scan Jobs run in the operator's namespace, and the operator is not in a pod "
            f"({namespace_file} is missing): set CLOUDSWEEP_OPERATOR_NAMESPACE"
        ) from None


@dataclass(frozen=True)
class JobOutcome:
    """How a scan Job's run ended: its closed run (None if it could not be opened), and why it
    failed when the run does not say."""

    request: scan_jobs.ScanRequest
    job_name: str | None
    status: str  # a domain.ScanStatus value
    message: str
    run: Any = None  # store.ScanRecord
    cancel: threading.Event | None = None  # the run's own, as submitted (None: adopted)


@dataclass
class _Waiting:
    request: scan_jobs.ScanRequest
    account_uuid: uuid.UUID
    cancel: threading.Event


@dataclass
class _Running:
    request: scan_jobs.ScanRequest
    scan_id: str
    cancel: threading.Event
    adopted: bool = False


Finished = Callable[[JobOutcome], None]


class JobExecutor:
    """Scan Jobs: a queue, at most ``max_concurrent_scan_jobs`` running, one poller thread."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        on_finished: Finished,
        *,
        now: Callable[[], Any] = domain.utcnow,
        kube: Kube | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.on_finished = on_finished
        self.now = now
        self._kube = kube
        self.lock = threading.Lock()
        self.waiting: collections.deque[_Waiting] = collections.deque()
        self.running: dict[str, _Running] = {}  # Job name -> run
        self._template: scan_jobs.JobTemplate | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._read: set[str] = set()  # finished Jobs read before, left to their TTL

    # --- the API ---------------------------------------------------------------------------

    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube(operator_namespace(self.settings))
        return self._kube

    def start(self) -> None:
        """Adopt the Jobs an earlier operator process left (so that they count, and the account
        is busy, before anything new is queued), then poll."""
        with self.lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._loop, name="cloudsweep-scan-jobs", daemon=True
            )
        try:
            self._adopt({str(j["metadata"]["name"]): j for j in self.kube().jobs()})
        except (KubeError, scan_jobs.JobTemplateError) as error:
            log.warning("scan Jobs: cannot read them: %s", error)
        self._thread.start()

    def submit(
        self, request: scan_jobs.ScanRequest, account_uuid: uuid.UUID, cancel: threading.Event
    ) -> int:
        """Queue the scan; returns how many wait before it. Jobs are created by the poller."""
        with self.lock:
            self.waiting.append(_Waiting(request, account_uuid, cancel))
            ahead = len(self.waiting) - 1
        self.start()
        self._wake.set()
        return ahead

    def busy(self, organization: str, account_id: str) -> bool:
        """A Job of this account is running or waiting (adopted ones too)."""
        with self.lock:
            requests = [r.request for r in self.running.values()]
            requests += [w.request for w in self.waiting]
        return any(
            (r.schedule_namespace, r.account_id) == (organization, account_id) for r in requests
        )

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return len(self.running), len(self.waiting)

    def shutdown(self) -> None:
        """Stop polling. Running Jobs go on; the next operator adopts them."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)

    # --- the poller ------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # the poller must never die; the next step tries again
                log.exception("scan Jobs: step failed")
            self._wake.wait(self.settings.scan_job_poll_seconds)
            self._wake.clear()

    def step(self) -> None:
        """Read the Jobs, finish the finished, stop the cancelled, start what the limit allows."""
        try:
            jobs = {str(j["metadata"]["name"]): j for j in self.kube().jobs()}
        except (KubeError, scan_jobs.JobTemplateError) as error:
            log.warning("scan Jobs: cannot read them: %s", error)
            self._start_waiting(listed=False)
            return
        self._adopt(jobs)
        with self.lock:
            running = dict(self.running)
        for name, run in running.items():
            job = jobs.get(name)
            if run.cancel.is_set():
                self._stop_job(name, run)
            elif job is None:
                self._finish(name, run, scan_jobs.JobState(True, reason="the Job was deleted"))
            else:
                state = scan_jobs.job_state(job)
                if state.finished:
                    self._finish(name, run, state)
        self._start_waiting(listed=True)

    def _adopt(self, jobs: Mapping[str, Mapping[str, Any]]) -> None:
        """Jobs of an earlier operator process: count them, and finish them when they end."""
        with self.lock:
            self._read &= set(jobs)  # gone (TTL): forgotten
            for name, job in jobs.items():
                if name in self.running or name in self._read:
                    continue
                request, scan_id = scan_jobs.request_of(job)
                state = scan_jobs.job_state(job)
                if state.finished and not self._open(scan_id):
                    self._read.add(name)  # read before (its run is closed): left to its TTL
                    continue
                self.running[name] = _Running(request, scan_id, threading.Event(), adopted=True)
                log.info("scan Jobs: adopted %s (scan %s)", name, scan_id)

    def _open(self, scan_id: str) -> bool:
        try:
            run = self.store.scan(uuid.UUID(scan_id))
        except ValueError:
            return False
        return run is not None and run.status == domain.ScanStatus.RUNNING.value

    def _start_waiting(self, *, listed: bool) -> None:
        """Create Jobs for waiting scans while the limit allows (nothing when the Jobs could not
        be listed: how many run is then unknown), oldest first, one Job per account at a time."""
        while True:
            with self.lock:
                cancelled = [w for w in self.waiting if w.cancel.is_set()]
                for waiting in cancelled:
                    self.waiting.remove(waiting)
                chosen = None
                if listed and len(self.running) < self.settings.max_concurrent_scan_jobs:
                    busy = {
                        (r.request.schedule_namespace, r.request.account_id)
                        for r in self.running.values()
                    }
                    chosen = next(
                        (
                            w
                            for w in self.waiting
                            if (w.request.schedule_namespace, w.request.account_id) not in busy
                        ),
                        None,
                    )
                    if chosen is not None:
                        self.waiting.remove(chosen)
            for waiting in cancelled:
                self._report(
                    waiting.request,
                    None,
                    "cancelled",
                    "cancelled before it started",
                    cancel=waiting.cancel,
                )
            if chosen is None:
                return
            self._create(chosen)

    def _create(self, waiting: _Waiting) -> None:
        request = waiting.request
        try:
            template = self._job_template()
        except (KubeError, scan_jobs.JobTemplateError) as error:
            self._report(
                request,
                None,
                "failed",
                f"no scan Job could be made: {error}",
                cancel=waiting.cancel,
            )
            return
        run = self.store.open_scan(
            waiting.account_uuid,
            scan_type=domain.ScanType(request.scan_type),
            regions=list(request.regions or self._account_regions(waiting)),
            started_at=self.now(),
        )
        scan_id = str(run.id)
        job = scan_jobs.build_job(template, request, scan_id, self.settings)
        name = str(job["metadata"]["name"])
        try:
            self.kube().create_job(job)
        except KubeError as error:
            message = f"the scan Job could not be created: {error}"
            self._close(scan_id, domain.ScanStatus.FAILED, message)
            self._report(request, name, "failed", message, scan_id, cancel=waiting.cancel)
            return
        with self.lock:
            self.running[name] = _Running(request, scan_id, waiting.cancel)
        log.info("scan Jobs: created %s for account %s", name, request.account_id)

    def _account_regions(self, waiting: _Waiting) -> list[str]:
        org = self.store.organization(waiting.request.schedule_namespace)
        account = (
            self.store.account(org.id, waiting.request.account_id) if org is not None else None
        )
        return list(account.regions) if account is not None else []

    def _job_template(self) -> scan_jobs.JobTemplate:
        if self._template is None:
            name = self.settings.scan_job_deployment
            deployment = self.kube().deployment(name)
            if deployment is None:
                raise scan_jobs.JobTemplateError(
                    f"the operator's Deployment {self.kube().namespace}/{name} was not found; "
                    "set CLOUDSWEEP_SCAN_JOB_DEPLOYMENT to its name"
                )
            self._template = scan_jobs.template_from_deployment(
                deployment, self.settings.scan_job_container
            )
        return self._template

    def _stop_job(self, name: str, run: _Running) -> None:
        """A cancelled scan (Replace, or its AwsAccount deleted): its Job and pod are deleted."""
        try:
            self.kube().delete_job(name)
        except KubeError as error:
            log.warning("scan Jobs: %s; trying again", error)
            return
        self._close(run.scan_id, domain.ScanStatus.CANCELLED, "cancelled: its scan Job was deleted")
        with self.lock:
            self.running.pop(name, None)
        self._report(
            run.request,
            name,
            "cancelled",
            "the scan Job was stopped",
            run.scan_id,
            cancel=None if run.adopted else run.cancel,
        )

    def _finish(self, name: str, run: _Running, state: scan_jobs.JobState) -> None:
        closed = self.store.scan(uuid.UUID(run.scan_id))
        status, message = domain.ScanStatus.FAILED.value, ""
        if closed is None:
            message = f"scan Job {name}: its run {run.scan_id} is gone"
        elif closed.status != domain.ScanStatus.RUNNING.value:
            status = closed.status  # what the scan itself recorded
            message = closed.error_message or ""
        else:
            # Ended without closing its run: the pod died, never started, or ran out of time.
            why = state.reason or "the Job succeeded but its scan did not record an outcome"
            try:
                ended = scan_jobs.pod_failure(self.kube().pods(name))
            except KubeError as error:
                log.warning("scan Jobs: %s", error)
                ended = None
            if ended and state.reason and not state.reason.startswith("BackoffLimitExceeded"):
                why = f"{state.reason}; the pod: {ended}"  # DeadlineExceeded says more than SIGTERM
            elif ended:
                why = ended
            # A crash's log tail may quote a URL with its password: never into status or Events.
            message = redaction.redact(f"scan Job {name} failed: {why}")
            closed = self._close(run.scan_id, domain.ScanStatus.FAILED, message)
        if state.succeeded:
            # Nothing to look at in a Job that did its work; failed ones wait for their TTL.
            try:
                self.kube().delete_job(name)
            except KubeError as error:
                log.warning("scan Jobs: %s (its TTL removes it)", error)
        with self.lock:
            self.running.pop(name, None)
            if not state.succeeded:
                self._read.add(name)
        self._report(
            run.request,
            name,
            status,
            message,
            run.scan_id,
            closed,
            cancel=None if run.adopted else run.cancel,
        )

    def _close(self, scan_id: str, status: domain.ScanStatus, message: str) -> Any:
        try:
            return self.store.close_scan(
                self.store.scan(uuid.UUID(scan_id)),  # type: ignore[arg-type]
                status=status,
                completed_at=self.now(),
                resources_scanned=0,
                error_message=message[:2000],
                metadata={"executor": "job"},
            )
        except (LookupError, ValueError, AttributeError):
            return self.store.scan(uuid.UUID(scan_id))  # closed meanwhile: keep what it says

    def _report(
        self,
        request: scan_jobs.ScanRequest,
        name: str | None,
        status: str,
        message: str,
        scan_id: str | None = None,
        run: Any = None,
        *,
        cancel: threading.Event | None = None,
    ) -> None:
        if run is None and scan_id is not None:
            run = self.store.scan(uuid.UUID(scan_id))
        try:
            self.on_finished(JobOutcome(request, name, status, message, run, cancel))
        except Exception:
            log.exception("scan Jobs: reporting %s failed", name)
