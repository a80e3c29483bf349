"""AWS accounts registered by a tenant; used via ``Store``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from cloudsweep import domain
from cloudsweep.store.models import AwsAccount
from cloudsweep.store.records import AccountRecord


def _record(row: AwsAccount) -> AccountRecord:
    return AccountRecord(
        id=row.id,
        organization_id=row.organization_id,
        account_id=row.account_id,
        account_name=row.account_name,
        role_arn=row.role_arn,
        external_id=row.external_id,
        regions=tuple(row.regions),
        scan_enabled=row.scan_enabled,
        auto_cleanup_enabled=row.auto_cleanup_enabled,
        connection_status=row.connection_status,
        last_scan_at=row.last_scan_at,
    )


def register(
    session: Session,
    organization_id: uuid.UUID,
    *,
    account_id: str,
    role_arn: str | None,
    external_id: str | None,
    regions: Sequence[str],
    account_name: str | None = None,
    scan_enabled: bool = True,
    auto_cleanup_enabled: bool = False,
) -> AccountRecord:
    """Create or update the account ``account_id`` of an organization; returns its stored state."""
    domain.validate_account_id(account_id)
    if role_arn is not None:
        domain.validate_role_for_account(role_arn, account_id)
    if not regions:
        raise domain.InvalidInput(f"account {account_id}: name at least one region to scan")
    values = {
        "organization_id": organization_id,
        "account_id": account_id,
        "role_arn": role_arn,
        "external_id": external_id,
        "regions": list(dict.fromkeys(regions)),
        "account_name": account_name,
        "scan_enabled": scan_enabled,
        "auto_cleanup_enabled": auto_cleanup_enabled,
    }
    statement = insert(AwsAccount).values(**values)
    upsert = statement.on_conflict_do_update(
        index_elements=["organization_id", "account_id"],
        set_={
            **{
                key: statement.excluded[key]
                for key in values
                if key not in ("organization_id", "account_id")
            },
            "deleted_at": None,
            "updated_at": sa.func.now(),
        },
    ).returning(AwsAccount)
    row = session.execute(upsert).scalar_one()
    return _record(row)


def get(session: Session, organization_id: uuid.UUID, account_id: str) -> AccountRecord | None:
    row = session.execute(
        sa.select(AwsAccount).where(
            AwsAccount.organization_id == organization_id, AwsAccount.account_id == account_id
        )
    ).scalar_one_or_none()
    return _record(row) if row else None


def list_for_organization(session: Session, organization_id: uuid.UUID) -> list[AccountRecord]:
    rows = session.execute(
        sa.select(AwsAccount)
        .where(AwsAccount.organization_id == organization_id, AwsAccount.deleted_at.is_(None))
        .order_by(AwsAccount.account_id)
    ).scalars()
    return [_record(row) for row in rows]


def set_connection(
    session: Session,
    account_uuid: uuid.UUID,
    status: domain.ConnectionStatus,
    error: str | None = None,
) -> None:
    session.execute(
        sa.update(AwsAccount)
        .where(AwsAccount.id == account_uuid)
        .values(connection_status=status.value, connection_error=error, updated_at=sa.func.now())
    )


def mark_deleted(session: Session, account_uuid: uuid.UUID, when: datetime) -> None:
    """Stop scanning the account but keep its history (the AwsAccount object was deleted)."""
    session.execute(
        sa.update(AwsAccount)
        .where(AwsAccount.id == account_uuid)
        .values(deleted_at=when, scan_enabled=False, updated_at=sa.func.now())
    )
