"""Scan runs in ``scan_results``: opened when a scan starts, closed with its totals; via ``Store``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloudsweep import domain
from cloudsweep.store import partitions
from cloudsweep.store.models import AwsAccount, ScanResult, WasteItem
from cloudsweep.store.records import ScanRecord


def _record(row: ScanResult) -> ScanRecord:
    return ScanRecord(
        id=row.id,
        aws_account_id=row.aws_account_id,
        scan_type=row.scan_type,
        status=row.status,
        started_at=row.started_at,
        regions=tuple(row.regions_scanned or ()),
        completed_at=row.completed_at,
        total_waste_items_found=row.total_waste_items_found,
        total_monthly_waste_cost=row.total_monthly_waste_cost,
        total_annual_waste_cost=row.total_annual_waste_cost,
        total_resources_scanned=row.total_resources_scanned,
        duration_seconds=row.scan_duration_seconds,
        error_message=row.error_message,
        metadata=dict(row.scan_metadata or {}),
    )


def open_scan(
    session: Session,
    account_uuid: uuid.UUID,
    *,
    scan_type: domain.ScanType,
    regions: Sequence[str],
    started_at: datetime,
    created_by: uuid.UUID | None = None,
) -> ScanRecord:
    # The observations of this scan go into started_at's month: make sure its partition exists.
    partitions.ensure(session, started_at)
    row = ScanResult(
        aws_account_id=account_uuid,
        scan_type=scan_type.value,
        status=domain.ScanStatus.RUNNING.value,
        regions_scanned=list(regions),
        started_at=started_at,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return _record(row)


def close_scan(
    session: Session,
    scan_id: uuid.UUID,
    *,
    status: domain.ScanStatus,
    completed_at: datetime,
    resources_scanned: int,
    error_message: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> ScanRecord:
    """Close the run; its waste totals are computed from the items it saw, not trusted from callers."""
    row = session.get(ScanResult, scan_id, with_for_update=True)
    if row is None:
        raise LookupError(f"scan {scan_id} does not exist")
    if row.status != domain.ScanStatus.RUNNING.value:
        raise ValueError(f"scan {scan_id} is already {row.status}")
    count, monthly, annual = session.execute(
        sa.select(
            sa.func.count(WasteItem.id),
            sa.func.coalesce(sa.func.sum(WasteItem.monthly_cost), 0),
            sa.func.coalesce(sa.func.sum(WasteItem.annual_cost), 0),
        ).where(WasteItem.scan_result_id == scan_id)
    ).one()
    row.status = status.value
    row.completed_at = completed_at
    row.total_waste_items_found = int(count)
    row.total_monthly_waste_cost = Decimal(monthly)
    row.total_annual_waste_cost = Decimal(annual)
    row.total_resources_scanned = resources_scanned
    row.scan_duration_seconds = Decimal(
        str(round((completed_at - row.started_at).total_seconds(), 3))
    )
    row.error_message = error_message
    row.scan_metadata = metadata or {}
    session.execute(
        sa.update(AwsAccount)
        .where(AwsAccount.id == row.aws_account_id)
        .values(last_scan_at=completed_at, updated_at=sa.func.now())
    )
    session.flush()
    return _record(row)


def get(session: Session, scan_id: uuid.UUID) -> ScanRecord | None:
    row = session.get(ScanResult, scan_id)
    return _record(row) if row else None


def latest(session: Session, account_uuid: uuid.UUID) -> ScanRecord | None:
    row = session.execute(
        sa.select(ScanResult)
        .where(ScanResult.aws_account_id == account_uuid)
        .order_by(ScanResult.started_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    return _record(row) if row else None


def latest_changed(session: Session, since: datetime | None) -> dict[uuid.UUID, ScanRecord]:
    """The latest scan (by start) of every account with a scan started or finished since
    ``since`` (of every account when None): one query for the whole installation."""
    query = sa.select(ScanResult).order_by(ScanResult.started_at)
    if since is not None:
        query = query.where(
            sa.or_(ScanResult.started_at >= since, ScanResult.completed_at >= since)
        )
    else:  # every account's latest only, not the whole history
        newest = (
            sa.select(ScanResult.aws_account_id, sa.func.max(ScanResult.started_at).label("at"))
            .group_by(ScanResult.aws_account_id)
            .subquery()
        )
        query = query.join(
            newest,
            sa.and_(
                newest.c.aws_account_id == ScanResult.aws_account_id,
                newest.c.at == ScanResult.started_at,
            ),
        )
    latest: dict[uuid.UUID, ScanRecord] = {}
    for row in session.execute(query).scalars():
        latest[row.aws_account_id] = _record(row)  # in start order: the last one stays
    return latest


def count_since(session: Session, organization_id: uuid.UUID, since: datetime) -> int:
    """Scans of an organization's accounts started since ``since`` (for monthly_scan_limit)."""
    return int(
        session.execute(
            sa.select(sa.func.count(ScanResult.id))
            .join(AwsAccount, AwsAccount.id == ScanResult.aws_account_id)
            .where(AwsAccount.organization_id == organization_id, ScanResult.started_at >= since)
        ).scalar_one()
    )
