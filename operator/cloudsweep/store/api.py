"""``Store``: the one object the engine and the front doors use to persist and read CloudSweep data.

Each method is one transaction. Arguments and results are plain values (``records``), so callers
never import SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cloudsweep import domain
from cloudsweep.store import (
    accounts,
    approvals,
    findings,
    ledger,
    migrate,
    organizations,
    retention,
    scans,
    views,
)
from cloudsweep.store.engine import get_engine, session_scope
from cloudsweep.store.models import Base
from cloudsweep.store.records import (
    AccountRecord,
    OrganizationRecord,
    RetentionReport,
    ScanRecord,
    UpsertResult,
    WasteItemRecord,
)

BATCH_SIZE = 5_000
log = logging.getLogger(__name__)


class ItemLock:
    """A session-level advisory lock on one waste item, held on a connection of its own.

    It is how workers tell "under way" from "abandoned": PostgreSQL releases it when the holder's
    connection ends (the process died, or the database restarted), so a started attempt whose lock
    can be taken has no live worker and must be reconciled from AWS.
    """

    def __init__(self, connection: sa.Connection) -> None:
        self._connection = connection

    def alive(self) -> bool:
        """True while this process still holds the lock (checked before every destructive call)."""
        try:
            held = self._connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = pg_backend_pid() AND granted"
                )
            ).scalar_one()
        except sa.exc.SQLAlchemyError:
            return False
        return int(held) > 0


class Store:
    def __init__(self, url: str) -> None:
        self.url = url

    # --- tenants and accounts ---------------------------------------------------------------

    def ensure_organization(
        self,
        slug: str,
        *,
        name: str | None = None,
        namespace_uid: str | None = None,
        monthly_scan_limit: int | None = None,
        auto_cleanup_enabled: bool | None = None,
    ) -> OrganizationRecord:
        with session_scope(self.url) as session:
            return organizations.ensure(
                session,
                slug,
                name=name,
                namespace_uid=namespace_uid,
                monthly_scan_limit=monthly_scan_limit,
                auto_cleanup_enabled=auto_cleanup_enabled,
            )

    def set_organization_auto_cleanup(self, slug: str, enabled: bool) -> bool:
        with session_scope(self.url) as session:
            return organizations.set_auto_cleanup(session, slug, enabled)

    def organization_slugs(self) -> list[str]:
        with session_scope(self.url) as session:
            return organizations.slugs(session)

    def organization(self, slug: str) -> OrganizationRecord | None:
        with session_scope(self.url) as session:
            return organizations.get(session, slug)

    def register_account(
        self,
        organization_id: uuid.UUID,
        *,
        account_id: str,
        role_arn: str | None,
        external_id: str | None,
        regions: Sequence[str],
        account_name: str | None = None,
        scan_enabled: bool = True,
        auto_cleanup_enabled: bool = False,
        allow_shared: bool = False,
    ) -> AccountRecord:
        """Register (or update) the organization's account; raises ``AccountClaimed`` when another
        organization holds it and ``allow_shared`` is off (nothing is written then)."""
        with session_scope(self.url) as session:
            return accounts.register(
                session,
                organization_id,
                account_id=account_id,
                role_arn=role_arn,
                external_id=external_id,
                regions=regions,
                account_name=account_name,
                scan_enabled=scan_enabled,
                auto_cleanup_enabled=auto_cleanup_enabled,
                allow_shared=allow_shared,
            )

    def account_holder(self, account_id: str) -> uuid.UUID | None:
        """The organization holding the AWS account ``account_id`` (None: nobody)."""
        with session_scope(self.url) as session:
            return accounts.holder(session, account_id)

    def account(self, organization_id: uuid.UUID, account_id: str) -> AccountRecord | None:
        with session_scope(self.url) as session:
            return accounts.get(session, organization_id, account_id)

    def accounts(self, organization_id: uuid.UUID) -> list[AccountRecord]:
        with session_scope(self.url) as session:
            return accounts.list_for_organization(session, organization_id)

    def set_connection(
        self, account_uuid: uuid.UUID, status: domain.ConnectionStatus, error: str | None = None
    ) -> None:
        with session_scope(self.url) as session:
            accounts.set_connection(session, account_uuid, status, error)

    def mark_account_deleted(self, account_uuid: uuid.UUID, when: datetime) -> None:
        with session_scope(self.url) as session:
            accounts.mark_deleted(session, account_uuid, when)

    # --- scans and findings -----------------------------------------------------------------

    def open_scan(
        self,
        account_uuid: uuid.UUID,
        *,
        scan_type: domain.ScanType,
        regions: Sequence[str],
        started_at: datetime,
        created_by: uuid.UUID | None = None,
    ) -> ScanRecord:
        with session_scope(self.url) as session:
            return scans.open_scan(
                session,
                account_uuid,
                scan_type=scan_type,
                regions=regions,
                started_at=started_at,
                created_by=created_by,
            )

    def upsert_findings(
        self, scan: ScanRecord, batch: Sequence[domain.Finding], *, seen_at: datetime | None = None
    ) -> UpsertResult:
        """Store findings of ``scan``'s account, ``BATCH_SIZE`` rows per statement.

        Nothing is stored once the account's deletion is processed (its AwsAccount was deleted
        while the scan ran): the registration's row is share-locked first, so a deletion either
        waits for this batch or is seen by it.
        """
        inserted = updated = 0
        seen = seen_at or domain.utcnow()
        with session_scope(self.url) as session:
            if not accounts.is_live(session, scan.aws_account_id, lock=True):
                log.info(
                    "account %s was deleted: findings of scan %s not stored",
                    scan.aws_account_id,
                    scan.id,
                )
                return UpsertResult(inserted=0, updated=0)
            for start in range(0, len(batch), BATCH_SIZE):
                result = findings.upsert_batch(
                    session,
                    account_uuid=scan.aws_account_id,
                    scan_id=scan.id,
                    observed_at=scan.started_at,
                    seen_at=seen,
                    findings=batch[start : start + BATCH_SIZE],
                )
                inserted += result.inserted
                updated += result.updated
        return UpsertResult(inserted=inserted, updated=updated)

    def close_unseen(
        self,
        scan: ScanRecord,
        *,
        regions: Sequence[str],
        resource_types: Sequence[str],
        now: datetime,
    ) -> int:
        with session_scope(self.url) as session:
            if not accounts.is_live(session, scan.aws_account_id, lock=True):
                return 0
            return findings.close_unseen(
                session,
                account_uuid=scan.aws_account_id,
                scan_id=scan.id,
                regions=regions,
                resource_types=resource_types,
                now=now,
            )

    def close_scan(
        self,
        scan: ScanRecord,
        *,
        status: domain.ScanStatus,
        completed_at: datetime,
        resources_scanned: int,
        error_message: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ScanRecord:
        with session_scope(self.url) as session:
            return scans.close_scan(
                session,
                scan.id,
                status=status,
                completed_at=completed_at,
                resources_scanned=resources_scanned,
                error_message=error_message,
                metadata=metadata,
            )

    def scan(self, scan_id: uuid.UUID) -> ScanRecord | None:
        """One scan run by id (a scan Job's, opened by the operator before the Job started)."""
        with session_scope(self.url) as session:
            return scans.get(session, scan_id)

    def latest_scan(self, account_uuid: uuid.UUID) -> ScanRecord | None:
        with session_scope(self.url) as session:
            return scans.latest(session, account_uuid)

    def latest_scans_changed(self, since: datetime | None) -> dict[uuid.UUID, ScanRecord]:
        """Account (db id) -> its latest scan, for accounts whose scans changed since ``since``."""
        with session_scope(self.url) as session:
            return scans.latest_changed(session, since)

    def scans_since(self, organization_id: uuid.UUID, since: datetime) -> int:
        with session_scope(self.url) as session:
            return scans.count_since(session, organization_id, since)

    def findings(self, selection: findings.FindingFilter) -> list[WasteItemRecord]:
        with session_scope(self.url) as session:
            return findings.list_findings(session, selection)

    # --- cleanup ledger -----------------------------------------------------------------------

    def candidates(
        self,
        organization_id: uuid.UUID,
        *,
        resource_type: str,
        account_ids: Sequence[str] = (),
        statuses: Sequence[str] = ledger.ACTIONABLE,
    ) -> Iterator[ledger.Candidate]:
        """Stream candidates inside one read-only transaction, so 100k items stay bounded."""
        with session_scope(self.url) as session:
            yield from ledger.iter_candidates(
                session,
                organization_id,
                resource_type=resource_type,
                account_ids=account_ids,
                statuses=statuses,
            )

    def candidate(self, item_id: uuid.UUID) -> ledger.Candidate | None:
        with session_scope(self.url) as session:
            return ledger.candidate(session, item_id)

    def ensure_user(self, organization_id: uuid.UUID, email: str) -> uuid.UUID:
        with session_scope(self.url) as session:
            return ledger.ensure_user(session, organization_id, email)

    def decide_items(
        self,
        organization_id: uuid.UUID,
        item_ids: Sequence[uuid.UUID],
        *,
        approve: bool,
        approver_email: str,
        now: datetime,
        ttl: timedelta = timedelta(days=14),
        approved_cost: Any = None,
        expires_at: datetime | None = None,
        decided_at: datetime | None = None,
        policy_name: str | None = None,
        policy_hash: str | None = None,
    ) -> list[uuid.UUID]:
        with session_scope(self.url) as session:
            return ledger.decide_items(
                session,
                organization_id,
                item_ids,
                approve=approve,
                approver_email=approver_email,
                now=now,
                ttl=ttl,
                approved_cost=approved_cost,
                expires_at=expires_at,
                decided_at=decided_at,
                policy_name=policy_name,
                policy_hash=policy_hash,
            )

    def record_admission(self, record: approvals.AdmissionRecord) -> bool:
        with session_scope(self.url) as session:
            return approvals.record_admission(session, record)

    def admission(self, object_uid: str) -> approvals.AdmissionRecord | None:
        with session_scope(self.url) as session:
            return approvals.admission(session, object_uid)

    def withdraw_approval(
        self,
        organization_id: uuid.UUID,
        item_ids: Sequence[uuid.UUID],
        *,
        approved_at: datetime,
        approver: str,
        now: datetime,
    ) -> list[uuid.UUID]:
        with session_scope(self.url) as session:
            return ledger.withdraw_approval(
                session,
                organization_id,
                item_ids,
                approved_at=approved_at,
                approver=approver,
                now=now,
            )

    def lapse_approval(self, item_id: uuid.UUID, reason: str, now: datetime) -> None:
        with session_scope(self.url) as session:
            ledger.lapse_approval(session, item_id, reason, now)

    def open_cleanup_run(self, organization_id: uuid.UUID, **kwargs: Any) -> uuid.UUID:
        with session_scope(self.url) as session:
            return ledger.open_run(session, organization_id, **kwargs)

    def close_cleanup_run(self, run_id: uuid.UUID, **kwargs: Any) -> None:
        with session_scope(self.url) as session:
            ledger.close_run(session, run_id, **kwargs)

    def claim(
        self, intent: ledger.Intent, *, allowed: Sequence[str], now: datetime
    ) -> uuid.UUID | None:
        """Record the intent and take the item (committed before any AWS call), or None."""
        try:
            with session_scope(self.url) as session:
                return ledger.claim(session, intent, allowed=allowed, now=now)
        except sa.exc.IntegrityError:
            # Another worker recorded a live attempt between our check and insert.
            return None

    def start_rollback(
        self, intent: ledger.Intent, now: datetime, *, quiet_since: datetime | None = None
    ) -> ledger.RollbackStart | None:
        try:
            with session_scope(self.url) as session:
                return ledger.start_rollback(session, intent, now, quiet_since=quiet_since)
        except sa.exc.IntegrityError:
            return None

    def checkpoint(self, action_id: uuid.UUID, data: Mapping[str, Any]) -> None:
        with session_scope(self.url) as session:
            ledger.checkpoint(session, action_id, data)

    def finish(self, action_id: uuid.UUID, **kwargs: Any) -> bool:
        """Record an attempt's outcome; False if another worker already recorded one."""
        with session_scope(self.url) as session:
            return ledger.finish(session, action_id, **kwargs)

    def heartbeat(self, action_id: uuid.UUID, now: datetime) -> None:
        with session_scope(self.url) as session:
            ledger.heartbeat(session, action_id, now)

    def record_dry_run(self, intent: ledger.Intent, **kwargs: Any) -> uuid.UUID:
        with session_scope(self.url) as session:
            return ledger.record_dry_run(session, intent, **kwargs)

    def interrupted_actions(
        self, organization_id: uuid.UUID, *, quiet_since: datetime | None = None
    ) -> list[uuid.UUID]:
        with session_scope(self.url) as session:
            return ledger.interrupted(session, organization_id, quiet_since=quiet_since)

    def action(self, action_id: uuid.UUID) -> ledger.ActionRecord | None:
        with session_scope(self.url) as session:
            return ledger.get_action(session, action_id)

    def actions(self, organization_slug: str, **kwargs: Any) -> list[ledger.ActionRecord]:
        with session_scope(self.url) as session:
            return ledger.list_actions(session, organization_slug, **kwargs)

    def policy_stats(self, organization_id: uuid.UUID, policy_name: str) -> ledger.PolicyStats:
        with session_scope(self.url) as session:
            return ledger.policy_stats(session, organization_id, policy_name)

    def save_policy(
        self, organization_id: uuid.UUID, document: Mapping[str, Any], *, active: bool
    ) -> None:
        with session_scope(self.url) as session:
            ledger.save_policy(session, organization_id, document, active=active)

    def confirm_savings(self, account_uuid: uuid.UUID) -> int:
        with session_scope(self.url) as session:
            return ledger.confirm_savings(session, account_uuid)

    @contextlib.contextmanager
    def item_lock(self, item_id: uuid.UUID) -> Iterator[ItemLock | None]:
        """Try to take the item's advisory lock; yields None when another worker holds it."""
        connection = get_engine(self.url).connect().execution_options(isolation_level="AUTOCOMMIT")
        key = f"cloudsweep-item:{item_id}"
        try:
            taken = connection.execute(
                sa.text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))"), {"k": key}
            ).scalar_one()
            yield ItemLock(connection) if taken else None
        finally:
            try:
                connection.execute(sa.text("SELECT pg_advisory_unlock_all()"))
                connection.close()
            except sa.exc.SQLAlchemyError:
                log.warning(
                    "the connection holding the lock of item %s broke; discarding it", item_id
                )
                connection.invalidate()

    # --- maintenance ------------------------------------------------------------------------

    def refresh_views(self, *, concurrently: bool = True) -> tuple[str, ...]:
        with get_engine(self.url).begin() as connection:
            return views.refresh(connection, concurrently=concurrently)

    def apply_retention(
        self, now: datetime, policy: retention.RetentionPolicy | None = None
    ) -> RetentionReport:
        with session_scope(self.url) as session:
            scans_deleted, actions_deleted, dropped, created = retention.apply(
                session, now, policy or retention.RetentionPolicy()
            )
        refreshed = self.refresh_views()
        return RetentionReport(
            scans_deleted=scans_deleted,
            actions_deleted=actions_deleted,
            partitions_dropped=tuple(dropped),
            partitions_created=created,
            views_refreshed=refreshed,
        )

    def status(self) -> dict[str, Any]:
        """Schema revision and exact row counts per table (for ``cloudsweep db status``)."""
        counts: dict[str, int] = {}
        with get_engine(self.url).connect() as connection:
            for table in Base.metadata.sorted_tables:
                counts[table.name] = int(
                    connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                )
        return {
            "revision": migrate.current_revision(self.url),
            "head": migrate.head_revision(),
            "tables": counts,
        }
