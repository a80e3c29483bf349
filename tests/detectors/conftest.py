"""Detector test helpers: a scanned account on the moto server, seeded through its own role.

Resources are created through assumed-role credentials of ``ACCOUNT`` so that moto files them
under that account, as it would for a customer's account; the detectors then see them through an
``aws.AccountSession`` (AssumeRole with ExternalId + GetCallerIdentity), as in production.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest

from cloudsweep import aws, detectors
from cloudsweep.detectors import RegionContext
from cloudsweep.domain import Finding, utcnow
from cloudsweep.pricing import PriceCatalog, load_catalog
from cloudsweep.settings import Settings

ACCOUNT = "111111111111"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/cloudsweep-scan"
EXTERNAL_ID = "org-test-7f3a"
REGION = "us-east-1"
LATER = timedelta(days=120)  # "now" of a scan long after the seeded resources were made


def assumed_boto3_session(endpoint: str, account: str = ACCOUNT) -> boto3.Session:
    """A plain boto3 session with credentials of ``account`` (moto maps them by role ARN)."""
    sts = boto3.client("sts", region_name=REGION, endpoint_url=endpoint)
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/seeder", RoleSessionName="seeder"
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=REGION,
    )


@pytest.fixture
def seed(moto_endpoint: str) -> Callable[[str], Any]:
    """``seed("ec2")``: a boto3 client of the scanned account, to build the world."""
    session = assumed_boto3_session(moto_endpoint)

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=moto_endpoint)

    return client


@pytest.fixture
def recorder() -> aws.CallRecorder:
    return aws.CallRecorder()


@pytest.fixture
def account_session(moto_endpoint: str, recorder: aws.CallRecorder) -> aws.AccountSession:
    return aws.AccountSession(
        ACCOUNT,
        ROLE_ARN,
        external_id=EXTERNAL_ID,
        scan_permissions=detectors.permissions(),  # as the scan run does
        settings=Settings(aws_endpoint_url=moto_endpoint),
        recorder=recorder,
    )


@pytest.fixture(scope="session")
def catalog() -> PriceCatalog:
    return load_catalog()


@pytest.fixture
def make_context(
    account_session: aws.AccountSession, catalog: PriceCatalog
) -> Callable[..., RegionContext]:
    """``make_context(now=..., page_size=...)``: a fresh RegionContext (and inventory)."""

    def make(now: datetime | None = None, page_size: int | None = None) -> RegionContext:
        return RegionContext.for_session(
            account_session, REGION, catalog, now=now or utcnow() + LATER, page_size=page_size
        )

    return make


def by_id(findings: list[Finding]) -> dict[str, Finding]:
    return {f.resource_id: f for f in findings}


def check(finding: Finding, name: str) -> bool:
    """Whether the finding's safety check ``name`` passed."""
    (found,) = [c for c in finding.safety_checks if c.name == name]
    return found.passed
