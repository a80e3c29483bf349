"""Scans on the user's own credentials: identity first, then read-only, by AWS or by the client.

Against a moto server over HTTP. moto's default credentials (``testing``) are an IAM user, so the
session-policy path (GetFederationToken) applies to them; credentials from AssumeRole are a role
session, where AWS allows no session policy and the client-side guard must hold alone. What moto
received is read from its own state (the volume is still there) and from the recorded calls.
"""

from __future__ import annotations

import json

import boto3
import pytest

from cloudsweep import aws
from cloudsweep.aws import ambient
from cloudsweep.settings import Settings
from tests import sts_gate

MOTO_ACCOUNT = "123456789012"


@pytest.fixture
def settings(moto_endpoint: str) -> Settings:
    return Settings(aws_endpoint_url=moto_endpoint, aws_max_attempts=1)


def _role_session(moto_endpoint: str) -> boto3.Session:
    """Credentials that are a role session, as SSO or an instance profile would give."""
    iam = boto3.client("iam", endpoint_url=moto_endpoint, region_name="us-east-1")
    role = iam.create_role(
        RoleName="developer",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]
    # A person's role, assumed without an ExternalId: no condition in its trust policy.
    sts_gate.GATE.lax_roles.add(role["Arn"])
    sts = boto3.client("sts", endpoint_url=moto_endpoint, region_name="us-east-1")
    creds = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="sso-user")["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def test_user_keys_scan_on_a_federation_token_limited_to_the_scan_permissions(
    settings: Settings,
) -> None:
    recorder = aws.CallRecorder()
    session = ambient.AmbientSession(
        scan_permissions=["ec2:DescribeVolumes"],
        base_session=boto3.Session(),
        settings=settings,
        recorder=recorder,
    )
    identity = session.verify()
    assert identity.account == MOTO_ACCOUNT == session.account_id
    assert session.read_only_mode is ambient.ReadOnlyMode.SESSION_POLICY
    session.client("ec2", "us-east-1").describe_volumes()

    [federation] = [r for r in recorder.records if r.operation == "GetFederationToken"]
    policy = json.loads(federation.params["Policy"])
    assert policy["Statement"][0]["Action"] == ["ec2:DescribeVolumes", "sts:GetCallerIdentity"]
    operations = [r.operation for r in recorder.records]
    assert operations.index("GetCallerIdentity") < operations.index("GetFederationToken")
    assert operations.index("GetFederationToken") < operations.index("DescribeVolumes")


def test_a_role_session_is_guarded_on_the_client_and_no_write_reaches_aws(
    moto_endpoint: str, settings: Settings
) -> None:
    base = _role_session(moto_endpoint)
    ec2 = base.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=10)["VolumeId"]
    recorder = aws.CallRecorder()
    session = ambient.AmbientSession(
        scan_permissions=["ec2:DescribeVolumes"],
        base_session=base,
        settings=settings,
        recorder=recorder,
    )
    session.verify()
    assert session.read_only_mode is ambient.ReadOnlyMode.CLIENT_GUARD
    assert "role session" in session.read_only_reason

    scanned = session.client("ec2", "us-east-1")
    assert [v["VolumeId"] for v in scanned.describe_volumes()["Volumes"]] == [volume]
    with pytest.raises(ambient.MutatingCallRefused, match="read calls only"):
        scanned.delete_volume(VolumeId=volume)

    # AWS's side: the volume is still there; the recorder saw the call built, never answered.
    assert [v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]] == [volume]
    [attempt] = [r for r in recorder.records if r.operation == "DeleteVolume"]
    assert attempt.outcome == "pending" and attempt.http_status is None


def test_a_declared_account_that_the_credentials_do_not_belong_to_is_refused(
    settings: Settings,
) -> None:
    recorder = aws.CallRecorder()
    session = ambient.AmbientSession(
        "210987654321", base_session=boto3.Session(), settings=settings, recorder=recorder
    )
    with pytest.raises(aws.IdentityMismatch, match="declared account 210987654321"):
        session.verify()
    with pytest.raises(aws.IdentityMismatch):
        session.client("ec2", "us-east-1")
    assert [r.operation for r in recorder.records] == ["GetCallerIdentity"]


def test_no_credentials_at_all_is_one_clear_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    session = ambient.AmbientSession(base_session=boto3.Session(), settings=settings)
    with pytest.raises(aws.AwsError, match="no AWS credentials found"):
        session.verify()


def test_cleanups_never_run_on_your_own_credentials(settings: Settings) -> None:
    with pytest.raises(ValueError, match="scans only"):
        ambient.AmbientSession(purpose=aws.Purpose.CLEANUP, settings=settings)
