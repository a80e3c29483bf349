"""What every demo seeder uses: the account's clients, the record of what was made, and its verdict.

Called by :mod:`cloudsweep.demo.world` (which runs the seeders region by region) and by the
type-specific seeders (:mod:`cloudsweep.demo.core`, :mod:`cloudsweep.demo.storage`, ...), each of
which receives a :class:`RegionSeed` and records every resource it creates with ``seed.add(...)``.

The demo package is seed data for a local emulated AWS, not a door to AWS: it uses boto3 only
against the moto server the command line, the benchmark or a test started, and the engine never
imports it (import-linter contract "The engine does not import the demo world").
"""

from __future__ import annotations

import enum
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import boto3
import botocore.config
import botocore.exceptions

from cloudsweep.aws import emulator

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_elb import ElasticLoadBalancingClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sts.type_defs import CredentialsTypeDef

DEFAULT_ACCOUNT_ID: Final = "123456789012"
DEMO_REGIONS: Final = ("us-east-1", "eu-west-1")
BULK_REGIONS: Final = ("us-east-1", "us-west-2", "eu-west-1")

SEEDER_ROLE_NAME: Final = "cloudsweep-demo-seeder"
# The role a demo scan assumes, as an AwsAccount would name it.
SCANNER_ROLE_NAME: Final = "CloudSweepScanner"
DEMO_EXTERNAL_ID: Final = "cloudsweep-demo"

PROTECT_TAG: Final = "cloudsweep.io/protect"


class Verdict(enum.StrEnum):
    """What a correct scan concludes about a seeded resource."""

    WASTE = "waste"
    IN_USE = "in-use"
    PROTECTED = "protected"  # waste-shaped, but tagged so that nothing may remove it
    # waste-shaped, but created hours ago (may still be in set-up) or stopped only days ago
    TOO_RECENT = "too-recent"


@dataclass(frozen=True)
class SeededResource:
    """One resource the seeder created, and what a scan should make of it.

    ``resource_id`` is the AWS identifier: volume, snapshot, AMI and instance IDs, the allocation
    ID of an Elastic IP, the ARN of an ELBv2 load balancer, the name of a classic load balancer,
    the identifier of a DB instance.
    """

    region: str
    kind: str  # ebs-volume, ebs-snapshot, elastic-ip, load-balancer, classic-load-balancer, ...
    resource_id: str
    name: str
    category: str  # why it has its verdict: unattached, ami-referenced, no-targets, stopped, ...
    verdict: Verdict
    created_at: datetime
    tags: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, str] = field(default_factory=dict)


# --- credentials ------------------------------------------------------------------------------


class Account:
    """boto3 clients for one account, under a role assumed in it; counts the calls made."""

    def __init__(self, endpoint_url: str, account_id: str) -> None:
        self.endpoint_url = endpoint_url
        self.account_id = account_id
        self.calls = 0
        self._lock = threading.Lock()
        base = self._session(
            access_key_id=emulator.ACCESS_KEY_ID, secret_access_key=emulator.SECRET_ACCESS_KEY
        )
        sts = base.client("sts", endpoint_url=endpoint_url, config=_CONFIG)
        seeder_arn = role_arn(account_id, SEEDER_ROLE_NAME)
        # moto lets a role be assumed before it exists; these first credentials are only used to
        # create the roles in the account, so the seeding itself runs under a role that exists.
        bootstrap = sts.assume_role(RoleArn=seeder_arn, RoleSessionName="cloudsweep-bootstrap")
        iam: Any = self._assumed(bootstrap["Credentials"]).client(
            "iam", endpoint_url=endpoint_url, config=_CONFIG
        )
        _ensure_role(iam, SEEDER_ROLE_NAME, _trust_policy(None))
        _ensure_role(iam, SCANNER_ROLE_NAME, _trust_policy(DEMO_EXTERNAL_ID))
        seeding = sts.assume_role(RoleArn=seeder_arn, RoleSessionName="cloudsweep-seed")
        self.session = self._assumed(seeding["Credentials"])
        identity = self.session.client("sts", endpoint_url=endpoint_url, config=_CONFIG)
        actual = identity.get_caller_identity()["Account"]
        if actual != account_id:
            # moto's MOTO_ACCOUNT_ID variable overrides the credentials' account
            raise RuntimeError(
                f"the emulated AWS at {endpoint_url} put the role of account {account_id} in "
                f"account {actual}; unset MOTO_ACCOUNT_ID so the credentials choose the account"
            )
        # the two role creations, two AssumeRole calls and the identity check above
        self.calls = 5
        self.session.events.register("before-call", self._count)

    def _count(self, **_: Any) -> None:
        with self._lock:
            self.calls += 1

    @staticmethod
    def _session(
        *, access_key_id: str, secret_access_key: str, session_token: str | None = None
    ) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name="us-east-1",
        )

    def _assumed(self, credentials: CredentialsTypeDef) -> boto3.session.Session:
        return self._session(
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials["SessionToken"],
        )

    def ec2(self, region: str) -> EC2Client:
        return self.session.client(
            "ec2", region_name=region, endpoint_url=self.endpoint_url, config=_CONFIG
        )

    def elbv2(self, region: str) -> ElasticLoadBalancingv2Client:
        return self.session.client(
            "elbv2", region_name=region, endpoint_url=self.endpoint_url, config=_CONFIG
        )

    def elb(self, region: str) -> ElasticLoadBalancingClient:
        return self.session.client(
            "elb", region_name=region, endpoint_url=self.endpoint_url, config=_CONFIG
        )

    def rds(self, region: str) -> RDSClient:
        return self.session.client(
            "rds", region_name=region, endpoint_url=self.endpoint_url, config=_CONFIG
        )

    def cloudwatch(self, region: str) -> CloudWatchClient:
        return self.session.client(
            "cloudwatch", region_name=region, endpoint_url=self.endpoint_url, config=_CONFIG
        )

    def logs(self, region: str) -> CloudWatchLogsClient:
        return self.session.client(
            "logs", region_name=region, endpoint_url=self.endpoint_url, config=_CONFIG
        )

    def s3(self, region: str) -> S3Client:
        return self.session.client(
            "s3", region_name=region, endpoint_url=self.endpoint_url, config=_CONFIG
        )

    def autoscaling(self, region: str) -> AutoScalingClient:
        return self.session.client(
            "autoscaling", region_name=region, endpoint_url=self.endpoint_url, config=_CONFIG
        )


# A refused call against the emulator is a seeding bug: fail at once rather than retry.
_CONFIG = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})


def role_arn(account_id: str, name: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{name}"


def _trust_policy(external_id: str | None) -> str:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:root"},
        "Action": "sts:AssumeRole",
    }
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _ensure_role(iam: Any, name: str, trust_policy: str) -> None:
    try:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_policy)
    except botocore.exceptions.ClientError as error:
        # Seeding twice into one account (the demo world and then a bulk world) reuses the roles.
        if error.response.get("Error", {}).get("Code") != "EntityAlreadyExists":
            raise


def tags_of(tags: Mapping[str, str]) -> list[Any]:
    # Any: each service's stubs declare their own (identical) TagTypeDef.
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def spec(resource_type: str, tags: Mapping[str, str]) -> list[Any]:
    return [{"ResourceType": resource_type, "Tags": tags_of(tags)}]


DAY: Final = timedelta(days=1)


class RegionSeed:
    """Seeds one region of the demo world and records what it made, with its intended age."""

    def __init__(self, account: Account, region: str, index: int, now: datetime) -> None:
        self.account = account
        self.region = region
        self.now = now
        # Region-specific names read better in the demo's table and keep IDs apart in tests.
        self.suffix = "" if index == 0 else f"-{region.split('-')[0]}{index}"
        self.resources: list[SeededResource] = []
        # Made by the EC2 step, used by the load balancer, storage and compute steps.
        self.subnets: list[Any] = []
        self.instances: dict[str, str] = {}
        # The AMI the EC2 step's instances run: the compute step launches from it too, so the
        # world holds no base image (and its snapshot) that only exists to launch from.
        self.base_image: str | None = None

    def labels(self, name: str, team: str, env: str, **extra: str) -> dict[str, str]:
        return {"Name": name + self.suffix, "team": team, "env": env, **extra}

    def add(
        self,
        kind: str,
        resource_id: str,
        tags: Mapping[str, str],
        category: str,
        verdict: Verdict,
        age: timedelta,
        **attributes: str,
    ) -> None:
        self.resources.append(
            SeededResource(
                region=self.region,
                kind=kind,
                resource_id=resource_id,
                name=tags["Name"],
                category=category,
                verdict=verdict,
                created_at=self.now - age,
                tags=dict(tags),
                attributes=attributes,
            )
        )
