"""Findings in ``waste_items`` and their history in ``waste_item_observations``; via ``Store``.

Upserts go through a COPY into a session-local staging table and one ``INSERT ... SELECT ... ON
CONFLICT DO UPDATE`` per batch, which also writes one observation per item: a batch of 5,000 costs
three round trips, not 5,000.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloudsweep.domain import Finding, money
from cloudsweep.store.models import AwsAccount, Organization, WasteItem
from cloudsweep.store.records import UpsertResult, WasteItemRecord

_STAGE = "cloudsweep_finding_stage"
_STAGE_COLUMNS = (
    "resource_type",
    "resource_id",
    "resource_arn",
    "region",
    "availability_zone",
    "monthly_cost",
    "annual_cost",
    "confidence_score",
    "risk_level",
    "safety_checks_passed",
    "resource_details",
)
_CREATE_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (
    resource_type varchar(50) NOT NULL,
    resource_id varchar(255) NOT NULL,
    resource_arn varchar(2048),
    region varchar(20) NOT NULL,
    availability_zone varchar(30),
    monthly_cost numeric(10, 2) NOT NULL,
    annual_cost numeric(12, 2) NOT NULL,
    confidence_score integer NOT NULL,
    risk_level varchar(10) NOT NULL,
    safety_checks_passed boolean NOT NULL,
    resource_details jsonb NOT NULL
) ON COMMIT DELETE ROWS
"""
_UPSERT = f"""
WITH up AS (
    INSERT INTO waste_items AS wi (
        scan_result_id, aws_account_id, resource_type, resource_id, resource_arn, region,
        availability_zone, monthly_cost, annual_cost, confidence_score, risk_level,
        safety_checks_passed, resource_details, discovered_at, last_seen_at, updated_at
    )
    SELECT :scan_id, :account_id, s.resource_type, s.resource_id, s.resource_arn, s.region,
           s.availability_zone, s.monthly_cost, s.annual_cost, s.confidence_score, s.risk_level,
           s.safety_checks_passed, s.resource_details, :seen_at, :seen_at, :seen_at
    FROM {_STAGE} s
    ON CONFLICT (aws_account_id, region, resource_type, resource_id) DO UPDATE SET
        scan_result_id = EXCLUDED.scan_result_id,
        resource_arn = EXCLUDED.resource_arn,
        availability_zone = EXCLUDED.availability_zone,
        monthly_cost = EXCLUDED.monthly_cost,
        annual_cost = EXCLUDED.annual_cost,
        confidence_score = EXCLUDED.confidence_score,
        risk_level = EXCLUDED.risk_level,
        safety_checks_passed = EXCLUDED.safety_checks_passed,
        resource_details = EXCLUDED.resource_details,
        last_seen_at = EXCLUDED.last_seen_at,
        gone_at = NULL,
        updated_at = EXCLUDED.updated_at
    RETURNING wi.id, wi.resource_type, wi.monthly_cost, wi.confidence_score, (xmax = 0) AS inserted
), observed AS (
    INSERT INTO waste_item_observations (
        waste_item_id, scan_result_id, observed_at, aws_account_id, resource_type, monthly_cost,
        confidence_score
    )
    SELECT id, :scan_id, :observed_at, :account_id, resource_type, monthly_cost, confidence_score
    FROM up
    ON CONFLICT DO NOTHING
)
SELECT count(*) FILTER (WHERE inserted), count(*) FROM up
"""


def _stage_row(finding: Finding) -> tuple[Any, ...]:
    return (
        finding.resource_type,
        finding.resource_id,
        finding.resource_arn,
        finding.region,
        finding.availability_zone,
        money(finding.monthly_cost),
        finding.annual_cost,
        finding.confidence,
        finding.risk.value,
        finding.safety_checks_passed,
        json.dumps(finding.resource_details(), default=str, ensure_ascii=False),
    )


def upsert_batch(
    session: Session,
    *,
    account_uuid: uuid.UUID,
    scan_id: uuid.UUID,
    observed_at: datetime,
    seen_at: datetime,
    findings: Sequence[Finding],
) -> UpsertResult:
    """Insert or update one batch of findings of one account, with one observation each.

    ``observed_at`` is the scan's start (it picks the observation partition); ``seen_at`` is now.
    A resource listed twice in a batch keeps its last finding: ON CONFLICT may touch a row once.
    """
    if not findings:
        return UpsertResult(0, 0)
    unique = {(f.region, f.resource_type, f.resource_id): f for f in findings}
    session.execute(sa.text(_CREATE_STAGE))
    session.execute(sa.text(f"TRUNCATE {_STAGE}"))
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {_STAGE} ({', '.join(_STAGE_COLUMNS)}) FROM STDIN") as copy,
    ):
        for finding in unique.values():
            copy.write_row(_stage_row(finding))
    inserted, total = session.execute(
        sa.text(_UPSERT),
        {
            "scan_id": scan_id,
            "account_id": account_uuid,
            "observed_at": observed_at,
            "seen_at": seen_at,
        },
    ).one()
    return UpsertResult(inserted=int(inserted), updated=int(total) - int(inserted))


def close_unseen(
    session: Session,
    *,
    account_uuid: uuid.UUID,
    scan_id: uuid.UUID,
    regions: Iterable[str],
    resource_types: Iterable[str],
    now: datetime,
) -> int:
    """Mark gone the account's open items in these regions and types that this scan did not see.

    Only regions and detectors that completed are passed in, so a failed region never closes items.
    """
    result = session.execute(
        sa.update(WasteItem)
        .where(
            WasteItem.aws_account_id == account_uuid,
            WasteItem.gone_at.is_(None),
            WasteItem.region.in_(list(regions)),
            WasteItem.resource_type.in_(list(resource_types)),
            WasteItem.scan_result_id.is_distinct_from(scan_id),
        )
        .values(gone_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class FindingFilter:
    """What ``list_findings`` selects; the organization is mandatory (tenant separation)."""

    organization_slug: str
    account_id: str | None = None
    resource_type: str | None = None
    region: str | None = None
    min_monthly_cost: Decimal | None = None
    cleanup_status: str | None = None
    include_gone: bool = False
    limit: int | None = None


def list_findings(session: Session, selection: FindingFilter) -> list[WasteItemRecord]:
    query = (
        sa.select(WasteItem, AwsAccount.account_id, Organization.slug)
        .join(AwsAccount, AwsAccount.id == WasteItem.aws_account_id)
        .join(Organization, Organization.id == AwsAccount.organization_id)
        .where(Organization.slug == selection.organization_slug)
        .order_by(WasteItem.monthly_cost.desc(), WasteItem.resource_id)
    )
    if not selection.include_gone:
        query = query.where(WasteItem.gone_at.is_(None))
    if selection.account_id:
        query = query.where(AwsAccount.account_id == selection.account_id)
    if selection.resource_type:
        query = query.where(WasteItem.resource_type == selection.resource_type)
    if selection.region:
        query = query.where(WasteItem.region == selection.region)
    if selection.min_monthly_cost is not None:
        query = query.where(WasteItem.monthly_cost >= selection.min_monthly_cost)
    if selection.cleanup_status:
        query = query.where(WasteItem.cleanup_status == selection.cleanup_status)
    if selection.limit:
        query = query.limit(selection.limit)
    return [
        WasteItemRecord(
            id=item.id,
            organization_slug=slug,
            account_id=account_id,
            region=item.region,
            resource_type=item.resource_type,
            resource_id=item.resource_id,
            resource_arn=item.resource_arn,
            availability_zone=item.availability_zone,
            monthly_cost=item.monthly_cost,
            annual_cost=item.annual_cost,
            confidence_score=item.confidence_score,
            risk_level=item.risk_level,
            safety_checks_passed=item.safety_checks_passed,
            cleanup_status=item.cleanup_status,
            resource_details=dict(item.resource_details),
            discovered_at=item.discovered_at,
            last_seen_at=item.last_seen_at,
            gone_at=item.gone_at,
        )
        for item, account_id, slug in session.execute(query)
    ]
