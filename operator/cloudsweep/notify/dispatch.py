"""``Notifier``: tells an organization's users about scans, cleanups, new waste and reports.

Created once per process by the operator (and optionally the CLI); called right after a scan
(``notify_scan``), a cleanup run (``notify_cleanup``) and by the weekly and monthly report timers
(``send_report``). Every call returns at once: the lookups and deliveries run on a small pool of
daemon threads fed by a bounded queue. When the queue is full the work is dropped and logged, so a
slow or dead receiver can never hold up, fail or undo a scan or a cleanup.

For each event the notifier reads the organization's active users and their
``notification_settings`` (no row: not told), and delivers to each channel they enabled: e-mail to
their address when ``email_enabled`` (and SMTP is configured), Slack to their webhook when
``slack_enabled``. High-value waste goes only to users whose ``min_waste_amount_notify`` is at most
the new waste's monthly cost. One webhook or address shared by several users gets the event once.

Each delivery has bounded time-outs (connect 3 s, total 10 s) and is retried with jittered
exponential back-off (``tenacity``) a bounded number of times when the failure is temporary
(connection error, time-out, 5xx, 429, SMTP 4xx); refused URLs, redirects and other 4xx are not
retried. Failures are logged with the host only: a Slack webhook's path is a secret.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import tenacity
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloudsweep import domain, reports
from cloudsweep.notify import email, events, slack, urls
from cloudsweep.store.notification_settings import NotificationSettingsStore, Recipient, Tenant
from cloudsweep.store.reporting import ReportingStore

if TYPE_CHECKING:
    from cloudsweep.cleaning import RunReport
    from cloudsweep.scanning import ScanOutcome

log = logging.getLogger(__name__)


class NotifySettings(BaseSettings):
    """``CLOUDSWEEP_SMTP_*`` and ``CLOUDSWEEP_NOTIFY_*``; the same fields may move to ``Settings``."""

    model_config = SettingsConfigDict(env_prefix="CLOUDSWEEP_", extra="ignore")

    smtp_host: str | None = Field(default=None, description="SMTP server; unset: no e-mail.")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = Field(default="cloudsweep@localhost", description="The From address.")
    smtp_starttls: bool = Field(default=True, description="Upgrade with STARTTLS.")
    smtp_ssl: bool = Field(default=False, description="Implicit TLS (port 465).")
    notify_allow_private: bool = Field(
        default=False,
        description="Tests and local development only: allow http and private or loopback "
        "webhook addresses. Never in production (it lets tenants reach internal services).",
    )
    notify_workers: int = Field(default=4, ge=1, le=32)
    notify_queue_size: int = Field(default=1000, ge=1)
    notify_attempts: int = Field(default=4, ge=1, le=10)

    def smtp_server(self) -> email.SmtpServer | None:
        if not self.smtp_host:
            return None
        return email.SmtpServer(
            host=self.smtp_host,
            port=self.smtp_port,
            user=self.smtp_user,
            password=self.smtp_password.get_secret_value() if self.smtp_password else None,
            sender=self.smtp_from,
            starttls=self.smtp_starttls,
            ssl=self.smtp_ssl,
        )


class Period(enum.StrEnum):
    WEEKLY = "weekly"
    MONTHLY = "monthly"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times a delivery is tried, and the jittered back-off between tries (seconds)."""

    attempts: int = 4
    initial: float = 1.0
    maximum: float = 30.0


@dataclass
class Stats:
    """Counters for tests and metrics; updated under the notifier's lock."""

    submitted: int = 0
    dropped: int = 0
    delivered: int = 0
    failed: int = 0
    refused: int = 0
    attempts: int = 0
    channels: dict[str, int] = field(default_factory=dict)


class _Pool:
    """Daemon worker threads over a bounded queue; ``submit`` never blocks."""

    def __init__(self, workers: int, size: int, name: str) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=size)
        self._pending = 0
        self._idle = threading.Condition()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Callable[[], None]) -> bool:
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self._done()
            return False
        return True

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # a bug in a job must not kill the worker
                log.exception("notification job failed")
            finally:
                self._done()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def stop(self, timeout: float) -> None:
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                break
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))


class Notifier:
    """Send events to the users of the organization they concern; never blocks the caller."""

    def __init__(
        self,
        database_url: str,
        *,
        settings: NotifySettings | None = None,
        timeouts: urls.Timeouts = urls.Timeouts(),  # noqa: B008 - frozen
        retry: RetryPolicy | None = None,
        resolver: urls.Resolver = urls.system_resolver,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings or NotifySettings()
        self.smtp = self.settings.smtp_server()
        self.allow_private = self.settings.notify_allow_private
        if self.allow_private:
            log.warning(
                "CLOUDSWEEP_NOTIFY_ALLOW_PRIVATE is on: webhooks may reach private and loopback "
                "addresses over http; use it only in tests and local development"
            )
        self.timeouts = timeouts
        self.retry = retry or RetryPolicy(attempts=self.settings.notify_attempts)
        self.resolver = resolver
        self._sleep = sleep
        self._recipients = NotificationSettingsStore(database_url)
        self._reporting = ReportingStore(database_url)
        self._database_url = database_url
        self._lock = threading.Lock()
        self.stats = Stats()
        self._pool = _Pool(
            self.settings.notify_workers, self.settings.notify_queue_size, "cloudsweep-notify"
        )

    # --- what the engine calls ------------------------------------------------------------------

    def notify_scan(self, outcome: ScanOutcome) -> None:
        """After a scan: "scan completed" and, when it found new waste, "high-value waste"."""
        self._submit(lambda: self._scan_job(outcome), f"scan {outcome.scan.id}")

    def notify_cleanup(self, report: RunReport) -> None:
        """After a cleanup run (dry run or real): "cleanup completed"."""
        self._submit(lambda: self._cleanup_job(report), f"cleanup run {report.run_id}")

    def send_report(self, organization_slug: str, period: Period) -> None:
        """The weekly or monthly report of one organization (called by the report timers)."""
        self._submit(
            lambda: self._report_job(organization_slug, period),
            f"{period.value} report of {organization_slug}",
        )

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until queued work is done (tests, shutdown); False if time ran out."""
        return self._pool.wait_idle(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Finish what can finish within ``timeout`` and stop the workers."""
        self.flush(timeout)
        self._pool.stop(timeout)

    # --- jobs, on the pool ------------------------------------------------------------------------

    def _submit(self, job: Callable[[], None], what: str) -> None:
        with self._lock:
            self.stats.submitted += 1
        if not self._pool.submit(job):
            with self._lock:
                self.stats.dropped += 1
            log.warning("notification queue full: dropped %s", what)

    def _scan_job(self, outcome: ScanOutcome) -> None:
        tenant = self._recipients.tenant_of_account(outcome.scan.aws_account_id)
        if tenant is None:
            log.warning("scan %s: its account is gone; nobody to notify", outcome.scan.id)
            return
        found = [events.scan_completed(outcome, tenant)]
        if outcome.scan.status in (domain.ScanStatus.COMPLETED, domain.ScanStatus.PARTIAL):
            new = self._reporting.new_waste_of_scan(outcome.scan.id, outcome.scan.started_at)
            high = events.high_value_waste(outcome, tenant, new)
            if high is not None:
                found.append(high)
        self._fan_out(tenant, found)

    def _cleanup_job(self, report: RunReport) -> None:
        tenant = self._recipients.tenant_of_run(report.run_id)
        if tenant is None:
            log.warning("cleanup run %s is not recorded; nobody to notify", report.run_id)
            return
        self._fan_out(tenant, [events.cleanup_completed(report, tenant)])

    def _report_job(self, organization_slug: str, period: Period) -> None:
        tenant = self._recipients.tenant(organization_slug)
        if tenant is None:
            log.warning("no organization %r: no %s report", organization_slug, period.value)
            return
        data = reports.build_report(self._database_url, organization_slug)
        build = events.weekly_report if period is Period.WEEKLY else events.monthly_report
        self._fan_out(tenant, [build(data, tenant)])

    def _fan_out(self, tenant: Tenant, found: list[events.Event]) -> None:
        recipients = self._recipients.recipients(tenant.organization_id)
        for event in found:
            sent: set[tuple[str, str]] = set()
            for recipient in recipients:
                for channel, address in self._channels(event, recipient):
                    if (channel, address) in sent:
                        continue
                    sent.add((channel, address))
                    self._submit(
                        self._delivery(event, channel, address, recipient),
                        f"{event.kind.value} to {recipient.email} by {channel}",
                    )

    def _channels(self, event: events.Event, recipient: Recipient) -> list[tuple[str, str]]:
        prefs = recipient.preferences
        if not getattr(prefs, event.kind.value):
            return []
        if event.amount is not None and event.amount < prefs.min_waste_amount_notify:
            return []
        channels: list[tuple[str, str]] = []
        if prefs.email_enabled and self.smtp is not None:
            channels.append(("email", recipient.email))
        if prefs.slack_enabled and prefs.slack_webhook_url:
            channels.append(("slack", prefs.slack_webhook_url))
        return channels

    def _delivery(
        self, event: events.Event, channel: str, address: str, recipient: Recipient
    ) -> Callable[[], None]:
        def deliver() -> None:
            if channel == "email":
                assert self.smtp is not None
                server = self.smtp
                self._attempt(
                    lambda: email.send(server, event.message, address, timeouts=self.timeouts),
                    event,
                    channel,
                    f"e-mail to {recipient.email}",
                )
            else:
                self._attempt(
                    lambda: slack.send(
                        address,
                        event.message,
                        timeouts=self.timeouts,
                        allow_private=self.allow_private,
                        resolver=self.resolver,
                    ),
                    event,
                    channel,
                    f"Slack webhook of {recipient.email}",
                )

        return deliver

    def _attempt(
        self, send: Callable[[], None], event: events.Event, channel: str, target: str
    ) -> None:
        def counted() -> None:
            with self._lock:
                self.stats.attempts += 1
            send()

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.info(
                "%s of %s in %s failed (try %d of %d), retrying: %s",
                event.kind.value,
                event.key,
                event.tenant.slug,
                state.attempt_number,
                self.retry.attempts,
                error,
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retry.attempts),
            wait=tenacity.wait_random_exponential(
                multiplier=self.retry.initial, max=self.retry.maximum
            ),
            retry=tenacity.retry_if_exception(
                lambda e: isinstance(e, urls.DeliveryError) and e.retryable
            ),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            retrying(counted)
        except urls.WebhookRefused as error:
            with self._lock:
                self.stats.refused += 1
            log.warning(
                "%s for %s not sent to the %s: %s",
                event.kind.value,
                event.tenant.slug,
                target,
                error,
            )
        except urls.DeliveryError as error:
            with self._lock:
                self.stats.failed += 1
            log.warning(
                "%s for %s could not be delivered by %s (%s): %s",
                event.kind.value,
                event.tenant.slug,
                channel,
                target,
                error,
            )
        else:
            with self._lock:
                self.stats.delivered += 1
                self.stats.channels[channel] = self.stats.channels.get(channel, 0) + 1
