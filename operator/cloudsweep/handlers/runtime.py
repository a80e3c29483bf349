"""What the handlers share while the operator runs: the store, settings, the scan pool, results.

Created by the startup handler (``handlers.operator_config``) or, in tests, by ``configure``.
Scans and cleanups run on this pool, never on kopf's event loop or its handler threads, so a long
scan never blocks other handlers; timers publish their outcomes into status.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cloudsweep import aws
from cloudsweep.domain import utcnow
from cloudsweep.handlers.latest_scans import LatestScans
from cloudsweep.policies import CleanupPolicy
from cloudsweep.settings import Settings
from cloudsweep.store import Store


@dataclass
class RunningScan:
    future: Future[Any]
    cancel: threading.Event
    schedule: tuple[str, str]


@dataclass
class ScheduleResult:
    """The last run a schedule started, per account, waiting to be published into its status."""

    started_at: datetime
    outcome: str  # completed, partial, failed, cancelled, skipped, running
    message: str
    published: bool = False


@dataclass
class PolicyEntry:
    """A CleanupPolicy object as the engine sees it (parsed, accounts resolved)."""

    policy: CleanupPolicy
    suspended: bool


@dataclass
class Runtime:
    settings: Settings
    store: Store
    session_factory: Callable[..., aws.AccountSession] = aws.AccountSession
    recorder_factory: Callable[[], aws.CallRecorder] = aws.CallRecorder
    now: Callable[[], datetime] = utcnow
    pool: ThreadPoolExecutor = field(init=False)
    started_at: datetime = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # account (db id) -> the scan running for it; one at a time per account, whatever schedule.
    running: dict[uuid.UUID, RunningScan] = field(default_factory=dict)
    # (namespace, schedule) -> account id -> result
    results: dict[tuple[str, str], dict[str, ScheduleResult]] = field(default_factory=dict)
    # (namespace, policy name) -> policy
    policies: dict[tuple[str, str], PolicyEntry] = field(default_factory=dict)
    # Told about every scan and cleanup; never blocks them (cloudsweep.notify.Notifier).
    notifier: Any = None
    # (namespace, policy name) -> why the policy's last cleanup run failed (shown in its status).
    policy_failures: dict[tuple[str, str], str] = field(default_factory=dict)
    # Scans that run as Kubernetes Jobs (handlers.scan_jobs.JobExecutor), made on first use.
    scan_jobs: Any = None

    # The latest scan of every account, one query per status refresh for all AwsAccounts' timers.
    latest_scans: LatestScans = field(init=False)

    def __post_init__(self) -> None:
        self.started_at = self.now()
        self.latest_scans = LatestScans(self.store, self.settings.status_refresh_seconds, self.now)
        self.pool = ThreadPoolExecutor(
            max_workers=self.settings.max_concurrent_scans, thread_name_prefix="cloudsweep-scan"
        )

    def namespace_policies(self, namespace: str) -> list[CleanupPolicy]:
        with self.lock:
            return [
                entry.policy
                for (ns, _), entry in sorted(self.policies.items())
                if ns == namespace and not entry.suspended
            ]

    def record_policy_failures(
        self, namespace: str, ran: list[str], failed: dict[str, str]
    ) -> None:
        """After a cleanup run of ``ran``: remember which failed, forget those that ran well."""
        with self.lock:
            for name in ran:
                if name in failed:
                    self.policy_failures[(namespace, name)] = failed[name]
                else:
                    self.policy_failures.pop((namespace, name), None)

    def policy_failure(self, namespace: str, name: str) -> str | None:
        with self.lock:
            return self.policy_failures.get((namespace, name))

    def shutdown(self) -> None:
        if self.scan_jobs is not None:
            self.scan_jobs.shutdown()  # first: its Jobs run on, and the next operator adopts them
        with self.lock:
            for running in self.running.values():
                running.cancel.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.notifier is not None:
            self.notifier.close(timeout=5)


_current: Runtime | None = None


def configure(runtime: Runtime | None) -> None:
    global _current
    _current = runtime


def get() -> Runtime:
    if _current is None:
        raise RuntimeError(
            "the operator runtime is not configured (the startup handler did not run)"
        )
    return _current


def configured() -> bool:
    return _current is not None
