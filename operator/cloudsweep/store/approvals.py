"""Admission records of CleanupApproval objects; used via ``Store`` (``record_admission``,
``admission``) by the approval handlers (``cloudsweep.handlers.cleanupapprovals``).

A record says what the API server sent the operator's validating webhook when it admitted one
CleanupApproval: the object's UID (assigned by the API server before validating admission), its
spec, the policy's spec at that moment and the requesting user. The first record of a UID wins:
the API server's own call always comes before anybody could learn the UID, so a later forged
call for the same object cannot replace it (docs/approvals.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from cloudsweep.store.models import ApprovalAdmission


@dataclass(frozen=True, slots=True)
class AdmissionRecord:
    object_uid: str
    namespace: str
    name: str
    spec_hash: str
    policy_name: str
    policy_hash: str
    username: str
    groups: tuple[str, ...]
    object_created_at: datetime | None
    admitted_at: datetime


def record_admission(session: Session, record: AdmissionRecord) -> bool:
    """Keep the record unless one exists for the UID already; True when this one was kept."""
    result = session.execute(
        insert(ApprovalAdmission)
        .values(
            object_uid=record.object_uid,
            namespace=record.namespace,
            name=record.name,
            spec_hash=record.spec_hash,
            policy_name=record.policy_name,
            policy_hash=record.policy_hash,
            username=record.username,
            user_groups=list(record.groups),
            object_created_at=record.object_created_at,
            admitted_at=record.admitted_at,
        )
        .on_conflict_do_nothing(index_elements=["object_uid"])
        .returning(ApprovalAdmission.id)
    )
    return result.scalar_one_or_none() is not None


def admission(session: Session, object_uid: str) -> AdmissionRecord | None:
    row = session.execute(
        sa.select(ApprovalAdmission).where(ApprovalAdmission.object_uid == object_uid)
    ).scalar_one_or_none()
    if row is None:
        return None
    groups: Sequence[str] = row.user_groups or []
    return AdmissionRecord(
        object_uid=row.object_uid,
        namespace=row.namespace,
        name=row.name,
        spec_hash=row.spec_hash,
        policy_name=row.policy_name,
        policy_hash=row.policy_hash,
        username=row.username,
        groups=tuple(str(g) for g in groups),
        object_created_at=row.object_created_at,
        admitted_at=row.admitted_at,
    )
