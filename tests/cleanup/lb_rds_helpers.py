"""Helpers of the load-balancer and RDS cleanup tests: a scanned account on the moto server.

Resources are seeded through assumed-role credentials of ``ACCOUNT`` (moto files them under the
account of the role), findings come from the real detectors through ``RegionContext.for_session``,
and the :class:`cloudsweep.cleanup.ActionContext` is built as the executor builds it: a cleanup
``aws.AccountSession`` with a call recorder, a fresh action ID, and a dict as the checkpoint ledger.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3

from cloudsweep import aws
from cloudsweep.cleanup import ActionContext, CleanupItem
from cloudsweep.detectors import RegionContext
from cloudsweep.detectors.base import Detector
from cloudsweep.domain import Finding, utcnow
from cloudsweep.pricing import load_catalog
from cloudsweep.settings import Settings

ACCOUNT = "222222222222"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/cloudsweep-cleanup"
EXTERNAL_ID = "org-cleanup-4c1d"
REGION = "us-east-1"
LATER = timedelta(days=120)  # the scan happens long after the seeding: nothing is "too recent"

_CATALOG = load_catalog()


def seed_session(endpoint: str) -> boto3.Session:
    """A plain boto3 session with credentials of ``ACCOUNT`` (moto maps them by role ARN)."""
    sts = boto3.client("sts", region_name=REGION, endpoint_url=endpoint)
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/seeder", RoleSessionName="seeder"
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=REGION,
    )


@dataclass
class Harness:
    """One account on the moto server: seed clients, the cleanup session and its recorder."""

    endpoint: str
    recorder: aws.CallRecorder = field(default_factory=aws.CallRecorder)
    checkpoints: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._seed = seed_session(self.endpoint)
        self.session = aws.AccountSession(
            ACCOUNT,
            ROLE_ARN,
            external_id=EXTERNAL_ID,
            purpose=aws.Purpose.CLEANUP,
            settings=Settings(aws_endpoint_url=self.endpoint, aws_max_attempts=2),
            recorder=self.recorder,
        )

    def seed(self, service: str) -> Any:
        """A boto3 client of the account that is not recorded: to build and inspect the world."""
        return self._seed.client(service, endpoint_url=self.endpoint)

    def context(self, action_id: uuid.UUID | None = None) -> ActionContext:
        return ActionContext(
            account_id=ACCOUNT,
            region=REGION,
            partition="aws",
            action_id=action_id or uuid.uuid4(),
            client=lambda service: self.session.client(service, REGION),
            now=utcnow,
            checkpoint=self.checkpoints.update,
        )

    def findings(self, detector: Detector[Any]) -> list[Finding]:
        # A scan-purpose session, as the scan run uses, kept apart from the cleanup recorder.
        scan = aws.AccountSession(
            ACCOUNT,
            ROLE_ARN,
            external_id=EXTERNAL_ID,
            settings=Settings(aws_endpoint_url=self.endpoint),
        )
        region = RegionContext.for_session(scan, REGION, _CATALOG, now=utcnow() + LATER)
        return list(detector.detect(region, detector.parameters()))

    def item(self, detector: Detector[Any], resource_id: str) -> CleanupItem:
        """The CleanupItem the executor would build from the stored finding of ``resource_id``."""
        (finding,) = [f for f in self.findings(detector) if f.resource_id == resource_id]
        return item_from(finding)

    def mutating(self) -> list[tuple[str, str]]:
        return [(r.service, r.operation) for r in self.recorder.mutating()]


def item_from(finding: Finding) -> CleanupItem:
    # Through JSON, as the store keeps resource_details (jsonb).
    details = json.loads(json.dumps(finding.resource_details(), default=str))
    return CleanupItem(
        waste_item_id=uuid.uuid4(),
        account_id=ACCOUNT,
        region=finding.region,
        resource_type=finding.resource_type,
        resource_id=finding.resource_id,
        resource_arn=finding.resource_arn,
        availability_zone=finding.availability_zone,
        monthly_cost=finding.monthly_cost,
        resource_details=details,
    )


def strip_volatile(value: Any, keys: frozenset[str] = frozenset({"ResponseMetadata"})) -> Any:
    """A describe answer without the keys that change between two identical reads."""
    if isinstance(value, dict):
        return {k: strip_volatile(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [strip_volatile(v, keys) for v in value]
    return value


def tags_of(entries: Any) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in entries or []}


Seeder = Callable[[str], Any]
