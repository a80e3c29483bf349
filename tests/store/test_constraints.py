"""The brief's constraints hold in the database itself, whatever code writes to it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from cloudsweep import domain
from cloudsweep.store import Store
from cloudsweep.store.engine import get_engine

from .conftest import T0, finding


def _insert_item(url: str, account_uuid: object, **overrides: object) -> None:
    values = {
        "aws_account_id": account_uuid,
        "resource_type": "ebs-volume",
        "resource_id": "vol-1",
        "region": "us-east-1",
        "monthly_cost": 1,
        "annual_cost": 12,
        "confidence_score": 50,
        "risk_level": "low",
        "resource_details": "{}",
        **overrides,
    }
    columns = ", ".join(values)
    params = ", ".join(f":{key}" for key in values)
    with get_engine(url).begin() as conn:
        conn.execute(sa.text(f"INSERT INTO waste_items ({columns}) VALUES ({params})"), values)


@pytest.mark.parametrize("score", [0, 101, -5])
def test_confidence_outside_1_to_100_is_rejected(store: Store, make_account, score: int) -> None:
    account = make_account()
    with pytest.raises(IntegrityError, match="confidence_score_range"):
        _insert_item(store.url, account.id, confidence_score=score)


def test_unknown_risk_level_and_status_are_rejected(store: Store, make_account) -> None:
    account = make_account()
    with pytest.raises(IntegrityError, match="risk_level_valid"):
        _insert_item(store.url, account.id, risk_level="extreme")
    with pytest.raises(IntegrityError, match="cleanup_status_valid"):
        _insert_item(store.url, account.id, cleanup_status="vanished")


def test_resource_key_is_unique_per_account_region_type(store: Store, make_account) -> None:
    account = make_account()
    _insert_item(store.url, account.id)
    with pytest.raises(IntegrityError, match="idx_waste_items_resource"):
        _insert_item(store.url, account.id)
    # The same ID in another region or of another type is another resource.
    _insert_item(store.url, account.id, region="eu-west-1")
    _insert_item(store.url, account.id, resource_type="ebs-snapshot")


def test_account_id_must_be_12_digits_in_the_database(store: Store) -> None:
    org = store.ensure_organization("team-a")
    with (
        pytest.raises(IntegrityError, match="account_id_12_digits"),
        get_engine(store.url).begin() as conn,
    ):
        conn.execute(
            sa.text(
                "INSERT INTO aws_accounts (organization_id, account_id, role_arn) "
                "VALUES (:o, '12345678901', 'arn:aws:iam::12345678901:role/x')"
            ),
            {"o": org.id},
        )


@pytest.mark.parametrize(
    ("account_id", "role_arn", "message"),
    [
        (123456789012, "arn:aws:iam::123456789012:role/r", "must be a string"),
        ("12345678901", "arn:aws:iam::12345678901:role/r", "exactly 12 digits"),
        ("1234567890123", "arn:aws:iam::1234567890123:role/r", "exactly 12 digits"),
        ("123456789012", "arn:aws:iam::210987654321:role/r", "belongs to account 210987654321"),
        ("123456789012", "arn:aws:iam::123456789012:user/r", "is not an IAM role ARN"),
    ],
)
def test_bad_accounts_are_refused_with_a_clear_message(
    store: Store, account_id: object, role_arn: str, message: str
) -> None:
    org = store.ensure_organization("team-a")
    with pytest.raises(domain.InvalidInput, match=message):
        store.register_account(
            org.id,
            account_id=account_id,
            role_arn=role_arn,
            external_id=None,
            regions=["us-east-1"],
        )


def test_other_partitions_are_accepted(store: Store) -> None:
    org = store.ensure_organization("team-a")
    account = store.register_account(
        org.id,
        account_id="123456789012",
        role_arn="arn:aws-us-gov:iam::123456789012:role/scanner",
        external_id=None,
        regions=["us-gov-west-1"],
    )
    assert account.regions == ("us-gov-west-1",)


def test_deleting_an_organization_cascades_to_its_accounts_and_findings(
    store: Store, make_account
) -> None:
    account = make_account()
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(scan, [finding("vol-1")])
    with get_engine(store.url).begin() as conn:
        conn.execute(sa.text("DELETE FROM organizations"))
        remaining = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM waste_items) + (SELECT count(*) FROM aws_accounts)"
            )
        ).scalar_one()
    assert remaining == 0


def test_money_is_decimal_and_times_are_aware(store: Store, make_account) -> None:
    account = make_account()
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(scan, [finding("vol-1", cost="0.125")])
    [item] = store.findings(
        __import__("cloudsweep.store", fromlist=["FindingFilter"]).FindingFilter("team-a")
    )
    assert str(item.monthly_cost) == "0.13"  # rounded half up to cents, not binary float
    assert item.discovered_at.tzinfo is not None
