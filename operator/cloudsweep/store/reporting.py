"""Read what reports show: the ``savings_summary`` and ``waste_trends`` views and current waste.

Called by ``cloudsweep.reports`` (the ``cloudsweep report`` command and its HTML page) and by
``cloudsweep.notify`` (weekly and monthly reports, the most expensive items of a scan), through
``ReportingStore``. Every query is scoped to one organization. The views are as fresh as their last
refresh (after each CLI scan, and daily by retention); current waste is read from ``waste_items``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloudsweep import domain
from cloudsweep.store.engine import session_scope
from cloudsweep.store.models import (
    AwsAccount,
    WasteItem,
    is_protected,
    savings_summary,
    waste_trends,
)

_ZERO = Decimal("0.00")


def _money(value: object) -> Decimal:
    return _ZERO if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


@dataclass(frozen=True, slots=True)
class WasteByType:
    """Waste still out there (not gone, not cleaned) of one resource type."""

    resource_type: str
    items: int
    monthly_cost: Decimal
    annual_cost: Decimal


@dataclass(frozen=True, slots=True)
class WasteByAccount:
    account_id: str
    account_name: str | None
    items: int
    monthly_cost: Decimal
    last_scan_at: datetime | None


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One week (Monday 00:00 UTC) of one resource type, summed over the organization's accounts."""

    week: datetime
    resource_type: str
    items: int
    monthly_cost: Decimal


@dataclass(frozen=True, slots=True)
class MonthlySavings:
    """One month (UTC) of real cleanups, summed over the organization's accounts."""

    month: datetime
    total_cleanups: int
    successful_cleanups: int
    failed_cleanups: int
    estimated_monthly_savings: Decimal
    actual_monthly_savings: Decimal


@dataclass(frozen=True, slots=True)
class CostlyItem:
    resource_type: str
    resource_id: str
    region: str
    account_id: str
    monthly_cost: Decimal


@dataclass(frozen=True, slots=True)
class ProtectedWaste:
    items: int
    monthly_cost: Decimal


@dataclass(frozen=True, slots=True)
class NewWaste:
    items: int
    monthly_cost: Decimal
    top: tuple[CostlyItem, ...]


def waste_by_type(session: Session, organization_id: uuid.UUID) -> list[WasteByType]:
    rows = session.execute(
        sa.select(
            WasteItem.resource_type,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(WasteItem.monthly_cost), 0),
            sa.func.coalesce(sa.func.sum(WasteItem.annual_cost), 0),
        )
        .join(AwsAccount, AwsAccount.id == WasteItem.aws_account_id)
        .where(*_current(organization_id))
        .group_by(WasteItem.resource_type)
        .order_by(sa.func.sum(WasteItem.monthly_cost).desc(), WasteItem.resource_type)
    ).all()
    return [
        WasteByType(
            resource_type=r[0], items=int(r[1]), monthly_cost=_money(r[2]), annual_cost=_money(r[3])
        )
        for r in rows
    ]


def waste_by_account(session: Session, organization_id: uuid.UUID) -> list[WasteByAccount]:
    items = (
        sa.select(
            WasteItem.aws_account_id.label("account"),
            sa.func.count().label("items"),
            sa.func.sum(WasteItem.monthly_cost).label("cost"),
        )
        .join(AwsAccount, AwsAccount.id == WasteItem.aws_account_id)
        .where(*_current(organization_id))
        .group_by(WasteItem.aws_account_id)
        .subquery()
    )
    rows = session.execute(
        sa.select(
            AwsAccount.account_id,
            AwsAccount.account_name,
            sa.func.coalesce(items.c["items"], 0),
            sa.func.coalesce(items.c.cost, 0),
            AwsAccount.last_scan_at,
        )
        .outerjoin(items, items.c.account == AwsAccount.id)
        .where(AwsAccount.organization_id == organization_id, AwsAccount.deleted_at.is_(None))
        .order_by(sa.func.coalesce(items.c.cost, 0).desc(), AwsAccount.account_id)
    ).all()
    return [
        WasteByAccount(
            account_id=r[0],
            account_name=r[1],
            items=int(r[2]),
            monthly_cost=_money(r[3]),
            last_scan_at=r[4],
        )
        for r in rows
    ]


def _current(
    organization_id: uuid.UUID, *, protected: bool = False
) -> tuple[sa.ColumnElement[bool], ...]:
    """Current waste of an organization: protected items only when ``protected``, else none."""
    return (
        AwsAccount.organization_id == organization_id,
        AwsAccount.deleted_at.is_(None),
        WasteItem.gone_at.is_(None),
        WasteItem.cleanup_status != domain.CleanupStatus.CLEANED.value,
        is_protected() if protected else sa.not_(is_protected()),
    )


def protected_waste(session: Session, organization_id: uuid.UUID) -> ProtectedWaste:
    """What protection tags keep out of the waste figures: shown, not counted."""
    count, total = session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(WasteItem.monthly_cost), 0))
        .join(AwsAccount, AwsAccount.id == WasteItem.aws_account_id)
        .where(*_current(organization_id, protected=True))
    ).one()
    return ProtectedWaste(items=int(count), monthly_cost=_money(total))


def trend(session: Session, organization_id: uuid.UUID, since: datetime) -> list[TrendPoint]:
    view = waste_trends.c
    rows = session.execute(
        sa.select(
            view.week,
            view.resource_type,
            sa.func.sum(view.waste_items_found),
            sa.func.sum(view.total_monthly_waste_cost),
        )
        .where(view.organization_id == organization_id, view.week >= since)
        .group_by(view.week, view.resource_type)
        .order_by(view.week, view.resource_type)
    ).all()
    return [
        TrendPoint(week=r[0], resource_type=r[1], items=int(r[2] or 0), monthly_cost=_money(r[3]))
        for r in rows
    ]


def savings(session: Session, organization_id: uuid.UUID, since: datetime) -> list[MonthlySavings]:
    view = savings_summary.c
    rows = session.execute(
        sa.select(
            view.month,
            sa.func.sum(view.total_cleanups),
            sa.func.sum(view.successful_cleanups),
            sa.func.sum(view.failed_cleanups),
            sa.func.sum(view.estimated_monthly_savings),
            sa.func.sum(view.actual_monthly_savings),
        )
        .where(view.organization_id == organization_id, view.month >= since)
        .group_by(view.month)
        .order_by(view.month)
    ).all()
    return [
        MonthlySavings(
            month=r[0],
            total_cleanups=int(r[1] or 0),
            successful_cleanups=int(r[2] or 0),
            failed_cleanups=int(r[3] or 0),
            estimated_monthly_savings=_money(r[4]),
            actual_monthly_savings=_money(r[5]),
        )
        for r in rows
    ]


def new_waste_of_scan(
    session: Session, scan_id: uuid.UUID, started_at: datetime, limit: int
) -> NewWaste:
    """Items this scan found first (discovered since it started): count, cost, the costliest."""
    where = (
        WasteItem.scan_result_id == scan_id,
        WasteItem.gone_at.is_(None),
        WasteItem.discovered_at >= started_at,
        sa.not_(is_protected()),
    )
    count, total = session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(WasteItem.monthly_cost), 0)).where(
            *where
        )
    ).one()
    rows = session.execute(
        sa.select(
            WasteItem.resource_type,
            WasteItem.resource_id,
            WasteItem.region,
            AwsAccount.account_id,
            WasteItem.monthly_cost,
        )
        .join(AwsAccount, AwsAccount.id == WasteItem.aws_account_id)
        .where(*where)
        .order_by(WasteItem.monthly_cost.desc(), WasteItem.resource_id)
        .limit(limit)
    ).all()
    top = tuple(
        CostlyItem(
            resource_type=r[0],
            resource_id=r[1],
            region=r[2],
            account_id=r[3],
            monthly_cost=_money(r[4]),
        )
        for r in rows
    )
    return NewWaste(items=int(count), monthly_cost=_money(total), top=top)


class ReportingStore:
    """The facade ``reports`` and ``notify`` use; one read-only transaction per method."""

    def __init__(self, url: str) -> None:
        self.url = url

    def waste_by_type(self, organization_id: uuid.UUID) -> list[WasteByType]:
        with session_scope(self.url) as session:
            return waste_by_type(session, organization_id)

    def waste_by_account(self, organization_id: uuid.UUID) -> list[WasteByAccount]:
        with session_scope(self.url) as session:
            return waste_by_account(session, organization_id)

    def trend(self, organization_id: uuid.UUID, since: datetime) -> list[TrendPoint]:
        with session_scope(self.url) as session:
            return trend(session, organization_id, since)

    def savings(self, organization_id: uuid.UUID, since: datetime) -> list[MonthlySavings]:
        with session_scope(self.url) as session:
            return savings(session, organization_id, since)

    def protected_waste(self, organization_id: uuid.UUID) -> ProtectedWaste:
        with session_scope(self.url) as session:
            return protected_waste(session, organization_id)

    def new_waste_of_scan(
        self, scan_id: uuid.UUID, started_at: datetime, limit: int = 5
    ) -> NewWaste:
        with session_scope(self.url) as session:
            return new_waste_of_scan(session, scan_id, started_at, limit)
