"""Helpers for the EBS volume, EBS snapshot and Elastic IP cleanup tests (not a conftest: other
resource types' tests share this directory).

A :class:`Harness` is one scanned account on the moto server: a boto3 client that seeds the world
through a role assumed in the account (so moto files the resources under it), and the
``aws.AccountSession`` with ``Purpose.CLEANUP`` that the actions use, built as the executor builds
it, with a :class:`aws.CallRecorder` as the oracle. Items are made from a real scan: the detector
runs on the seeded resource and its finding becomes the ``CleanupItem`` the store would hold.

moto in its default mode does not check credentials: these tests prove what the actions call and
what happens in AWS, not tenant isolation.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import boto3

from cloudsweep import aws, detectors
from cloudsweep.cleanup.base import ActionContext, ActionParameters, CleanupAction, CleanupItem
from cloudsweep.detectors import RegionContext
from cloudsweep.domain import utcnow
from cloudsweep.pricing import load_catalog
from cloudsweep.settings import Settings

ACCOUNT = "111111111111"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/cloudsweep-cleanup"
EXTERNAL_ID = "org-test-7f3a"
REGION = "us-east-1"
AZ = f"{REGION}a"
# Waits in moto are short: snapshots and volumes are ready at once.
FAST = {"wait_delay_seconds": 0.05, "wait_max_attempts": 5}


def tags_spec(resource_type: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
    ]


def tag_dict(tags: Any) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or ()}


class Harness:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        sts = boto3.client("sts", region_name=REGION, endpoint_url=endpoint)
        creds = sts.assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/seeder", RoleSessionName="seeder"
        )["Credentials"]
        seeder = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=REGION,
        )
        self.ec2 = seeder.client("ec2", endpoint_url=endpoint)
        self.recorder = aws.CallRecorder()
        self.session = aws.AccountSession(
            ACCOUNT,
            ROLE_ARN,
            external_id=EXTERNAL_ID,
            purpose=aws.Purpose.CLEANUP,
            settings=Settings(aws_endpoint_url=endpoint, aws_max_attempts=2),
            recorder=self.recorder,
        )
        self.checkpoints: dict[str, Any] = {}

    # --- the executor's side ------------------------------------------------------------

    def ctx(
        self, action_id: uuid.UUID | None = None, checkpoints: dict[str, Any] | None = None
    ) -> ActionContext:
        store = self.checkpoints if checkpoints is None else checkpoints
        return ActionContext(
            account_id=ACCOUNT,
            region=REGION,
            partition="aws",
            action_id=action_id or uuid.uuid4(),
            client=lambda service: self.session.client(service, REGION),
            now=utcnow,
            checkpoint=store.update,
        )

    def params(self, action: CleanupAction) -> ActionParameters:
        return action.parameters(FAST)

    @property
    def events(self) -> Any:
        """The event emitter of the cleanup's EC2 client, for fault injection at any time
        (botocore copies a session's handlers into a client when it creates it)."""
        return self.session.client("ec2", REGION).meta.events

    def item(self, resource_type: str, resource_id: str) -> CleanupItem:
        """The CleanupItem a real scan stores for ``resource_id`` (JSON round trip included)."""
        scan = aws.AccountSession(
            ACCOUNT,
            ROLE_ARN,
            external_id=EXTERNAL_ID,
            settings=Settings(aws_endpoint_url=self.endpoint),
        )
        detector = detectors.get(resource_type)()
        context = RegionContext.for_session(
            scan, REGION, load_catalog(), now=utcnow() + timedelta(days=120)
        )
        findings = {f.resource_id: f for f in detector.detect(context, detector.parameters())}
        finding = findings[resource_id]
        return CleanupItem(
            waste_item_id=uuid.uuid4(),
            account_id=ACCOUNT,
            region=REGION,
            resource_type=finding.resource_type,
            resource_id=finding.resource_id,
            resource_arn=finding.resource_arn,
            availability_zone=finding.availability_zone,
            monthly_cost=Decimal(str(finding.monthly_cost)),
            resource_details=json.loads(json.dumps(finding.resource_details(), default=str)),
        )

    # --- observing AWS ------------------------------------------------------------------

    def world(self) -> dict[str, Any]:
        """Everything the account holds that these actions could touch, comparable."""
        volumes = self.ec2.describe_volumes()["Volumes"]
        snapshots = self.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
        addresses = self.ec2.describe_addresses()["Addresses"]
        return {
            "volumes": sorted(
                (
                    v["VolumeId"],
                    v["State"],
                    v["Size"],
                    v["VolumeType"],
                    json.dumps(tag_dict(v.get("Tags")), sort_keys=True),
                )
                for v in volumes
            ),
            "snapshots": sorted(
                (
                    s["SnapshotId"],
                    s["State"],
                    s.get("StorageTier"),
                    json.dumps(tag_dict(s.get("Tags")), sort_keys=True),
                )
                for s in snapshots
            ),
            "addresses": sorted(
                (a.get("AllocationId"), a.get("PublicIp"), a.get("AssociationId") or "")
                for a in addresses
            ),
        }

    def mutating(self) -> list[aws.CallRecord]:
        return self.recorder.mutating()

    def count(self, operation: str) -> int:
        return self.recorder.count(service="ec2", operation=operation)

    # --- seeding ------------------------------------------------------------------------

    def volume(
        self,
        size: int = 50,
        volume_type: str = "gp2",
        tags: dict[str, str] | None = None,
        **extra: Any,
    ) -> str:
        spec = {"TagSpecifications": tags_spec("volume", tags)} if tags else {}
        return self.ec2.create_volume(
            AvailabilityZone=AZ, Size=size, VolumeType=volume_type, **spec, **extra
        )["VolumeId"]

    def instance(self) -> str:
        return self.ec2.run_instances(
            ImageId="ami-12345678", MinCount=1, MaxCount=1, Placement={"AvailabilityZone": AZ}
        )["Instances"][0]["InstanceId"]

    def snapshots_tagged(self, key: str, value: str) -> list[dict[str, Any]]:
        return self.ec2.describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": f"tag:{key}", "Values": [value]}]
        )["Snapshots"]

    def volume_exists(self, volume_id: str) -> bool:
        return any(v["VolumeId"] == volume_id for v in self.ec2.describe_volumes()["Volumes"])
