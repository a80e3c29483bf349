"""AWS error classification: codes to kinds, botocore exceptions to AwsError, once."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from cloudsweep import aws
from cloudsweep.aws.errors import ErrorKind, kind_of_code


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("InvalidVolume.NotFound", ErrorKind.NOT_FOUND),
        ("InvalidAllocationID.NotFound", ErrorKind.NOT_FOUND),
        ("DBInstanceNotFound", ErrorKind.NOT_FOUND),
        ("DBInstanceNotFoundFault", ErrorKind.NOT_FOUND),
        ("LoadBalancerNotFound", ErrorKind.NOT_FOUND),
        ("ResourceNotFoundException", ErrorKind.NOT_FOUND),
        ("NoSuchEntity", ErrorKind.NOT_FOUND),
        ("Throttling", ErrorKind.THROTTLED),
        ("ThrottlingException", ErrorKind.THROTTLED),
        ("RequestLimitExceeded", ErrorKind.THROTTLED),
        ("TooManyRequestsException", ErrorKind.THROTTLED),
        ("AccessDenied", ErrorKind.ACCESS_DENIED),
        ("UnauthorizedOperation", ErrorKind.ACCESS_DENIED),
        ("ExpiredToken", ErrorKind.ACCESS_DENIED),
        ("AuthFailure", ErrorKind.ACCESS_DENIED),
        ("OptInRequired", ErrorKind.REGION_DISABLED),
        ("RegionDisabledException", ErrorKind.REGION_DISABLED),
        ("InternalError", ErrorKind.RECOVERABLE),
        ("ServiceUnavailable", ErrorKind.RECOVERABLE),
        ("InvalidParameterValue", ErrorKind.TERMINAL),
        ("DependencyViolation", ErrorKind.TERMINAL),
    ],
)
def test_codes(code, kind):
    assert kind_of_code(code) is kind


def test_http_5xx_without_known_code_is_recoverable():
    assert kind_of_code("Whatever", 502) is ErrorKind.RECOVERABLE
    assert kind_of_code("Whatever", 400) is ErrorKind.TERMINAL


def test_retryable_kinds():
    assert {k for k in ErrorKind if k.retryable} == {ErrorKind.THROTTLED, ErrorKind.RECOVERABLE}


def test_client_error_is_classified_with_its_context():
    exc = ClientError(
        {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "DescribeLoadBalancers"
    )
    error = aws.classify(
        exc, service="elbv2", operation="DescribeLoadBalancers", region="eu-west-1"
    )
    assert (error.kind, error.code, error.message) == (
        ErrorKind.THROTTLED,
        "Throttling",
        "Rate exceeded",
    )
    assert str(error) == (
        "elbv2:DescribeLoadBalancers in eu-west-1 failed (throttled, Throttling): Rate exceeded"
    )
    assert aws.classify(error, service="x", operation="y") is error


def test_connection_failures_are_recoverable():
    for exc in (
        EndpointConnectionError(endpoint_url="https://ec2.example"),
        ReadTimeoutError(endpoint_url="https://ec2.example"),
    ):
        assert aws.classify(exc, service="ec2", operation="X").kind is ErrorKind.RECOVERABLE


def test_translated_maps_a_real_moto_error(moto_endpoint):
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_endpoint)
    with pytest.raises(aws.AwsError) as caught, aws.translated("ec2", "DeleteVolume", "us-east-1"):
        ec2.delete_volume(VolumeId="vol-0123456789abcdef0")
    assert caught.value.kind is ErrorKind.NOT_FOUND
    assert caught.value.code == "InvalidVolume.NotFound"
    assert isinstance(caught.value.__cause__, ClientError)


def test_translated_leaves_other_exceptions_alone():
    with pytest.raises(KeyError), aws.translated("ec2", "DescribeVolumes"):
        raise KeyError("not an AWS error")


def test_messages_name_the_object_and_the_fix():
    failed = aws.AssumeRoleFailed(
        role_arn="arn:aws:iam::111111111111:role/x",
        code="AccessDenied",
        reason="access denied",
        fix="check the trust policy",
        kind=ErrorKind.ACCESS_DENIED,
    )
    assert str(failed) == (
        "cannot assume role arn:aws:iam::111111111111:role/x: access denied (AccessDenied). "
        "check the trust policy"
    )
    mismatch = aws.IdentityMismatch(
        declared="111111111111", actual="222222222222", caller_arn="arn:aws:sts::222222222222:x"
    )
    assert "222222222222" in str(mismatch) and "111111111111" in str(mismatch)
    assert mismatch.kind is ErrorKind.TERMINAL
