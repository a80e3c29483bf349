"""Who is told what: users of an organization and their ``notification_settings``.

Called by ``cloudsweep.notify.dispatch`` (the ``Notifier`` reads recipients before every event) and
by whatever edits a user's preferences. ``NotificationSettingsStore`` is the facade; each method is
one transaction and returns plain values, so callers never import SQLAlchemy.

A user without a settings row is told nothing: the row is the opt-in. Its column defaults (every
event, e-mail on, Slack off, $10 threshold) are what a user gets by creating it with no arguments.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from cloudsweep import domain
from cloudsweep.store.engine import session_scope
from cloudsweep.store.models import (
    AwsAccount,
    CleanupRun,
    NotificationSettings,
    Organization,
    User,
)


@dataclass(frozen=True, slots=True)
class Preferences:
    """One user's row of ``notification_settings``: which events, which channels, what threshold."""

    scan_completed: bool = True
    cleanup_completed: bool = True
    high_value_waste_found: bool = True
    weekly_report: bool = True
    monthly_report: bool = True
    email_enabled: bool = True
    slack_enabled: bool = False
    slack_webhook_url: str | None = None
    min_waste_amount_notify: Decimal = Decimal("10.00")


@dataclass(frozen=True, slots=True)
class Recipient:
    """An active user of an organization and their preferences."""

    user_id: uuid.UUID
    email: str
    first_name: str | None
    role: str
    preferences: Preferences


@dataclass(frozen=True, slots=True)
class Tenant:
    """The organization an account or a cleanup run belongs to (what an event is addressed by)."""

    organization_id: uuid.UUID
    slug: str
    name: str
    account_id: str | None = None
    account_name: str | None = None


def recipients(session: Session, organization_id: uuid.UUID) -> list[Recipient]:
    """Active users of the organization that have a settings row, by e-mail."""
    rows = session.execute(
        sa.select(User, NotificationSettings)
        .join(NotificationSettings, NotificationSettings.user_id == User.id)
        .where(User.organization_id == organization_id, User.is_active)
        .order_by(User.email)
    ).all()
    return [
        Recipient(
            user_id=user.id,
            email=user.email,
            first_name=user.first_name,
            role=user.role,
            preferences=Preferences(
                scan_completed=row.scan_completed,
                cleanup_completed=row.cleanup_completed,
                high_value_waste_found=row.high_value_waste_found,
                weekly_report=row.weekly_report,
                monthly_report=row.monthly_report,
                email_enabled=row.email_enabled,
                slack_enabled=row.slack_enabled,
                slack_webhook_url=row.slack_webhook_url,
                min_waste_amount_notify=row.min_waste_amount_notify,
            ),
        )
        for user, row in rows
    ]


def upsert(session: Session, user_id: uuid.UUID, preferences: Preferences) -> None:
    """Create or replace the user's settings row."""
    if preferences.min_waste_amount_notify < 0:
        raise domain.InvalidInput("min_waste_amount_notify must not be negative")
    if preferences.slack_webhook_url is not None and len(preferences.slack_webhook_url) > 512:
        raise domain.InvalidInput("a Slack webhook URL is at most 512 characters")
    values = {
        "scan_completed": preferences.scan_completed,
        "cleanup_completed": preferences.cleanup_completed,
        "high_value_waste_found": preferences.high_value_waste_found,
        "weekly_report": preferences.weekly_report,
        "monthly_report": preferences.monthly_report,
        "email_enabled": preferences.email_enabled,
        "slack_enabled": preferences.slack_enabled,
        "slack_webhook_url": preferences.slack_webhook_url,
        "min_waste_amount_notify": preferences.min_waste_amount_notify,
    }
    statement = insert(NotificationSettings).values(user_id=user_id, **values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["user_id"], set_={**values, "updated_at": sa.func.now()}
        )
    )


def set_active(session: Session, user_id: uuid.UUID, active: bool) -> None:
    session.execute(sa.update(User).where(User.id == user_id).values(is_active=active))


def tenant_of_account(session: Session, account_uuid: uuid.UUID) -> Tenant | None:
    row = session.execute(
        sa.select(
            Organization.id,
            Organization.slug,
            Organization.name,
            AwsAccount.account_id,
            AwsAccount.account_name,
        )
        .join(AwsAccount, AwsAccount.organization_id == Organization.id)
        .where(AwsAccount.id == account_uuid)
    ).one_or_none()
    if row is None:
        return None
    return Tenant(
        organization_id=row[0],
        slug=row[1],
        name=row[2],
        account_id=row[3],
        account_name=row[4],
    )


def tenant_of_run(session: Session, run_id: uuid.UUID) -> Tenant | None:
    row = session.execute(
        sa.select(Organization.id, Organization.slug, Organization.name)
        .join(CleanupRun, CleanupRun.organization_id == Organization.id)
        .where(CleanupRun.id == run_id)
    ).one_or_none()
    return None if row is None else Tenant(organization_id=row[0], slug=row[1], name=row[2])


def tenant(session: Session, slug: str) -> Tenant | None:
    row = session.execute(
        sa.select(Organization.id, Organization.slug, Organization.name).where(
            Organization.slug == slug
        )
    ).one_or_none()
    return None if row is None else Tenant(organization_id=row[0], slug=row[1], name=row[2])


class NotificationSettingsStore:
    """The facade the notifier uses; one transaction per method."""

    def __init__(self, url: str) -> None:
        self.url = url

    def recipients(self, organization_id: uuid.UUID) -> list[Recipient]:
        with session_scope(self.url) as session:
            return recipients(session, organization_id)

    def upsert(self, user_id: uuid.UUID, preferences: Preferences) -> None:
        with session_scope(self.url) as session:
            upsert(session, user_id, preferences)

    def set_active(self, user_id: uuid.UUID, active: bool) -> None:
        with session_scope(self.url) as session:
            set_active(session, user_id, active)

    def tenant_of_account(self, account_uuid: uuid.UUID) -> Tenant | None:
        with session_scope(self.url) as session:
            return tenant_of_account(session, account_uuid)

    def tenant_of_run(self, run_id: uuid.UUID) -> Tenant | None:
        with session_scope(self.url) as session:
            return tenant_of_run(session, run_id)

    def tenant(self, slug: str) -> Tenant | None:
        with session_scope(self.url) as session:
            return tenant(session, slug)
