"""Seeding helpers for the EC2 instance and NAT gateway cleanup tests (not a conftest).

Built on :class:`tests.cleanup.ebs_helpers.Harness` (the scanned account, the cleanup session,
the call recorder); adds the seeder's Auto Scaling client and a few world builders.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3

from cloudsweep.domain import utcnow

from .ebs_helpers import ACCOUNT, AZ, REGION, Harness, tags_spec


def seeder_client(h: Harness, service: str) -> Any:
    """A client of the scanned account for ``service`` (moto files resources by role)."""
    sts = boto3.client("sts", region_name=REGION, endpoint_url=h.endpoint)
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/seeder", RoleSessionName="seeder"
    )["Credentials"]
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=h.endpoint,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def run_instance(
    h: Harness, instance_type: str = "t3.micro", tags: dict[str, str] | None = None, **extra: Any
) -> str:
    spec = {"TagSpecifications": tags_spec("instance", tags)} if tags else {}
    return h.ec2.run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        InstanceType=instance_type,
        Placement={"AvailabilityZone": AZ},
        **spec,
        **extra,
    )["Instances"][0]["InstanceId"]


def state(h: Harness, instance_id: str) -> str:
    reservations = h.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return str(reservations[0]["Instances"][0]["State"]["Name"])


def instance(h: Harness, instance_id: str) -> dict[str, Any]:
    reservations = h.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return dict(reservations[0]["Instances"][0])


def datapoint(
    h: Harness,
    namespace: str,
    metric: str,
    dimension: tuple[str, str],
    value: float,
    hours_ago: float,
) -> None:
    """One CloudWatch datapoint of the account, ``hours_ago`` before now (the re-checks' clock)."""
    name, dimension_value = dimension
    seeder_client(h, "cloudwatch").put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [{"Name": name, "Value": dimension_value}],
                "Value": value,
                "Timestamp": utcnow() - timedelta(hours=hours_ago),
            }
        ],
    )
