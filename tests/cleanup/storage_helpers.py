"""Helpers for the cleanup tests of the storage types (ebs-gp3-candidate, ami,
cloudwatch-log-group, s3-incomplete-multipart): the EBS ``Harness`` with seeder clients of any
service, the event emitter of any cleanup client, and a context whose clock is moved.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import boto3

from cloudsweep.cleanup.base import ActionContext

from .ebs_helpers import ACCOUNT, AZ, REGION, Harness

__all__ = ["ACCOUNT", "AZ", "REGION", "StorageHarness", "at"]


class StorageHarness(Harness):
    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        sts = boto3.client("sts", region_name=REGION, endpoint_url=endpoint)
        creds = sts.assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/seeder", RoleSessionName="seeder"
        )["Credentials"]
        self._seeder = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=REGION,
        )

    def client(self, service: str) -> Any:
        """A boto3 client of the account, outside the cleanup session: to seed and observe."""
        return self._seeder.client(service, endpoint_url=self.endpoint)

    def events_of(self, service: str) -> Any:
        """The event emitter of the cleanup session's client of ``service``."""
        return self.session.client(service, REGION).meta.events

    def attached_volume(self, volume_type: str = "gp2", size: int = 100, **extra: Any) -> str:
        volume = self.volume(size=size, volume_type=volume_type, **extra)
        self.ec2.attach_volume(VolumeId=volume, InstanceId=self.instance(), Device="/dev/sdf")
        return volume


def at(ctx: ActionContext, when: datetime) -> ActionContext:
    """The same context with its clock at ``when``."""
    return dataclasses.replace(ctx, now=lambda: when)
