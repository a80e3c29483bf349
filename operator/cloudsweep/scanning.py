"""A scan run: one account, its regions x the registered detectors, concurrently, into the store.

Called by the ``cloudsweep scan`` command and the ScanSchedule handler. Each region gets one
``Inventory`` shared by its detectors, so volumes, snapshots and images are listed once per region
however many detectors read them. Findings stream to the store in batches as detector tasks finish.

A region or detector that fails (throttled past retries, region not enabled, access denied) fails
that (region, detector) only: the run ends ``partial`` with the errors in its metadata, and items
there are not closed, so a failure never reads as "no waste". Credentials that cannot be assumed, or
that belong to another account, fail the whole run before any call beyond STS.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from cloudsweep import aws, detectors, domain
from cloudsweep.aws import regions as aws_regions
from cloudsweep.detectors import Detector, RegionContext
from cloudsweep.pricing import PriceCatalog
from cloudsweep.pricing.active import active_catalog
from cloudsweep.settings import Settings, get_settings
from cloudsweep.store import BATCH_SIZE, AccountRecord, ScanRecord, Store, rate_budget

log = logging.getLogger(__name__)


class ScanRefused(domain.InvalidInput):
    """The scan cannot start (bad parameters, unknown detector, no regions); nothing was called."""


class ScanCancelled(Exception):
    """Raised in a detector's thread at its next AWS call once the scan is cancelled (its
    AwsAccount was deleted, or a schedule's Replace policy stopped it)."""


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """What one detector did in one region."""

    region: str
    detector: str
    findings: int = 0
    error_kind: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    scan: ScanRecord
    tasks: tuple[TaskOutcome, ...]
    api_calls: int
    error: str | None = None
    # Regions not scanned and why: not enabled for the account, or (with ``all`` regions) denied.
    skipped_regions: Mapping[str, str] = field(default_factory=dict)

    @property
    def failed_tasks(self) -> list[TaskOutcome]:
        return [task for task in self.tasks if not task.ok]


@dataclass(frozen=True, slots=True)
class ScanProgress:
    """Sent to the progress callback after every detector task: ``done`` of ``total``."""

    done: int
    total: int
    task: TaskOutcome


@dataclass
class ScanOptions:
    scan_type: domain.ScanType = domain.ScanType.MANUAL
    regions: Sequence[str] | None = None  # None: the account's regions
    detectors: Sequence[str] | None = None  # None: every registered detector
    parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    concurrency: int | None = None
    page_size: int | None = None
    created_by: Any = None


SessionFactory = Callable[..., aws.ScanSession]


def _selected_detectors(options: ScanOptions) -> list[tuple[Detector[Any], Any]]:
    """Detectors with validated parameters; any bad input refuses the scan before AWS is called."""
    names = list(options.detectors) if options.detectors else detectors.names()
    unknown_params = set(options.parameters) - set(names)
    if unknown_params:
        raise ScanRefused(
            f"parameters given for {', '.join(sorted(unknown_params))}, which this scan does not run; "
            f"known resource types: {', '.join(detectors.names())}"
        )
    selected = []
    for name in names:
        detector = detectors.get(name)()
        try:
            params = detector.parameters(options.parameters.get(name))
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'parameters'}: {e['msg']}"
                for e in error.errors()
            )
            raise ScanRefused(f"parameters of {name}: {problems}") from None
        selected.append((detector, params))
    return selected


def run_scan(
    store: Store,
    account: AccountRecord,
    options: ScanOptions | None = None,
    *,
    settings: Settings | None = None,
    prices: PriceCatalog | None = None,
    session_factory: SessionFactory = aws.AccountSession,
    recorder: aws.CallRecorder | None = None,
    progress: Callable[[ScanProgress], None] | None = None,
    cancel: threading.Event | None = None,
    now: Callable[[], datetime] = domain.utcnow,
    scan: ScanRecord | None = None,
) -> ScanOutcome:
    """Scan ``account`` and record the run; returns the closed run and what each task did.

    ``scan``: a run already opened for this account (the operator opens a scan Job's run before
    it creates the Job, so a Job that never starts still ends as a failed run); else one is opened.
    """
    options = options or ScanOptions()
    settings = settings or get_settings()
    selected = _selected_detectors(options)
    regions = list(dict.fromkeys(options.regions or account.regions))
    if not regions:
        raise ScanRefused(f"account {account.account_id} has no regions to scan")
    concurrency = options.concurrency or settings.scan_concurrency
    prices = prices or active_catalog(settings)
    recorder = recorder or aws.CallRecorder()
    permissions = {p for detector, _ in selected for p in detector.permissions}
    all_regions = domain.ALL_REGIONS in regions
    if all_regions:
        permissions.add(aws_regions.DESCRIBE_REGIONS_PERMISSION)

    holder = store.account_holder(account.account_id)
    if holder != account.organization_id and not settings.allow_shared_accounts:
        # Registered before claims existed, or while sharing was allowed: not this
        # organization's account (any more). Refused before any AWS call.
        raise ScanRefused(
            f"AWS account {account.account_id} is not held by this organization: another "
            "organization registered it (an account belongs to one organization only)"
        )
    if scan is None:
        scan = store.open_scan(
            account.id,
            scan_type=options.scan_type,
            regions=regions,
            started_at=now(),
            created_by=options.created_by,
        )
    elif scan.aws_account_id != account.id or scan.status != domain.ScanStatus.RUNNING.value:
        raise ScanRefused(
            f"scan {scan.id} is not an open run of account {account.account_id} ({scan.status})"
        )
    session = session_factory(
        account.account_id,
        account.role_arn,
        external_id=account.external_id,
        purpose=aws.Purpose.SCAN,
        scan_permissions=sorted(permissions),
        settings=settings,
        recorder=recorder,
        concurrency=concurrency,
        budget=rate_budget.for_settings(store.url, settings),
        # An account whose role does not enforce the ExternalId is not used (confused deputy);
        # a scan on the user's own credentials assumes no role.
        **(
            {"require_external_id": not settings.allow_shared_accounts}
            if account.role_arn is not None
            else {}
        ),
    )
    skipped: dict[str, str] = {}
    if cancel is not None:
        session = _Cancellable(session, cancel)
    try:
        if cancel is not None and cancel.is_set():
            raise ScanCancelled()
        session.verify()
        if all_regions:
            found = aws_regions.account_regions(session)
            named = [r for r in regions if r != domain.ALL_REGIONS]
            regions = list(dict.fromkeys([*found.enabled, *named]))
            skipped = {r: why for r, why in found.skipped.items() if r not in regions}
    except ScanCancelled:
        closed = store.close_scan(
            scan,
            status=domain.ScanStatus.CANCELLED,
            completed_at=now(),
            resources_scanned=0,
            error_message="cancelled before it started",
            metadata={"api_calls": len(recorder.records)},
        )
        return ScanOutcome(scan=closed, tasks=(), api_calls=len(recorder.records))
    except aws.AwsError as error:
        store.set_connection(account.id, domain.ConnectionStatus.FAILED, str(error))
        closed = store.close_scan(
            scan,
            status=domain.ScanStatus.FAILED,
            completed_at=now(),
            resources_scanned=0,
            error_message=str(error),
            metadata={"error_kind": error.kind.value, "api_calls": len(recorder.records)},
        )
        return ScanOutcome(scan=closed, tasks=(), api_calls=len(recorder.records), error=str(error))
    store.set_connection(account.id, domain.ConnectionStatus.CONNECTED)

    contexts = {
        region: RegionContext.for_session(
            session, region, prices, now=scan.started_at, page_size=options.page_size
        )
        for region in regions
    }
    outcomes: list[TaskOutcome] = []
    buffer: list[domain.Finding] = []
    total = len(regions) * len(selected)
    cancelled = False

    metrics = {region: _RegionMetrics(contexts[region], selected) for region in regions}

    def run_task(region: str, detector: Detector[Any], params: Any) -> list[domain.Finding]:
        if detector.reads_metrics:
            metrics[region].read_once()
        # What selected each finding travels with it to the cleanup's re-check, which must
        # never be laxer than the scan (e.g. a ScanSchedule's own protection tags).
        selection = {
            "detector": detector.name,
            "protection_tags": list(params.protection_tags),
            "min_age_days": params.min_age_days,
        }
        return [
            dataclasses.replace(found, details={**found.details, "selection": selection})
            for found in detector.detect(contexts[region], params)
        ]

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="scan") as pool:
        pending: dict[Future[list[domain.Finding]], tuple[str, str]] = {
            pool.submit(run_task, region, detector, params): (region, detector.name)
            for region in regions
            for detector, params in selected
        }
        while pending:
            done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            if cancel is not None and cancel.is_set() and not cancelled:
                cancelled = True
                for future in pending:
                    future.cancel()
            for future in done:
                region, name = pending.pop(future)
                if future.cancelled() or cancelled:
                    continue  # a cancelled scan stores nothing more
                outcome = _task_outcome(future, region, name, buffer)
                outcomes.append(outcome)
                if progress is not None:
                    progress(ScanProgress(done=len(outcomes), total=total, task=outcome))
                if len(buffer) >= BATCH_SIZE:
                    store.upsert_findings(scan, buffer, seen_at=now())
                    buffer.clear()
    if buffer and not cancelled:
        store.upsert_findings(scan, buffer, seen_at=now())

    return _finish(
        store,
        scan,
        outcomes,
        contexts,
        selected,
        regions,
        recorder,
        options,
        cancelled,
        now(),
        skipped=skipped,
        all_regions=all_regions,
    )


class _RegionMetrics:
    """Every selected detector's CloudWatch metrics of one region, read together before the
    region's first detector that reads metrics runs (whichever such task starts first; the
    others wait for it, the rest do not), so the region costs ceil(queries / 500) GetMetricData
    calls (first look, then the daily series it did not settle), not a batch per detector. The
    detectors then read the same queries from the inventory's cache.

    A detector whose needs cannot be listed, or a failed read, is left to the detectors' own
    reads: they raise the same error and fail alone, as without this step.
    """

    def __init__(self, ctx: RegionContext, selected: Sequence[tuple[Detector[Any], Any]]) -> None:
        self._ctx = ctx
        self._selected = selected
        self._lock = threading.Lock()
        self._done = False

    def read_once(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
            self._read()

    def _read(self) -> None:
        needs = []
        for detector, params in self._selected:
            if not detector.reads_metrics:
                continue
            try:
                need = detector.metric_needs(self._ctx, params)
            except ScanCancelled:
                raise
            except Exception:  # the detector's own run raises it again and reports it
                log.debug(
                    "metric needs of %s in %s", detector.name, self._ctx.region, exc_info=True
                )
                continue
            if need is not None:
                needs.append(need)
        try:
            self._ctx.inventory.read_metrics_together(needs, now=self._ctx.now)
        except aws.AwsError as error:
            log.warning("metrics of %s read together failed: %s", self._ctx.region, error)


class _Cancellable:
    """The scan's session, whose clients check the cancellation before every AWS call (each
    page of a listing is one): a running detector stops at its next call, not when it is done."""

    def __init__(self, session: aws.ScanSession, cancel: threading.Event) -> None:
        self._session = session
        self._cancel = cancel
        self.account_id = session.account_id
        self.partition = session.partition

    def verify(self) -> aws.CallerIdentity:
        return self._session.verify()

    def client(self, service: str, region: str) -> Any:
        client = self._session.client(service, region)
        client.meta.events.register(
            "before-call", self._check, unique_id=f"cloudsweep-cancel-{id(self._cancel)}"
        )
        return client

    def _check(self, **_: Any) -> None:
        if self._cancel.is_set():
            raise ScanCancelled()


def _task_outcome(
    future: Future[list[domain.Finding]], region: str, name: str, buffer: list[domain.Finding]
) -> TaskOutcome:
    try:
        found = future.result()
    except ScanCancelled:
        return TaskOutcome(region, name, error_kind="cancelled", error="the scan was cancelled")
    except aws.AwsError as error:
        log.warning("%s in %s failed: %s", name, region, error)
        return TaskOutcome(region, name, error_kind=error.kind.value, error=str(error))
    except Exception as error:  # a detector bug must not take the other regions down with it
        log.exception("%s in %s raised", name, region)
        return TaskOutcome(
            region, name, error_kind="internal", error=f"{type(error).__name__}: {error}"
        )
    buffer.extend(found)
    return TaskOutcome(region, name, findings=len(found))


def _finish(
    store: Store,
    scan: ScanRecord,
    outcomes: list[TaskOutcome],
    contexts: Mapping[str, RegionContext],
    selected: Sequence[tuple[Detector[Any], Any]],
    regions: Sequence[str],
    recorder: aws.CallRecorder,
    options: ScanOptions,
    cancelled: bool,
    finished_at: datetime,
    *,
    skipped: dict[str, str],
    all_regions: bool,
) -> ScanOutcome:
    resource_type_of = {detector.name: detector.resource_type for detector, _ in selected}
    if options.scan_type.closes_unseen and not cancelled:
        for region in regions:
            completed = [
                resource_type_of[o.detector] for o in outcomes if o.region == region and o.ok
            ]
            if completed:
                store.close_unseen(
                    scan, regions=[region], resource_types=completed, now=finished_at
                )
        # Removals this scan confirmed (the resource is no longer there) now count as savings.
        store.confirm_savings(scan.aws_account_id)

    skipped = {**skipped, **_refused_regions(outcomes, all_regions)}
    outcomes = [o for o in outcomes if o.region not in skipped]
    failed = [o for o in outcomes if not o.ok]
    if cancelled:
        status = domain.ScanStatus.CANCELLED
    elif not failed:
        status = domain.ScanStatus.COMPLETED
    elif len(failed) == len(outcomes):
        status = domain.ScanStatus.FAILED
    else:
        status = domain.ScanStatus.PARTIAL
    errors_by_region: dict[str, dict[str, dict[str, str | None]]] = {}
    for outcome in failed:
        errors_by_region.setdefault(outcome.region, {})[outcome.detector] = {
            "kind": outcome.error_kind,
            "error": outcome.error,
        }
    listings = {region: ctx.inventory.listings() for region, ctx in contexts.items()}
    resources_scanned = sum(sum(counts.values()) for counts in listings.values())
    error_message = None
    if failed:
        error_message = "; ".join(f"{o.detector} in {o.region}: {o.error}" for o in failed[:5])
        if len(failed) > 5:
            error_message += f"; and {len(failed) - 5} more"
    closed = store.close_scan(
        scan,
        status=status,
        completed_at=finished_at,
        resources_scanned=resources_scanned,
        error_message=error_message,
        metadata={
            "detectors": [detector.name for detector, _ in selected],
            "regions_failed": sorted(errors_by_region),
            "regions_skipped": skipped,
            "errors": errors_by_region,
            "listings": listings,
            # Distinct CloudWatch series read, by region and lookback: what the benchmark's
            # minimum of GetMetricData calls is computed from.
            "metric_series": {
                region: ctx.inventory.metrics.distinct_series() for region, ctx in contexts.items()
            },
            "api_calls": len(recorder.records),
            "catalog_version": getattr(next(iter(contexts.values())).prices, "version", None),
        },
    )
    return ScanOutcome(
        scan=closed,
        tasks=tuple(outcomes),
        api_calls=len(recorder.records),
        skipped_regions=skipped,
    )


def _refused_regions(outcomes: Sequence[TaskOutcome], all_regions: bool) -> dict[str, str]:
    """Regions where every task was refused because of the region itself: skipped, not failed.

    A region that is not enabled always counts; an access denial counts only when the scan asked
    for every region (an SCP that denies a region is the account's choice), never for a region
    the user named, where it is an error to fix.
    """
    kinds = {aws.ErrorKind.REGION_DISABLED.value}
    if all_regions:
        kinds.add(aws.ErrorKind.ACCESS_DENIED.value)
    by_region: dict[str, list[TaskOutcome]] = {}
    for outcome in outcomes:
        by_region.setdefault(outcome.region, []).append(outcome)
    refused: dict[str, str] = {}
    for region, tasks in by_region.items():
        if tasks and all(t.error_kind in kinds for t in tasks):
            first = tasks[0]
            why = (
                "not enabled for the account"
                if first.error_kind == "region-disabled"
                else ("access denied in this region (an SCP or the role's policy)")
            )
            refused[region] = f"{why}: {first.error}"
    return refused
