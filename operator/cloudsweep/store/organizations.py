"""Tenants: one organization per Kubernetes namespace (or per CLI ``--org``); used via ``Store``."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from cloudsweep.domain import InvalidInput
from cloudsweep.store.models import Organization
from cloudsweep.store.records import OrganizationRecord

# A Kubernetes namespace name (RFC 1123 label): what tenants are named by.
SLUG_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _record(row: Organization) -> OrganizationRecord:
    return OrganizationRecord(
        id=row.id,
        slug=row.slug,
        name=row.name,
        plan_type=row.plan_type,
        monthly_scan_limit=row.monthly_scan_limit,
        auto_cleanup_enabled=row.auto_cleanup_enabled,
    )


def ensure(
    session: Session,
    slug: str,
    *,
    name: str | None = None,
    namespace_uid: str | None = None,
    monthly_scan_limit: int | None = None,
    auto_cleanup_enabled: bool | None = None,
) -> OrganizationRecord:
    """Create the organization for ``slug`` or return the existing one; safe under concurrency.

    ``monthly_scan_limit`` applies to a new organization only (an existing one keeps its plan's).
    ``auto_cleanup_enabled``, when given, is the current state of its source (the namespace's
    annotation) and is written to new and existing organizations alike; None leaves it as it is.
    """
    if not SLUG_RE.fullmatch(slug):
        raise InvalidInput(
            f"organization slug {slug!r} must be a Kubernetes namespace name "
            "(lower-case letters, digits and '-', at most 63 characters)"
        )
    values: dict[str, object] = {"slug": slug, "name": name or slug, "namespace_uid": namespace_uid}
    if monthly_scan_limit is not None:
        values["monthly_scan_limit"] = monthly_scan_limit
    # No conflict target: a concurrent insert for the same namespace collides on the slug and on
    # the namespace UID, and either one may be checked first; both mean "it exists already".
    session.execute(insert(Organization).values(**values).on_conflict_do_nothing())
    row = session.execute(
        sa.select(Organization).where(Organization.slug == slug)
    ).scalar_one_or_none()
    if row is None:
        raise InvalidInput(
            f"namespace UID {namespace_uid} already belongs to another organization, "
            f"not to {slug!r}; an administrator must retire that organization first"
        )
    if namespace_uid and row.namespace_uid not in (None, namespace_uid):
        raise InvalidInput(
            f"namespace {slug!r} was recreated (UID {namespace_uid}, recorded {row.namespace_uid}); "
            "an administrator must retire the old organization before it is reused"
        )
    if namespace_uid and row.namespace_uid is None:
        row.namespace_uid = namespace_uid
    if auto_cleanup_enabled is not None and row.auto_cleanup_enabled != auto_cleanup_enabled:
        row.auto_cleanup_enabled = auto_cleanup_enabled
    return _record(row)


def set_auto_cleanup(session: Session, slug: str, enabled: bool) -> bool:
    """Turn an existing organization's auto cleanup on or off; True if that changed anything."""
    result = session.execute(
        sa.update(Organization)
        .where(
            Organization.slug == slug,
            Organization.deleted_at.is_(None),
            Organization.auto_cleanup_enabled.is_not(enabled),
        )
        .values(auto_cleanup_enabled=enabled)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def get(session: Session, slug: str) -> OrganizationRecord | None:
    row = session.execute(
        sa.select(Organization).where(Organization.slug == slug)
    ).scalar_one_or_none()
    return _record(row) if row else None


def slugs(session: Session) -> list[str]:
    """Every organization that is not retired, by slug."""
    return list(
        session.execute(
            sa.select(Organization.slug)
            .where(Organization.deleted_at.is_(None))
            .order_by(Organization.slug)
        ).scalars()
    )
