"""The cleanup ledger: candidates, approvals, claims, intents and outcomes; used via ``Store``.

The database, not the operator framework, is the record of what was done. Every transition of a
waste item's ``cleanup_status`` happens under a row lock, and every real attempt is a
``cleanup_actions`` row inserted (the intent) and committed before any AWS call, then finished once.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.orm import Session

from cloudsweep import domain
from cloudsweep.store.models import (
    AwsAccount,
    CleanupAction,
    CleanupPolicy,
    CleanupRun,
    Organization,
    User,
    WasteItem,
)

ACTIONABLE = (domain.CleanupStatus.PENDING.value, domain.CleanupStatus.APPROVED.value)


@dataclass(frozen=True, slots=True)
class Approval:
    """A human's approval of one item at one cost and state; it lapses when either changes."""

    approved_by: uuid.UUID
    approver_email: str
    approved_at: datetime
    expires_at: datetime
    monthly_cost: Decimal
    fingerprint: str
    # A CleanupApproval binds itself to one policy's spec (``policies.spec_hash``); None for the
    # CLI's approvals, which hold under any policy.
    policy_name: str | None = None
    policy_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored finding that a policy may act on, with what gates it."""

    id: uuid.UUID
    organization_id: uuid.UUID
    account_uuid: uuid.UUID
    account_id: str
    role_arn: str | None
    external_id: str | None
    region: str
    resource_type: str
    resource_id: str
    resource_arn: str | None
    availability_zone: str | None
    monthly_cost: Decimal
    confidence_score: int
    risk_level: str
    safety_checks_passed: bool
    cleanup_status: str
    resource_details: Mapping[str, Any]
    discovered_at: datetime
    account_auto_cleanup: bool
    organization_auto_cleanup: bool
    approval: Approval | None
    fingerprint: str


@dataclass(frozen=True, slots=True)
class ActionRecord:
    id: uuid.UUID
    waste_item_id: uuid.UUID
    run_id: uuid.UUID | None
    organization_slug: str
    account_id: str
    region: str
    resource_type: str
    resource_id: str
    action: str
    action_type: str
    status: str
    dry_run: bool
    success: bool
    execution_method: str
    executed_by: str | None
    policy_name: str | None
    decision_reason: str | None
    error_message: str | None
    aws_response: Mapping[str, Any] | None
    rollback_possible: bool
    rollback_data: Mapping[str, Any] | None
    rollback_executed: bool
    rollback_of: uuid.UUID | None
    estimated_monthly_savings: Decimal | None
    actual_monthly_savings: Decimal | None
    executed_at: datetime
    completed_at: datetime | None


def fingerprint(
    resource_arn: str | None,
    risk_level: str,
    safety_checks_passed: bool,
    details: Mapping[str, Any],
) -> str:
    """What an approval is for: the resource's tags, safety checks and risk, not its volatile text.

    Evidence strings ("95 days ago") change daily and must not void approvals; tags (a protection
    tag added), safety checks (now referenced) and risk do.
    """
    stable = {
        "arn": resource_arn,
        "risk": risk_level,
        "safe": safety_checks_passed,
        "tags": dict(sorted((details.get("tags") or {}).items())),
        "checks": sorted(
            (str(c.get("name")), bool(c.get("passed"))) for c in details.get("safety_checks") or []
        ),
    }
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _approval(metadata: Mapping[str, Any] | None) -> Approval | None:
    raw = (metadata or {}).get("approval")
    if not raw:
        return None
    return Approval(
        approved_by=uuid.UUID(raw["approved_by"]),
        approver_email=raw["approver_email"],
        approved_at=datetime.fromisoformat(raw["approved_at"]),
        expires_at=datetime.fromisoformat(raw["expires_at"]),
        monthly_cost=Decimal(raw["monthly_cost"]),
        fingerprint=raw["fingerprint"],
        policy_name=raw.get("policy_name"),
        policy_hash=raw.get("policy_hash"),
    )


# What ends an item's approvals: a rejection, a lapse (the cost rose, the resource or the policy
# changed, it expired), a refusal at execution, a rollback. An approval counts only if it was
# given after the last of these, so replaying an older one (a policy re-applied by GitOps, an
# approval object seen again after a restart) never brings it back.
_ENDINGS = ("rejected", "lapsed_approval", "refused", "rolled_back", "withdrawn")


def decisions_ended_at(metadata: Mapping[str, Any] | None) -> datetime | None:
    """When the item's last approval ended or it was rejected (None: never)."""
    times = []
    for key in _ENDINGS:
        entry = (metadata or {}).get(key)
        if isinstance(entry, Mapping) and entry.get("at"):
            try:
                times.append(datetime.fromisoformat(str(entry["at"])))
            except ValueError:
                continue
    return max(times) if times else None


def _candidate_query(organization_id: uuid.UUID) -> Any:
    return (
        sa.select(WasteItem, AwsAccount, Organization.auto_cleanup_enabled)
        .join(AwsAccount, AwsAccount.id == WasteItem.aws_account_id)
        .join(Organization, Organization.id == AwsAccount.organization_id)
        .where(
            Organization.id == organization_id,
            AwsAccount.deleted_at.is_(None),
            WasteItem.gone_at.is_(None),
        )
    )


def _to_candidate(item: WasteItem, account: AwsAccount, org_auto: bool) -> Candidate:
    return Candidate(
        id=item.id,
        organization_id=account.organization_id,
        account_uuid=account.id,
        account_id=account.account_id,
        role_arn=account.role_arn,
        external_id=account.external_id,
        region=item.region,
        resource_type=item.resource_type,
        resource_id=item.resource_id,
        resource_arn=item.resource_arn,
        availability_zone=item.availability_zone,
        monthly_cost=item.monthly_cost,
        confidence_score=item.confidence_score,
        risk_level=item.risk_level,
        safety_checks_passed=item.safety_checks_passed,
        cleanup_status=item.cleanup_status,
        resource_details=dict(item.resource_details),
        discovered_at=item.discovered_at,
        account_auto_cleanup=account.auto_cleanup_enabled,
        organization_auto_cleanup=org_auto,
        approval=_approval(item.cleanup_metadata),
        fingerprint=fingerprint(
            item.resource_arn, item.risk_level, item.safety_checks_passed, item.resource_details
        ),
    )


def iter_candidates(
    session: Session,
    organization_id: uuid.UUID,
    *,
    resource_type: str,
    account_ids: Sequence[str] = (),
    statuses: Sequence[str] = ACTIONABLE,
    batch: int = 1_000,
) -> Iterator[Candidate]:
    """Open findings of one type that a policy could act on, streamed (100k items stay bounded).

    In no particular order: ``policies.evaluate`` orders the plan itself (most expensive first),
    so an ORDER BY here only made the database sort the rows a second time.
    """
    query = _candidate_query(organization_id).where(
        WasteItem.resource_type == resource_type, WasteItem.cleanup_status.in_(list(statuses))
    )
    if account_ids:
        query = query.where(AwsAccount.account_id.in_(list(account_ids)))
    for item, account, org_auto in session.execute(query.execution_options(yield_per=batch)):
        yield _to_candidate(item, account, org_auto)


def candidate(session: Session, item_id: uuid.UUID) -> Candidate | None:
    row = session.execute(
        sa.select(WasteItem, AwsAccount, Organization.auto_cleanup_enabled)
        .join(AwsAccount, AwsAccount.id == WasteItem.aws_account_id)
        .join(Organization, Organization.id == AwsAccount.organization_id)
        .where(WasteItem.id == item_id)
    ).one_or_none()
    return _to_candidate(*row) if row else None


def ensure_user(session: Session, organization_id: uuid.UUID, email: str) -> uuid.UUID:
    """The user for an approver's e-mail in an organization, created on first use."""
    # An e-mail (the CLI's --as) or a Kubernetes user name stamped by the admission webhook.
    email = email.strip().lower()
    if not email or len(email) > 255:
        raise domain.InvalidInput(f"{email!r} is not an identity; pass --as you@example.com")
    session.execute(
        insert(User)
        .values(organization_id=organization_id, email=email, role=domain.UserRole.MEMBER.value)
        .on_conflict_do_nothing(index_elements=["organization_id", "email"])
    )
    return session.execute(
        sa.select(User.id).where(User.organization_id == organization_id, User.email == email)
    ).scalar_one()


def decide_items(
    session: Session,
    organization_id: uuid.UUID,
    item_ids: Sequence[uuid.UUID],
    *,
    approve: bool,
    approver_email: str,
    now: datetime,
    ttl: timedelta,
    approved_cost: Decimal | None = None,
    expires_at: datetime | None = None,
    decided_at: datetime | None = None,
    policy_name: str | None = None,
    policy_hash: str | None = None,
) -> list[uuid.UUID]:
    """Approve or reject items of the organization that wait for a decision; returns those changed.

    ``decided_at`` is when the person decided (default ``now``; a CleanupApproval's admission
    time). An approval holds up to ``approved_cost`` a month (default: the item's cost now) until
    ``expires_at``, never later than ``decided_at + ttl`` (``ttl`` at most
    ``domain.MAX_APPROVAL_DAYS``): a far-future expiry is cut back, and an approval applied again
    keeps its first deadline. An approval older than the item's last rejection, lapse, refusal
    or rollback changes nothing: only a newer decision re-opens the item.

    Items of another organization, gone, being cleaned or already cleaned are left alone.
    """
    decided_at = decided_at or now
    ttl = min(ttl, timedelta(days=domain.MAX_APPROVAL_DAYS))
    deadline = decided_at + ttl
    expires = min(expires_at, deadline) if expires_at is not None else deadline
    user_id = ensure_user(session, organization_id, approver_email)
    rows = session.execute(
        sa.select(WasteItem)
        .join(AwsAccount, AwsAccount.id == WasteItem.aws_account_id)
        .where(
            WasteItem.id.in_(list(item_ids)),
            AwsAccount.organization_id == organization_id,
            WasteItem.gone_at.is_(None),
            WasteItem.cleanup_status.in_(
                [
                    *ACTIONABLE,
                    domain.CleanupStatus.FAILED.value,
                    domain.CleanupStatus.REJECTED.value,
                ]
            ),
        )
        # Only the items: the account row is joined to filter by organization, and locking it
        # too (FOR UPDATE) deadlocked with a scan inserting findings (its FOREIGN KEY check
        # holds FOR KEY SHARE on that row while it waits for these items).
        .with_for_update(of=WasteItem)
    ).scalars()
    changed = []
    for item in rows:
        metadata = dict(item.cleanup_metadata or {})
        ended = decisions_ended_at(metadata)
        if ended is not None and decided_at <= ended:
            continue  # decided before the item was last rejected (or its approval ended)
        if approve:
            current = metadata.get("approval") or {}
            if (
                current.get("approved_at") == decided_at.isoformat()
                and current.get("approver_email") == approver_email.strip().lower()
            ):
                continue  # this very approval, applied again: nothing new, no fresh deadline
            item.cleanup_status = domain.CleanupStatus.APPROVED.value
            item.cleanup_approved_by = user_id
            item.cleanup_approved_at = decided_at
            metadata["approval"] = {
                "approved_by": str(user_id),
                "approver_email": approver_email.strip().lower(),
                "approved_at": decided_at.isoformat(),
                "expires_at": expires.isoformat(),
                "monthly_cost": str(
                    approved_cost if approved_cost is not None else item.monthly_cost
                ),
                "fingerprint": fingerprint(
                    item.resource_arn,
                    item.risk_level,
                    item.safety_checks_passed,
                    item.resource_details,
                ),
                **(
                    {"policy_name": policy_name, "policy_hash": policy_hash}
                    if policy_hash is not None
                    else {}
                ),
            }
        else:
            item.cleanup_status = domain.CleanupStatus.REJECTED.value
            item.cleanup_approved_by = None
            item.cleanup_approved_at = None
            metadata.pop("approval", None)
            metadata["rejected"] = {
                "by": approver_email.strip().lower(),
                "at": decided_at.isoformat(),
            }
        item.cleanup_metadata = metadata
        item.updated_at = now
        changed.append(item.id)
    return changed


def withdraw_approval(
    session: Session,
    organization_id: uuid.UUID,
    item_ids: Sequence[uuid.UUID],
    *,
    approved_at: datetime,
    approver: str,
    now: datetime,
) -> list[uuid.UUID]:
    """Take back the approval given at ``approved_at`` by ``approver`` (its object was deleted)
    from the items that still carry exactly it; a later or another person's decision stays."""
    rows = session.execute(
        sa.select(WasteItem)
        .join(AwsAccount, AwsAccount.id == WasteItem.aws_account_id)
        .where(
            WasteItem.id.in_(list(item_ids)),
            AwsAccount.organization_id == organization_id,
            WasteItem.cleanup_status == domain.CleanupStatus.APPROVED.value,
        )
        # Only the items: the account row is joined to filter by organization, and locking it
        # too (FOR UPDATE) deadlocked with a scan inserting findings (its FOREIGN KEY check
        # holds FOR KEY SHARE on that row while it waits for these items).
        .with_for_update(of=WasteItem)
    ).scalars()
    withdrawn = []
    for item in rows:
        metadata = dict(item.cleanup_metadata or {})
        current = metadata.get("approval") or {}
        if (current.get("approved_at"), current.get("approver_email")) != (
            approved_at.isoformat(),
            approver.strip().lower(),
        ):
            continue
        metadata.pop("approval", None)
        metadata["withdrawn"] = {"by": approver.strip().lower(), "at": now.isoformat()}
        item.cleanup_metadata = metadata
        item.cleanup_status = domain.CleanupStatus.PENDING.value
        item.cleanup_approved_by = None
        item.cleanup_approved_at = None
        item.updated_at = now
        withdrawn.append(item.id)
    return withdrawn


def lapse_approval(session: Session, item_id: uuid.UUID, reason: str, now: datetime) -> None:
    """An approval no longer matches the item (cost rose, state changed, expired): drop it."""
    item = session.get(WasteItem, item_id, with_for_update=True)
    if item is None or item.cleanup_status != domain.CleanupStatus.APPROVED.value:
        return
    metadata = dict(item.cleanup_metadata or {})
    lapsed = metadata.pop("approval", None)
    metadata["lapsed_approval"] = {**(lapsed or {}), "reason": reason, "at": now.isoformat()}
    item.cleanup_metadata = metadata
    item.cleanup_status = domain.CleanupStatus.PENDING.value
    item.cleanup_approved_by = None
    item.cleanup_approved_at = None


# --- runs ------------------------------------------------------------------------------------


def open_run(
    session: Session,
    organization_id: uuid.UUID,
    *,
    dry_run: bool,
    method: domain.ExecutionMethod,
    executed_by: uuid.UUID | None,
    policies: list[dict[str, Any]],
    plan: dict[str, Any],
    now: datetime,
) -> uuid.UUID:
    run = CleanupRun(
        organization_id=organization_id,
        dry_run=dry_run,
        execution_method=method.value,
        executed_by=executed_by,
        policies=policies,
        plan=plan,
        started_at=now,
    )
    session.add(run)
    session.flush()
    return run.id


def close_run(
    session: Session,
    run_id: uuid.UUID,
    *,
    status: domain.RunStatus,
    summary: dict[str, Any],
    now: datetime,
) -> None:
    session.execute(
        sa.update(CleanupRun)
        .where(CleanupRun.id == run_id)
        .values(status=status.value, summary=summary, completed_at=now)
    )


# --- attempts --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Intent:
    """What an attempt is about to do; everything the audit trail records up front."""

    item_id: uuid.UUID
    run_id: uuid.UUID | None
    action: str
    action_type: domain.ActionType
    description: str
    method: domain.ExecutionMethod
    executed_by: uuid.UUID | None
    policy_name: str | None
    decision_reason: str
    rollback_possible: bool
    estimated_monthly_savings: Decimal | None
    dry_run: bool = False
    rollback_of: uuid.UUID | None = None


def _action_row(intent: Intent, status: domain.AttemptStatus, now: datetime) -> CleanupAction:
    return CleanupAction(
        waste_item_id=intent.item_id,
        run_id=intent.run_id,
        action=intent.action,
        action_type=intent.action_type.value,
        action_description=intent.description,
        dry_run=intent.dry_run,
        executed_by=intent.executed_by,
        execution_method=intent.method.value,
        status=status.value,
        success=False,
        policy_name=intent.policy_name,
        decision_reason=intent.decision_reason,
        rollback_possible=intent.rollback_possible,
        estimated_monthly_savings=intent.estimated_monthly_savings,
        rollback_of=intent.rollback_of,
        executed_at=now,
    )


def claim(
    session: Session, intent: Intent, *, allowed: Sequence[str], now: datetime
) -> uuid.UUID | None:
    """Take the item for this attempt and record the intent, or None if it is not ours to take.

    ``FOR UPDATE SKIP LOCKED``: a second worker skips an item the first is claiming, and sees it
    ``cleaning`` afterwards. The partial unique index refuses a second live attempt regardless.
    """
    item = session.execute(
        sa.select(WasteItem)
        .where(WasteItem.id == intent.item_id, WasteItem.cleanup_status.in_(list(allowed)))
        .with_for_update(skip_locked=True)
    ).scalar_one_or_none()
    if item is None or item.gone_at is not None:
        return None
    live = session.execute(
        sa.select(CleanupAction.id).where(
            CleanupAction.waste_item_id == intent.item_id,
            ~CleanupAction.dry_run,
            CleanupAction.action_type != domain.ActionType.ROLLBACK.value,
            CleanupAction.status.in_(["started", "succeeded"]),
            ~CleanupAction.rollback_executed,
        )
    ).first()
    if live is not None:
        return None
    row = _action_row(intent, domain.AttemptStatus.STARTED, now)
    session.add(row)
    item.cleanup_status = domain.CleanupStatus.CLEANING.value
    item.cleanup_error = None
    item.updated_at = now
    session.flush()
    return row.id


@dataclass(frozen=True, slots=True)
class RollbackStart:
    """The rollback attempt to carry out: a new intent, or an interrupted one to resume."""

    id: uuid.UUID
    resumed: bool


def start_rollback(
    session: Session, intent: Intent, now: datetime, *, quiet_since: datetime | None = None
) -> RollbackStart | None:
    """Record the intent to undo ``intent.rollback_of``, or take over an interrupted one.

    None if the rollback is done, or under way: a ``started`` rollback whose last sign of life is
    at or after ``quiet_since`` (its worker may still be in its AWS call). A ``started`` rollback
    silent since before ``quiet_since`` was interrupted: it is resumed under its own ID, which its
    earlier work in AWS carries (rollback steps find it by that tag), so nothing is made twice.
    The caller holds the item's lock, so no other worker resumes it at the same time.
    """
    original = session.get(CleanupAction, intent.rollback_of, with_for_update=True)
    if original is None or original.rollback_executed:
        return None
    live = session.execute(
        sa.select(CleanupAction)
        .where(
            CleanupAction.rollback_of == intent.rollback_of,
            ~CleanupAction.dry_run,
            CleanupAction.status.in_(["started", "succeeded"]),
        )
        .with_for_update()
    ).scalar_one_or_none()
    if live is not None:
        last_sign = live.heartbeat_at or live.executed_at
        if (
            live.status == domain.AttemptStatus.STARTED.value
            and quiet_since is not None
            and last_sign < quiet_since
        ):
            live.heartbeat_at = now
            return RollbackStart(live.id, resumed=True)
        return None
    row = _action_row(intent, domain.AttemptStatus.STARTED, now)
    session.add(row)
    session.flush()
    return RollbackStart(row.id, resumed=False)


def checkpoint(session: Session, action_id: uuid.UUID, data: Mapping[str, Any]) -> None:
    """Merge progress into the attempt's rollback data (a snapshot ID the moment it exists)."""
    session.execute(
        sa.update(CleanupAction)
        .where(CleanupAction.id == action_id)
        .values(
            rollback_data=sa.func.coalesce(CleanupAction.rollback_data, sa.text("'{}'::jsonb")).op(
                "||"
            )(
                sa.bindparam(
                    "progress", json.loads(json.dumps(dict(data), default=str)), type_=JSONB
                )
            )
        )
    )


def finish(
    session: Session,
    action_id: uuid.UUID,
    *,
    status: domain.AttemptStatus,
    now: datetime,
    error: str | None = None,
    response: Mapping[str, Any] | None = None,
    item_status: domain.CleanupStatus | None = None,
) -> bool:
    """Record the one outcome of a started attempt, and move its item on.

    False when the attempt already has an outcome (another worker recorded it): nothing changes.
    The undo data is not written here: ``checkpoint`` records it as it is made, so an outcome
    never puts back an older value of it.
    """
    action = session.get(CleanupAction, action_id, with_for_update=True)
    if action is None:
        raise LookupError(f"cleanup action {action_id} does not exist")
    if action.status != domain.AttemptStatus.STARTED.value:
        # Another worker reconciled it (we lost our lock meanwhile): its outcome stands.
        return False
    action.status = status.value
    action.success = status is domain.AttemptStatus.SUCCEEDED
    action.error_message = error
    action.completed_at = now
    if response is not None:
        action.aws_response = json.loads(json.dumps(dict(response), default=str))
    if action.action_type == domain.ActionType.ROLLBACK.value:
        if status is domain.AttemptStatus.SUCCEEDED and action.rollback_of is not None:
            original = session.get(CleanupAction, action.rollback_of, with_for_update=True)
            if original is not None:
                original.rollback_executed = True
                original.rollback_executed_at = now
                # The resource is back (or a copy of it, under a new ID): its finding waits again.
                item = session.get(WasteItem, original.waste_item_id, with_for_update=True)
                if item is not None and item.cleanup_status == domain.CleanupStatus.CLEANED.value:
                    item.cleanup_status = domain.CleanupStatus.PENDING.value
                    item.cleanup_executed_at = None
                    metadata = dict(item.cleanup_metadata or {})
                    metadata.pop("approval", None)
                    metadata["rolled_back"] = {"action_id": str(original.id), "at": now.isoformat()}
                    item.cleanup_metadata = metadata
        return True
    item = session.get(WasteItem, action.waste_item_id, with_for_update=True)
    if item is not None and item_status is not None:
        item.cleanup_status = item_status.value
        item.updated_at = now
        if item_status is domain.CleanupStatus.CLEANED:
            item.cleanup_executed_at = now
            item.cleanup_error = None
        elif item_status is domain.CleanupStatus.FAILED:
            item.cleanup_error = error
        elif item_status is domain.CleanupStatus.PENDING:
            # Refused: the approval, if any, was for a resource that is not the one out there now.
            metadata = dict(item.cleanup_metadata or {})
            if metadata.pop("approval", None) is not None:
                metadata["refused"] = {"reason": error, "at": now.isoformat()}
            item.cleanup_metadata = metadata
            item.cleanup_approved_by = None
            item.cleanup_approved_at = None
            item.cleanup_error = error
    return True


def heartbeat(session: Session, action_id: uuid.UUID, now: datetime) -> None:
    session.execute(
        sa.update(CleanupAction)
        .where(
            CleanupAction.id == action_id,
            CleanupAction.status == domain.AttemptStatus.STARTED.value,
        )
        .values(heartbeat_at=now)
    )


def record_dry_run(
    session: Session,
    intent: Intent,
    *,
    would_succeed: bool,
    message: str,
    response: Mapping[str, Any],
    now: datetime,
) -> uuid.UUID:
    row = _action_row(
        intent,
        domain.AttemptStatus.SUCCEEDED if would_succeed else domain.AttemptStatus.FAILED,
        now,
    )
    row.success = would_succeed
    row.error_message = None if would_succeed else message
    row.aws_response = json.loads(json.dumps(dict(response), default=str))
    row.completed_at = now
    session.add(row)
    session.flush()
    return row.id


def interrupted(
    session: Session, organization_id: uuid.UUID, *, quiet_since: datetime | None = None
) -> list[uuid.UUID]:
    """Real cleanup attempts of the organization with an intent but no outcome, silent since
    ``quiet_since`` (rollbacks excluded)."""
    last_sign = sa.func.coalesce(CleanupAction.heartbeat_at, CleanupAction.executed_at)
    return list(
        session.execute(
            sa.select(CleanupAction.id)
            .join(WasteItem, WasteItem.id == CleanupAction.waste_item_id)
            .join(AwsAccount, AwsAccount.id == WasteItem.aws_account_id)
            .where(
                AwsAccount.organization_id == organization_id,
                CleanupAction.status == domain.AttemptStatus.STARTED.value,
                ~CleanupAction.dry_run,
                # An interrupted rollback is resumed by the next rollback of its action, never by
                # a cleanup run (which has no action to resume it with).
                CleanupAction.action_type != domain.ActionType.ROLLBACK.value,
                sa.true() if quiet_since is None else last_sign < quiet_since,
            )
            .order_by(CleanupAction.executed_at)
        ).scalars()
    )


def _record(
    action: CleanupAction, item: WasteItem, account: AwsAccount, slug: str, email: str | None
) -> ActionRecord:
    return ActionRecord(
        id=action.id,
        waste_item_id=action.waste_item_id,
        run_id=action.run_id,
        organization_slug=slug,
        account_id=account.account_id,
        region=item.region,
        resource_type=item.resource_type,
        resource_id=item.resource_id,
        action=action.action,
        action_type=action.action_type,
        status=action.status,
        dry_run=action.dry_run,
        success=action.success,
        execution_method=action.execution_method,
        executed_by=email,
        policy_name=action.policy_name,
        decision_reason=action.decision_reason,
        error_message=action.error_message,
        aws_response=action.aws_response,
        rollback_possible=action.rollback_possible,
        rollback_data=action.rollback_data,
        rollback_executed=action.rollback_executed,
        rollback_of=action.rollback_of,
        estimated_monthly_savings=action.estimated_monthly_savings,
        actual_monthly_savings=action.actual_monthly_savings,
        executed_at=action.executed_at,
        completed_at=action.completed_at,
    )


def _actions_query() -> Any:
    return (
        sa.select(CleanupAction, WasteItem, AwsAccount, Organization.slug, User.email)
        .join(WasteItem, WasteItem.id == CleanupAction.waste_item_id)
        .join(AwsAccount, AwsAccount.id == WasteItem.aws_account_id)
        .join(Organization, Organization.id == AwsAccount.organization_id)
        .outerjoin(User, User.id == CleanupAction.executed_by)
    )


def get_action(session: Session, action_id: uuid.UUID) -> ActionRecord | None:
    row = session.execute(_actions_query().where(CleanupAction.id == action_id)).one_or_none()
    return _record(*row) if row else None


def list_actions(
    session: Session,
    organization_slug: str,
    *,
    run_id: uuid.UUID | None = None,
    include_dry_runs: bool = True,
    limit: int | None = 200,
) -> list[ActionRecord]:
    query = _actions_query().where(Organization.slug == organization_slug)
    if run_id is not None:
        query = query.where(CleanupAction.run_id == run_id)
    if not include_dry_runs:
        query = query.where(~CleanupAction.dry_run)
    query = query.order_by(CleanupAction.executed_at.desc(), CleanupAction.id)
    if limit:
        query = query.limit(limit)
    return [_record(*row) for row in session.execute(query)]


def confirm_savings(session: Session, account_uuid: uuid.UUID) -> int:
    """Actual savings of successful removals that a later full scan confirmed are gone.

    Method: once a completed full or manual scan of the item's region no longer sees the resource
    (``gone_at`` after the action), the action's actual monthly savings are its estimate, i.e. the
    catalog price of what was removed, less what the action kept (a snapshot). A resource seen
    again after its removal (``gone_at`` empty, e.g. rolled back) saves nothing: actual is 0.
    """
    gone = session.execute(
        sa.update(CleanupAction)
        .where(
            CleanupAction.waste_item_id == WasteItem.id,
            WasteItem.aws_account_id == account_uuid,
            WasteItem.gone_at.is_not(None),
            WasteItem.gone_at >= CleanupAction.executed_at,
            CleanupAction.status == domain.AttemptStatus.SUCCEEDED.value,
            ~CleanupAction.dry_run,
            CleanupAction.action_type != domain.ActionType.ROLLBACK.value,
            CleanupAction.actual_monthly_savings.is_(None),
        )
        .values(actual_monthly_savings=sa.func.coalesce(CleanupAction.estimated_monthly_savings, 0))
        .execution_options(synchronize_session=False)
    )
    back = session.execute(
        sa.update(CleanupAction)
        .where(
            CleanupAction.waste_item_id == WasteItem.id,
            WasteItem.aws_account_id == account_uuid,
            WasteItem.gone_at.is_(None),
            WasteItem.last_seen_at > CleanupAction.completed_at,
            CleanupAction.status == domain.AttemptStatus.SUCCEEDED.value,
            ~CleanupAction.dry_run,
            CleanupAction.action_type != domain.ActionType.ROLLBACK.value,
        )
        .values(actual_monthly_savings=0)
        .execution_options(synchronize_session=False)
    )
    return int(gone.rowcount) + int(back.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class PolicyStats:
    executed: int
    failed: int
    savings_monthly: Decimal
    last_failed_at: datetime | None = None
    last_succeeded_at: datetime | None = None

    @property
    def failing(self) -> bool:
        """The policy's latest real attempt with an outcome failed (a later success clears it)."""
        if self.last_failed_at is None:
            return False
        return self.last_succeeded_at is None or self.last_failed_at > self.last_succeeded_at


def policy_stats(session: Session, organization_id: uuid.UUID, policy_name: str) -> PolicyStats:
    """Real attempts made under a policy: succeeded, failed, and their estimated monthly savings."""
    row = session.execute(
        sa.select(
            sa.func.count().filter(CleanupAction.status == domain.AttemptStatus.SUCCEEDED.value),
            sa.func.count().filter(CleanupAction.status == domain.AttemptStatus.FAILED.value),
            sa.func.coalesce(
                sa.func.sum(CleanupAction.estimated_monthly_savings).filter(
                    CleanupAction.status == domain.AttemptStatus.SUCCEEDED.value,
                    ~CleanupAction.rollback_executed,
                ),
                0,
            ),
            sa.func.max(
                sa.func.coalesce(CleanupAction.completed_at, CleanupAction.executed_at)
            ).filter(CleanupAction.status == domain.AttemptStatus.FAILED.value),
            sa.func.max(
                sa.func.coalesce(CleanupAction.completed_at, CleanupAction.executed_at)
            ).filter(CleanupAction.status == domain.AttemptStatus.SUCCEEDED.value),
        )
        .join(WasteItem, WasteItem.id == CleanupAction.waste_item_id)
        .join(AwsAccount, AwsAccount.id == WasteItem.aws_account_id)
        .where(
            AwsAccount.organization_id == organization_id,
            CleanupAction.policy_name == policy_name,
            ~CleanupAction.dry_run,
            CleanupAction.action_type != domain.ActionType.ROLLBACK.value,
        )
    ).one()
    return PolicyStats(
        executed=int(row[0]),
        failed=int(row[1]),
        savings_monthly=Decimal(row[2] or 0),
        last_failed_at=row[3],
        last_succeeded_at=row[4],
    )


def save_policy(
    session: Session, organization_id: uuid.UUID, document: Mapping[str, Any], *, active: bool
) -> None:
    """Keep the policy as applied (the brief's cleanup_policies table), for audit and reports."""
    values = {
        "organization_id": organization_id,
        "name": document["name"],
        "resource_type": document["resourceType"],
        "rules": {k: v for k, v in document.items() if k not in ("name",)},
        "auto_execute": bool(document.get("autoExecute", False)),
        "max_monthly_cost": Decimal(str(document.get("maxMonthlyCost", "0"))),
        "require_approval_above": Decimal(str(document.get("requireApprovalAbove", "50"))),
        "is_active": active,
    }
    statement = insert(CleanupPolicy).values(**values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["organization_id", "name"],
            set_={
                **{
                    k: statement.excluded[k] for k in values if k not in ("organization_id", "name")
                },
                "updated_at": sa.func.now(),
            },
        )
    )
