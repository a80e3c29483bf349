"""AWS accounts registered by a tenant; used via ``Store``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from cloudsweep import domain
from cloudsweep.store.models import AccountClaim, AwsAccount
from cloudsweep.store.records import AccountRecord


class AccountClaimed(domain.InvalidInput):
    """Another organization holds the AWS account; nothing was written for this one.

    The message names neither the holder nor anything of its data: tenants learn nothing about
    each other from a refusal.
    """

    def __init__(self, account_id: str, holder_id: uuid.UUID) -> None:
        self.account_id = account_id
        self.holder_id = holder_id
        super().__init__(
            f"AWS account {account_id} is registered by another organization; an account belongs "
            "to one organization (namespace) only. Ask a cluster administrator: the holder must "
            "delete its AwsAccount first (for a single-team install they may instead set "
            "CLOUDSWEEP_ALLOW_SHARED_ACCOUNTS=true)"
        )


def claim(
    session: Session, organization_id: uuid.UUID, account_id: str, *, allow_shared: bool
) -> None:
    """Make ``organization_id`` the holder of ``account_id`` unless another one holds it.

    Atomic across processes: the insert conflicts on the claim's primary key, and a concurrent
    claimer's insert waits for ours to commit, then sees it. Raises ``AccountClaimed`` when
    another organization holds it and sharing is not allowed (the caller's transaction is then
    rolled back: nothing is written for the refused organization).
    """
    session.execute(
        insert(AccountClaim)
        .values(account_id=account_id, organization_id=organization_id)
        .on_conflict_do_nothing(index_elements=["account_id"])
    )
    holder = session.execute(
        sa.select(AccountClaim.organization_id).where(AccountClaim.account_id == account_id)
    ).scalar_one()
    if holder != organization_id and not allow_shared:
        raise AccountClaimed(account_id, holder)


def holder(session: Session, account_id: str) -> uuid.UUID | None:
    """The organization holding ``account_id``, or None when it is free."""
    return session.execute(
        sa.select(AccountClaim.organization_id).where(AccountClaim.account_id == account_id)
    ).scalar_one_or_none()


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
        deleted=row.deleted_at is not None,
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
    allow_shared: bool = False,
) -> AccountRecord:
    """Create or update the account ``account_id`` of an organization; returns its stored state.

    The organization must hold the account's claim (taken here when it is free); an account
    another organization holds raises ``AccountClaimed`` unless ``allow_shared``.
    """
    domain.validate_account_id(account_id)
    if role_arn is not None:
        domain.validate_role_for_account(role_arn, account_id)
    if not regions:
        raise domain.InvalidInput(f"account {account_id}: name at least one region to scan")
    claim(session, organization_id, account_id, allow_shared=allow_shared)
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
    """Stop scanning the account but keep its history (the AwsAccount object was deleted), and
    release the organization's claim on it: another organization may register it from now on
    (it sees none of this organization's history, which stays keyed to this registration)."""
    row = session.execute(
        sa.update(AwsAccount)
        .where(AwsAccount.id == account_uuid)
        .values(deleted_at=when, scan_enabled=False, updated_at=sa.func.now())
        .returning(AwsAccount.organization_id, AwsAccount.account_id)
    ).one_or_none()
    if row is not None:
        session.execute(
            sa.delete(AccountClaim).where(
                AccountClaim.account_id == row.account_id,
                AccountClaim.organization_id == row.organization_id,
            )
        )


def is_live(session: Session, account_uuid: uuid.UUID, *, lock: bool = False) -> bool:
    """Is the registration still live (its AwsAccount not deleted)?

    ``lock``: take a share lock on the row for the rest of the transaction, so a deletion
    (``mark_deleted`` updates the row) waits for the caller's writes, or the caller sees it.
    """
    query = sa.select(AwsAccount.deleted_at).where(AwsAccount.id == account_uuid)
    if lock:
        query = query.with_for_update(read=True)
    found = session.execute(query).one_or_none()
    return found is not None and found.deleted_at is None
