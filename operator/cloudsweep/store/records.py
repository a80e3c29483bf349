"""Plain values the store returns, so callers outside ``store`` never hold SQLAlchemy objects."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from cloudsweep.domain import PROTECTION_CHECK


@dataclass(frozen=True, slots=True)
class OrganizationRecord:
    id: uuid.UUID
    slug: str
    name: str
    plan_type: str
    monthly_scan_limit: int | None
    auto_cleanup_enabled: bool


@dataclass(frozen=True, slots=True)
class AccountRecord:
    id: uuid.UUID
    organization_id: uuid.UUID
    account_id: str
    account_name: str | None
    role_arn: str | None  # None: scanned on the user's own credentials, never cleaned
    external_id: str | None
    regions: tuple[str, ...]
    scan_enabled: bool
    auto_cleanup_enabled: bool
    connection_status: str
    last_scan_at: datetime | None
    deleted: bool = False  # its AwsAccount was deleted (or refused): history only, never used


@dataclass(frozen=True, slots=True)
class ScanRecord:
    id: uuid.UUID
    aws_account_id: uuid.UUID
    scan_type: str
    status: str
    started_at: datetime
    regions: tuple[str, ...] = ()
    completed_at: datetime | None = None
    total_waste_items_found: int = 0
    total_monthly_waste_cost: Decimal = Decimal("0.00")
    total_annual_waste_cost: Decimal = Decimal("0.00")
    total_resources_scanned: int = 0
    duration_seconds: Decimal | None = None
    error_message: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UpsertResult:
    inserted: int
    updated: int

    @property
    def total(self) -> int:
        return self.inserted + self.updated


@dataclass(frozen=True, slots=True)
class WasteItemRecord:
    id: uuid.UUID
    organization_slug: str
    account_id: str
    region: str
    resource_type: str
    resource_id: str
    resource_arn: str | None
    availability_zone: str | None
    monthly_cost: Decimal
    annual_cost: Decimal
    confidence_score: int
    risk_level: str
    safety_checks_passed: bool
    cleanup_status: str
    resource_details: dict[str, Any]
    discovered_at: datetime
    last_seen_at: datetime
    gone_at: datetime | None

    @property
    def protected(self) -> bool:
        """A protection tag excludes it: shown with its cost, never counted as waste."""
        return any(
            check.get("name") == PROTECTION_CHECK and not check.get("passed")
            for check in self.resource_details.get("safety_checks", [])
        )


@dataclass(frozen=True, slots=True)
class RetentionReport:
    scans_deleted: int
    actions_deleted: int
    partitions_dropped: tuple[str, ...]
    partitions_created: int
    views_refreshed: tuple[str, ...]
