"""ScanSchedule: start scans of the namespace's accounts on a cron schedule or on request.

A timer per schedule checks every few seconds whether the next cron time (in the schedule's time
zone) has come, or the ``cloudsweep.io/run-now`` annotation has a new value. Scans run on the
runtime's pool, never in the handler; after each scan the namespace's CleanupPolicies are
evaluated and what they allow runs. A due schedule fires after a delay derived from its name
(up to ``schedule_jitter_seconds``), so a restart never starts every scan at once; missed times
fire once, not once per missed time, spread from the operator's start.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import kopf
from croniter import croniter

from cloudsweep import cleaning, crds, domain, scanning
from cloudsweep import scan_jobs as job_specs
from cloudsweep.handlers import common, runtime, scan_jobs
from cloudsweep.handlers.conditions import Condition
from cloudsweep.handlers.runtime import RunningScan, ScheduleResult
from cloudsweep.settings import get_settings
from cloudsweep.store import AccountRecord

R = crds.SCAN_SCHEDULE
KIND = R.kind
TICK_SECONDS = min(5, get_settings().status_refresh_seconds)

log = logging.getLogger(__name__)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jitter(namespace: str, name: str) -> timedelta:
    window = runtime.get().settings.schedule_jitter_seconds
    if window <= 0:
        return timedelta(0)
    digest = int(hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:8], 16)
    return timedelta(seconds=digest % window)


def next_time(schedule: str, zone: str, after: datetime) -> datetime:
    """The first cron time strictly after ``after``, evaluated in the schedule's time zone."""
    local = after.astimezone(ZoneInfo(zone))
    result: datetime = croniter(schedule, local).get_next(datetime)
    return result.astimezone(UTC)


@kopf.timer(
    R.group, R.version, R.plural, id="tick", interval=TICK_SECONDS, initial_delay=TICK_SECONDS
)
@common.writes_only_changes()
def tick(
    body: kopf.Body,
    namespace: str,
    name: str,
    patch: kopf.Patch,
    aws_accounts: Any,
    namespace_uids: Any,
    memo: Any,
    **_: Any,
) -> None:
    rt = runtime.get()
    try:
        obj = common.validated(KIND, body)
    except common.InvalidSpec as error:
        common.refuse_again(patch, body, error)
        return
    spec, status = obj["spec"], body.get("status", {})
    _publish(body, patch, namespace, name)
    now = rt.now()
    created = _parse_time(body.get("metadata", {}).get("creationTimestamp")) or now
    done = _fired(memo, status, patch)
    last = _parse_time(done.get("lastScheduleTime"))
    zone = spec.get("timeZone") or "Etc/UTC"
    run_now = (body.get("metadata", {}).get("annotations") or {}).get(crds.RUN_NOW_ANNOTATION)

    if spec.get("suspend"):
        patch.status["nextScheduleTime"] = None
        common.set_conditions(
            patch, body, [Condition("Ready", True, "Suspended", "the schedule is suspended")]
        )
        if run_now and run_now != done.get("lastRunNow"):
            _remember(memo, patch, lastRunNow=run_now)
            kopf.warn(
                body, reason="Suspended", message="run-now ignored: the schedule is suspended"
            )
        return

    due = next_time(spec["schedule"], zone, last or created)
    trigger: domain.ScanType | None = None
    fired = False
    if run_now and run_now != done.get("lastRunNow"):
        _remember(memo, patch, lastRunNow=run_now)
        trigger = domain.ScanType.MANUAL
    elif now >= max(due, rt.started_at) + _jitter(namespace, name):
        # Fire once for however many times were missed while the operator was away, spread over
        # the jitter window from the operator's start: a restart is never a scan storm.
        _remember(memo, patch, lastScheduleTime=_stamp(now))
        trigger = domain.ScanType(spec.get("scanType", "full"))
        fired = True
    patch.status["nextScheduleTime"] = _stamp(
        next_time(spec["schedule"], zone, now) if fired else due
    )
    if trigger is None:
        if common.ready_reason(body) in (None, "InvalidSpec", "Suspended"):
            common.set_conditions(
                patch,
                body,
                [
                    Condition(
                        "Ready",
                        True,
                        "Scheduled",
                        f"next scan at {patch.status['nextScheduleTime']}",
                    )
                ],
            )
        return
    _start(body, patch, namespace, name, spec, trigger, aws_accounts, namespace_uids)
    # The same patch that records the new lastRunNow says the run is running: the previous
    # run's outcome beside it would report the new run done before it began.
    with rt.lock:
        results = dict(rt.results.get((namespace, name), {}))
    if results:
        patch.status["lastRunOutcome"] = _summary(results)


_FIRED = "cloudsweep.io/fired"  # the object's memo: what this process fired, as in status


def _fired(memo: Any, status: Mapping[str, Any], patch: kopf.Patch) -> dict[str, Any]:
    """The last run-now handled and the last scheduled time fired: from status, or from what this
    process recorded after them (its status patch was refused, or has not landed yet), which then
    goes into this patch again. A lost status patch never fires the same run twice."""
    fired = {key: status.get(key) for key in ("lastRunNow", "lastScheduleTime")}
    remembered = memo.get(_FIRED) if memo is not None else None
    for key, value in (remembered or {}).items():
        stale = fired[key] != value
        if key == "lastScheduleTime" and fired[key] and value:
            stale = _parse_time(fired[key]) < _parse_time(value)  # type: ignore[operator]
        if stale:
            fired[key] = patch.status[key] = value
    return fired


def _remember(memo: Any, patch: kopf.Patch, **fired: str) -> None:
    patch.status.update(fired)
    if memo is not None:
        memo.setdefault(_FIRED, {}).update(fired)


def _start(
    body: kopf.Body,
    patch: kopf.Patch,
    namespace: str,
    name: str,
    spec: Mapping[str, Any],
    scan_type: domain.ScanType,
    account_index: Any,
    namespace_uids: Any,
) -> None:
    rt = runtime.get()
    org = common.organization(namespace, namespace_uids)
    objects = common.same_namespace_names(account_index, namespace)
    chosen = common.select(objects, spec.get("accounts"), spec.get("accountSelector"))
    if not chosen:
        message = "no AwsAccount in this namespace matches the schedule's accounts or selector"
        common.set_conditions(
            patch, body, [Condition("Ready", False, "NoAccountsSelected", message)]
        )
        kopf.warn(body, reason="NoAccountsSelected", message=message)
        return
    month_start = rt.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    used = rt.store.scans_since(org.id, month_start)
    limit = org.monthly_scan_limit
    started, skipped = [], []
    for object_name in chosen:
        account_id = objects[object_name].get("accountId")
        account = rt.store.account(org.id, account_id) if isinstance(account_id, str) else None
        if account is None or account.deleted:
            skipped.append(f"{object_name} (not registered: see its status)")
            continue
        if not account.scan_enabled:
            skipped.append(f"{object_name} (scanEnabled is false)")
            continue
        if limit is not None and used >= limit:
            message = (
                f"the organization's plan allows {limit} scans a month and {used} ran since "
                f"{month_start:%Y-%m-%d}; ask an administrator to raise monthly_scan_limit"
            )
            common.set_conditions(
                patch, body, [Condition("Ready", False, "ScanLimitReached", message)]
            )
            kopf.warn(body, reason="ScanLimitReached", message=message)
            _record(namespace, name, account_id, "skipped", message)
            break
        if _submit(namespace, name, account, spec, scan_type):
            used += 1
            started.append(object_name)
        else:
            skipped.append(
                f"{object_name} (a scan of it is still running: concurrencyPolicy Forbid)"
            )
    if started:
        where = " as Kubernetes Jobs" if _executor_of(spec) == "job" else ""
        common.normal(
            body, reason="ScanStarted", message=f"{scan_type} scan of {', '.join(started)}{where}"
        )
        common.set_conditions(
            patch, body, [Condition("Ready", True, "Scheduled", f"scanning {', '.join(started)}")]
        )
    if skipped:
        common.normal(body, reason="ScanSkipped", message="skipped " + "; ".join(skipped))


def _record(namespace: str, schedule: str, account_id: str, outcome: str, message: str) -> None:
    rt = runtime.get()
    with rt.lock:
        rt.results.setdefault((namespace, schedule), {})[account_id] = ScheduleResult(
            started_at=rt.now(), outcome=outcome, message=message
        )


def _submit(
    namespace: str,
    schedule: str,
    account: AccountRecord,
    spec: Mapping[str, Any],
    scan_type: domain.ScanType,
) -> bool:
    """Start a scan of the account unless one is running (Forbid) or after stopping it (Replace)."""
    rt = runtime.get()
    if _executor_of(spec) == "job":
        return _submit_job(namespace, schedule, account, spec, scan_type)
    with rt.lock:
        running = rt.running.get(account.id)
        if running is not None and not running.future.done():
            if spec.get("concurrencyPolicy", "Forbid") != "Replace":
                return False
            running.cancel.set()
        cancel = threading.Event()
        options = scanning.ScanOptions(
            scan_type=scan_type,
            regions=spec.get("regions") or None,
            detectors=spec.get("resourceTypes") or None,
            parameters=spec.get("parameters") or {},
        )
        future = rt.pool.submit(
            _scan_then_clean, namespace, schedule, account, options, cancel, running
        )
        rt.running[account.id] = RunningScan(
            future=future, cancel=cancel, schedule=(namespace, schedule)
        )
        rt.results.setdefault((namespace, schedule), {})[account.account_id] = ScheduleResult(
            started_at=rt.now(), outcome="running", message=f"{scan_type} scan started"
        )
    return True


def _scan_then_clean(
    namespace: str,
    schedule: str,
    account: AccountRecord,
    options: scanning.ScanOptions,
    cancel: threading.Event,
    replaced: RunningScan | None,
) -> None:
    rt = runtime.get()
    if replaced is not None:
        # Replace: wait for the old scan to stop; its own run recorded its outcome.
        with contextlib.suppress(Exception):
            replaced.future.result(timeout=300)
    try:
        outcome = scanning.run_scan(
            rt.store,
            account,
            options,
            settings=rt.settings,
            session_factory=rt.session_factory,
            recorder=rt.recorder_factory(),
            cancel=cancel,
            now=rt.now,
        )
        result, message = _after_scan(namespace, outcome)
    except Exception as error:  # the scan pool must never die; the outcome says what happened
        result, message = "failed", f"{type(error).__name__}: {error}"
        log.exception("[%s/%s] scan of account %s failed", namespace, schedule, account.account_id)
    else:
        log.info(
            "[%s/%s] scan of account %s %s: %s",
            namespace,
            schedule,
            account.account_id,
            result,
            message,
        )
    _done(namespace, schedule, account.account_id, account.id, cancel, result, message)


def _after_scan(
    namespace: str, outcome: scanning.ScanOutcome, *, ran_as_job: bool = False
) -> tuple[str, str]:
    """Notify, then (for a completed or partial scan) run the namespace's CleanupPolicies: in
    the operator, whichever executor ran the scan. Returns the outcome and its message."""
    rt = runtime.get()
    if rt.notifier is not None:
        rt.notifier.notify_scan(outcome)
    result = outcome.scan.status
    # A Job's run comes back from the database, without its task list: its error message says.
    failed_parts = outcome.scan.error_message if ran_as_job else outcome.failed_tasks
    message = outcome.error or (
        f"{outcome.scan.total_waste_items_found} waste items, "
        f"{outcome.scan.total_monthly_waste_cost} USD/month"
        + (f"; failed: {outcome.scan.error_message}" if failed_parts else "")
    )
    if outcome.scan.status in (
        domain.ScanStatus.COMPLETED.value,
        domain.ScanStatus.PARTIAL.value,
    ):
        policies = rt.namespace_policies(namespace)
        if policies:
            # One bad policy must not stop the namespace's others (issue 11): isolated.
            runs = cleaning.run_cleanup_isolated(
                rt.store,
                namespace,
                policies,
                cleaning.CleanupOptions(
                    dry_run=False,  # each policy's own dryRun still applies
                    method=domain.ExecutionMethod.AUTOMATED,
                    settings=rt.settings,
                    session_factory=rt.session_factory,
                    recorder=rt.recorder_factory(),
                    now=rt.now,
                ),
            )
            rt.record_policy_failures(namespace, [p.name for p in policies], runs.failed)
            runs_named = ", ".join(str(r.run_id) for r in runs.reports) or "none"
            message += f"; cleanup runs {runs_named}: {len(runs.results)} items handled"
            if runs.failed:
                message += f"; policies {', '.join(sorted(runs.failed))} failed"
            if rt.notifier is not None:
                for report in runs.reports:
                    rt.notifier.notify_cleanup(report)
    return result, message


def _done(
    namespace: str,
    schedule: str,
    account_id: str,
    account_uuid: Any,
    cancel: threading.Event | None,
    result: str,
    message: str,
    *,
    job: bool = False,
) -> None:
    """The scan's outcome, for ``_publish``; the account is free for its next scan."""
    rt = runtime.get()
    with rt.lock:
        rt.results.setdefault((namespace, schedule), {})[account_id] = ScheduleResult(
            started_at=rt.now(), outcome=result, message=message
        )
        running = rt.running.get(account_uuid)
        if running is not None and cancel is not None and running.cancel is cancel:
            del rt.running[account_uuid]
            if job and not running.future.done():
                running.future.set_result(None)  # a scan Job's placeholder


# --- scans as Kubernetes Jobs ------------------------------------------------------------------


def _executor_of(spec: Mapping[str, Any]) -> str:
    """Where the schedule's scans run: its spec.executor, else the operator's setting."""
    return str(spec.get("executor") or runtime.get().settings.scan_executor)


def start_scan_jobs() -> None:
    """At start-up when Job mode is the default: adopt the Jobs of the previous process now."""
    _executor().start()


def _executor() -> scan_jobs.JobExecutor:
    rt = runtime.get()
    with rt.lock:
        if rt.scan_jobs is None:
            rt.scan_jobs = scan_jobs.JobExecutor(rt.settings, rt.store, _job_finished, now=rt.now)
        executor: scan_jobs.JobExecutor = rt.scan_jobs
    return executor


def _submit_job(
    namespace: str,
    schedule: str,
    account: AccountRecord,
    spec: Mapping[str, Any],
    scan_type: domain.ScanType,
) -> bool:
    """Queue a scan Job for the account (Forbid / Replace as in-process; a Job of an earlier
    operator process counts as running)."""
    rt = runtime.get()
    executor = _executor()
    executor.start()  # a first call adopts the Jobs of an earlier process: they count below
    replace = spec.get("concurrencyPolicy", "Forbid") == "Replace"
    with rt.lock:
        running = rt.running.get(account.id)
        if running is not None and not running.future.done():
            if not replace:
                return False
            running.cancel.set()  # the executor deletes its Job; the new one waits for that
        elif executor.busy(namespace, account.account_id) and not replace:
            return False  # adopted from before a restart
        cancel = threading.Event()
        rt.running[account.id] = RunningScan(
            future=Future(), cancel=cancel, schedule=(namespace, schedule)
        )
    request = job_specs.ScanRequest(
        schedule_namespace=namespace,
        schedule=schedule,
        account_id=account.account_id,
        scan_type=scan_type.value,
        regions=tuple(spec.get("regions") or ()) or None,
        detectors=tuple(spec.get("resourceTypes") or ()) or None,
        parameters=spec.get("parameters") or {},
    )
    ahead = executor.submit(request, account.id, cancel)
    with rt.lock:
        rt.results.setdefault((namespace, schedule), {})[account.account_id] = ScheduleResult(
            started_at=rt.now(),
            outcome="running",
            message=f"{scan_type} scan queued as a Kubernetes Job ({ahead} ahead of it)",
        )
    return True


def _job_finished(outcome: scan_jobs.JobOutcome) -> None:
    """Called by the executor's thread: the rest (notifications, cleanups) runs on the pool."""
    runtime.get().pool.submit(_after_job, outcome)


def _after_job(outcome: scan_jobs.JobOutcome) -> None:
    rt = runtime.get()
    request = outcome.request
    namespace, schedule = request.schedule_namespace, request.schedule
    org = rt.store.organization(namespace)
    account = rt.store.account(org.id, request.account_id) if org is not None else None
    result, message = outcome.status, outcome.message
    try:
        if outcome.run is not None and outcome.status != domain.ScanStatus.CANCELLED.value:
            scanned = scanning.ScanOutcome(
                scan=outcome.run,
                tasks=(),
                api_calls=int(outcome.run.metadata.get("api_calls") or 0),
                error=outcome.message if outcome.status == domain.ScanStatus.FAILED.value else None,
            )
            result, message = _after_scan(namespace, scanned, ran_as_job=True)
    except Exception as error:
        result, message = "failed", f"{type(error).__name__}: {error}"
        log.exception("[%s/%s] after the scan Job of %s", namespace, schedule, request.account_id)
    if outcome.job_name:
        message = f"{message} (Job {outcome.job_name})"
    log.info(
        "[%s/%s] scan Job of account %s %s: %s",
        namespace,
        schedule,
        request.account_id,
        result,
        message,
    )
    _done(
        namespace,
        schedule,
        request.account_id,
        account.id if account is not None else None,
        outcome.cancel,
        result,
        message,
        job=True,
    )


def _publish(body: kopf.Body, patch: kopf.Patch, namespace: str, name: str) -> None:
    """Put finished runs into status, with an Event each."""
    rt = runtime.get()
    with rt.lock:
        results = dict(rt.results.get((namespace, name), {}))
    fresh = {acct: r for acct, r in results.items() if not r.published and r.outcome != "running"}
    if not fresh:
        if results:
            patch.status["lastRunOutcome"] = _summary(results)
        return
    patch.status["lastRunOutcome"] = _summary(results)
    worst = _worst([r.outcome for r in fresh.values()])
    for account_id, result in fresh.items():
        message = f"account {account_id}: {result.outcome}: {result.message}"[:1000]
        if result.outcome in ("failed",):
            kopf.warn(body, reason="ScanFailed", message=message)
        elif result.outcome == "partial":
            kopf.warn(body, reason="ScanPartial", message=message)
        else:
            common.normal(body, reason="ScanCompleted", message=message)
        result.published = True
    if worst == "failed":
        common.set_conditions(
            patch, body, [Condition("Ready", False, "ScanFailed", _messages(fresh))]
        )
    elif worst == "partial":
        common.set_conditions(
            patch, body, [Condition("Ready", True, "ScanPartial", _messages(fresh))]
        )
    else:
        common.set_conditions(
            patch, body, [Condition("Ready", True, "Scheduled", _messages(fresh))]
        )


def _summary(results: Mapping[str, ScheduleResult]) -> str:
    return _worst([r.outcome for r in results.values()])


def _worst(outcomes: list[str]) -> str:
    for outcome in ("failed", "partial", "cancelled", "skipped", "running", "completed"):
        if outcome in outcomes:
            return outcome
    return "completed"


def _messages(results: Mapping[str, ScheduleResult]) -> str:
    return "; ".join(f"{acct}: {r.outcome} ({r.message})" for acct, r in sorted(results.items()))[
        :1000
    ]
