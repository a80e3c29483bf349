"""``Store``: the one object the engine and the front doors use to persist and read CloudSweep data.

Each method is one transaction. Arguments and results are plain values (``records``), so callers
never import SQLAlchemy.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from cloudsweep import domain
from cloudsweep.store import accounts, findings, migrate, organizations, retention, scans, views
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


class Store:
    def __init__(self, url: str) -> None:
        self.url = url

    # --- tenants and accounts ---------------------------------------------------------------

    def ensure_organization(
        self, slug: str, *, name: str | None = None, namespace_uid: str | None = None
    ) -> OrganizationRecord:
        with session_scope(self.url) as session:
            return organizations.ensure(session, slug, name=name, namespace_uid=namespace_uid)

    def organization(self, slug: str) -> OrganizationRecord | None:
        with session_scope(self.url) as session:
            return organizations.get(session, slug)

    def register_account(
        self,
        organization_id: uuid.UUID,
        *,
        account_id: str,
        role_arn: str,
        external_id: str | None,
        regions: Sequence[str],
        account_name: str | None = None,
        scan_enabled: bool = True,
        auto_cleanup_enabled: bool = False,
    ) -> AccountRecord:
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
            )

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
        """Store findings of ``scan``'s account, ``BATCH_SIZE`` rows per statement."""
        inserted = updated = 0
        seen = seen_at or domain.utcnow()
        with session_scope(self.url) as session:
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

    def latest_scan(self, account_uuid: uuid.UUID) -> ScanRecord | None:
        with session_scope(self.url) as session:
            return scans.latest(session, account_uuid)

    def scans_since(self, organization_id: uuid.UUID, since: datetime) -> int:
        with session_scope(self.url) as session:
            return scans.count_since(session, organization_id, since)

    def findings(self, selection: findings.FindingFilter) -> list[WasteItemRecord]:
        with session_scope(self.url) as session:
            return findings.list_findings(session, selection)

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
