"""Helpers for store tests: a Store on a fresh database, and findings to put in it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cloudsweep import domain
from cloudsweep.store import AccountRecord, Store


@pytest.fixture
def store(database_url: str) -> Store:
    return Store(database_url)


@pytest.fixture
def make_account(store: Store) -> Callable[..., AccountRecord]:
    def make(
        slug: str = "team-a", account_id: str = "111111111111", *, allow_shared: bool = False
    ) -> AccountRecord:
        org = store.ensure_organization(slug)
        return store.register_account(
            org.id,
            account_id=account_id,
            role_arn=f"arn:aws:iam::{account_id}:role/CloudSweepScanner",
            external_id="ext-1",
            regions=["us-east-1", "eu-west-1"],
            allow_shared=allow_shared,
        )

    return make


def finding(
    resource_id: str,
    *,
    cost: str = "10.00",
    region: str = "us-east-1",
    resource_type: str = "ebs-volume",
    confidence: int = 90,
) -> domain.Finding:
    return domain.Finding(
        resource_type=resource_type,
        resource_id=resource_id,
        region=region,
        monthly_cost=Decimal(cost),
        confidence=confidence,
        risk=domain.RiskLevel.LOW,
        availability_zone=f"{region}a",
        evidence=("unattached since 2026-01-01",),
        safety_checks=(domain.SafetyCheck("protection-tag", True, "no protection tag"),),
        tags={"team": "payments"},
    )


T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
