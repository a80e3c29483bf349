"""AccountSession against moto over HTTP.

moto's default mode does not check trust policies, ExternalIds or whether a role exists: any
AssumeRole succeeds and returns credentials that moto maps to the role's account. So these tests
prove what CloudSweep *sends* (ExternalId, session name, session policy; recorded at botocore's
event layer) and what it does with STS's answers. The refusals STS would give (AccessDenied, an
identity of another account) are injected with botocore event handlers on the session, as
SAFETY-TESTS.md prescribes, not by editing application code. moto's IAM access-control mode
(INITIAL_NO_AUTH_ACTION_COUNT) is process-wide for the shared server and is not used here.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from types import SimpleNamespace

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from cloudsweep import aws
from cloudsweep.aws import session as aws_session
from cloudsweep.domain import InvalidInput
from cloudsweep.settings import Settings

ACCOUNT = "111111111111"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/cloudsweep-scan"
EXTERNAL_ID = "org-acme-5d1e"
REGION = "eu-west-1"


def _session(endpoint, recorder, **kwargs):
    kwargs.setdefault("external_id", EXTERNAL_ID)
    kwargs.setdefault("settings", Settings(aws_endpoint_url=endpoint))
    return aws.AccountSession(
        ACCOUNT, kwargs.pop("role_arn", ROLE_ARN), recorder=recorder, **kwargs
    )


@pytest.fixture
def recorder():
    return aws.CallRecorder()


def test_assumes_the_role_with_external_id_and_read_only_policy(moto_endpoint, recorder):
    session = _session(moto_endpoint, recorder)

    identity = session.verify()

    assert identity.account == ACCOUNT
    assert identity.arn.startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/cloudsweep-scan/")
    (assume,) = recorder.calls(operation="AssumeRole")
    assert assume.caller_account is None  # made with the base credentials
    assert assume.params["RoleArn"] == ROLE_ARN
    assert assume.params["ExternalId"] == EXTERNAL_ID
    assert assume.params["RoleSessionName"] == f"cloudsweep-{ACCOUNT}-scan"
    assert assume.params["PolicyArns"] == [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}]
    (whoami,) = recorder.calls(operation="GetCallerIdentity")
    assert whoami.caller_account == ACCOUNT
    assert [r.operation for r in recorder.records] == ["AssumeRole", "GetCallerIdentity"]


def test_sees_the_resources_of_the_declared_account_only(moto_endpoint, recorder):
    default_ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_endpoint)
    default_ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)  # moto's default account
    session = _session(moto_endpoint, recorder)
    ec2 = session.client("ec2", REGION)
    mine = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=2)["VolumeId"]

    listed = [v["VolumeId"] for v in session.client("ec2", REGION).describe_volumes()["Volumes"]]

    assert listed == [mine]
    assert session.client("ec2", REGION) is ec2  # cached, shared
    assert ec2.meta.endpoint_url == moto_endpoint
    assert {r.caller_account for r in recorder.calls(service="ec2")} == {ACCOUNT}


def test_inline_session_policy_from_permissions(moto_endpoint, recorder):
    session = _session(
        moto_endpoint, recorder, scan_permissions=("ec2:DescribeVolumes", "rds:DescribeDBInstances")
    )
    session.verify()

    (assume,) = recorder.calls(operation="AssumeRole")
    assert "PolicyArns" not in assume.params
    policy = json.loads(assume.params["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == [
        "ec2:DescribeVolumes",
        "rds:DescribeDBInstances",
        "sts:GetCallerIdentity",
    ]


def test_cleanup_session_has_no_session_policy(moto_endpoint, recorder):
    session = _session(moto_endpoint, recorder, purpose=aws.Purpose.CLEANUP)
    session.verify()

    (assume,) = recorder.calls(operation="AssumeRole")
    assert assume.params["RoleSessionName"] == f"cloudsweep-{ACCOUNT}-cleanup"
    assert "PolicyArns" not in assume.params and "Policy" not in assume.params


def test_role_of_another_account_is_refused_before_any_call(moto_endpoint, recorder):
    with pytest.raises(InvalidInput, match="belongs to account 222222222222"):
        _session(moto_endpoint, recorder, role_arn="arn:aws:iam::222222222222:role/cloudsweep")
    assert recorder.records == []


def _fake_identity(account):
    def handler(**_):
        http = SimpleNamespace(status_code=200, headers={})
        return http, {
            "Account": account,
            "Arn": f"arn:aws:sts::{account}:assumed-role/cloudsweep-scan/x",
            "UserId": "AROAFAKE:x",
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }

    return handler


def test_identity_of_another_account_is_refused_before_any_other_call(moto_endpoint, recorder):
    """STS's answer is replaced by a before-call handler: moto always answers the role's account."""
    session = _session(moto_endpoint, recorder)
    session.events.register("before-call.sts.GetCallerIdentity", _fake_identity("999999999999"))

    with pytest.raises(aws.IdentityMismatch) as caught:
        session.client("ec2", REGION)
    with pytest.raises(aws.IdentityMismatch):
        session.client("rds", REGION)  # stays refused

    message = str(caught.value)
    assert "999999999999" in message and ACCOUNT in message and "refusing" in message
    assert {r.service for r in recorder.records} == {"sts"}
    assert [r.operation for r in recorder.records] == ["AssumeRole", "GetCallerIdentity"]


def _deny(code, message):
    def handler(**_):
        raise ClientError({"Error": {"Code": code, "Message": message}}, "AssumeRole")

    return handler


def test_denied_assume_role_is_a_clear_error(moto_endpoint, recorder):
    base = boto3.Session(region_name="us-east-1")
    base.events.register(
        "before-call.sts.AssumeRole",
        _deny("AccessDenied", "not authorized to perform: sts:AssumeRole"),
    )
    session = _session(moto_endpoint, recorder, base_session=base)

    with pytest.raises(aws.AssumeRoleFailed) as caught:
        session.client("ec2", REGION)

    error = caught.value
    assert error.kind is aws.ErrorKind.ACCESS_DENIED
    assert error.role_arn == ROLE_ARN
    message = str(error)
    assert message.startswith(f"cannot assume role {ROLE_ARN}: access denied")
    assert "ExternalId" in message and "trust policy" in message
    assert "Traceback" not in message
    assert recorder.count(service="ec2") == 0
    assert recorder.count(operation="GetCallerIdentity") == 0


def test_invalid_base_credentials_are_named(moto_endpoint, recorder):
    base = boto3.Session(region_name="us-east-1")
    base.events.register(
        "before-call.sts.AssumeRole", _deny("InvalidClientTokenId", "token is not valid")
    )
    session = _session(moto_endpoint, recorder, base_session=base)

    with pytest.raises(aws.AssumeRoleFailed, match="CloudSweep's own credentials"):
        session.verify()


def test_credentials_refresh_themselves_before_expiry(moto_endpoint, recorder):
    """With 15-minute credentials, botocore's advisory refresh window (15 minutes before expiry)
    is reached at once, so every use refreshes: proof that refresh goes through AssumeRole."""
    session = _session(moto_endpoint, recorder, duration_seconds=900)
    ec2 = session.client("ec2", REGION)
    before = recorder.count(operation="AssumeRole")

    ec2.describe_volumes()
    ec2.describe_volumes()

    assert recorder.count(operation="AssumeRole") > before
    assert session.assume_role_count == recorder.count(operation="AssumeRole")
    assert all(
        r.params["ExternalId"] == EXTERNAL_ID for r in recorder.calls(operation="AssumeRole")
    )


def test_client_configuration(moto_endpoint, recorder):
    settings = Settings(aws_endpoint_url=moto_endpoint, aws_max_attempts=4, scan_concurrency=32)
    session = _session(moto_endpoint, recorder, settings=settings)
    config = session.client("rds", REGION).meta.config

    assert config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert config.max_pool_connections == 32
    assert config.connect_timeout and config.read_timeout


def test_aws_endpoint_url_environment_redirects_calls(moto_endpoint, recorder, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    session = _session(moto_endpoint, recorder, settings=Settings(aws_endpoint_url=None))

    assert session.client("ec2", REGION).meta.endpoint_url == moto_endpoint


def test_one_verification_and_one_client_across_threads(moto_endpoint, recorder):
    session = _session(moto_endpoint, recorder)
    clients = []

    def use():
        clients.append(session.client("ec2", REGION))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(c) for c in clients}) == 1
    assert recorder.count(operation="GetCallerIdentity") == 1


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_):
        yield self._body


def test_throttling_is_retried_a_bounded_number_of_times(moto_endpoint, recorder):
    """A before-send handler answers every attempt with RequestLimitExceeded: botocore's standard
    mode retries (with jittered back-off) exactly up to aws_max_attempts, then we classify it."""
    settings = Settings(aws_endpoint_url=moto_endpoint, aws_max_attempts=2)
    session = _session(moto_endpoint, recorder, settings=settings)
    ec2 = session.client("ec2", REGION)
    attempts = []
    body = (
        b"<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
        b"<Message>Request limit exceeded.</Message></Error></Errors>"
        b"<RequestID>r-1</RequestID></Response>"
    )

    def throttle(request, **_):
        attempts.append(request.url)
        return AWSResponse(request.url, 503, {}, _Raw(body))

    ec2.meta.events.register("before-send.ec2.DescribeVolumes", throttle)

    with pytest.raises(aws.AwsError) as caught, aws.translated("ec2", "DescribeVolumes", REGION):
        ec2.describe_volumes()

    assert caught.value.kind is aws.ErrorKind.THROTTLED
    assert len(attempts) == 2
    (call,) = recorder.calls(operation="DescribeVolumes")
    assert call.outcome == "error" and call.error_code == "RequestLimitExceeded"
    assert call.retries == 1


# --- the ExternalId probe: a role that lets CloudSweep in without it is refused ----------------
# The tests' moto sits behind an enforcing STS (tests/sts_gate.py): a role requires an ExternalId
# unless the test puts it in ``sts.lax_roles`` (a trust policy without the condition).


def test_a_role_that_ignores_the_external_id_is_refused_before_any_call_beyond_sts(
    moto_endpoint, recorder, sts
):
    sts.lax_roles.add(ROLE_ARN)
    session = _session(
        moto_endpoint, recorder, require_external_id=True, purpose=aws.Purpose.CLEANUP
    )

    with pytest.raises(aws.ExternalIdNotEnforced) as caught:
        session.client("ec2", REGION)

    first, probe = recorder.calls(operation="AssumeRole")
    assert first.params["ExternalId"] == EXTERNAL_ID
    assert "ExternalId" not in probe.params
    assert probe.params["RoleArn"] == ROLE_ARN
    assert probe.params["RoleSessionName"] == f"cloudsweep-{ACCOUNT}-probe"
    assert probe.params["DurationSeconds"] == 900
    # The probe's credentials may do nothing but say who they are.
    assert json.loads(probe.params["Policy"])["Statement"] == [
        {"Effect": "Allow", "Action": ["sts:GetCallerIdentity"], "Resource": "*"}
    ]
    assert recorder.count(service="ec2") == 0
    message = str(caught.value)
    assert message.startswith(f"refusing to use {ROLE_ARN}: it can be assumed without the Extern")
    assert "status.externalId" in message  # the account has one: the fix is the trust policy
    # A refused session stays refused, without asking STS again.
    calls = len(recorder.records)
    with pytest.raises(aws.ExternalIdNotEnforced):
        session.verify()
    assert len(recorder.records) == calls


def test_a_role_that_enforces_the_external_id_is_used(moto_endpoint, recorder, sts):
    session = _session(moto_endpoint, recorder, require_external_id=True)

    assert session.verify().account == ACCOUNT
    session.client("ec2", REGION).describe_volumes()

    assumed = [r for r in sts.requests if r.action == "AssumeRole"]
    assert [
        (r.params.get("ExternalId"), r.params["RoleSessionName"], r.refused) for r in assumed
    ] == [
        (EXTERNAL_ID, f"cloudsweep-{ACCOUNT}-scan", False),
        (None, f"cloudsweep-{ACCOUNT}-probe", True),
    ]
    assert session.assume_role_count == 1  # the denied probe hands out nothing


def test_without_an_external_id_the_role_is_refused_without_a_probe(moto_endpoint, recorder, sts):
    sts.lax_roles.add(ROLE_ARN)
    session = _session(moto_endpoint, recorder, external_id=None, require_external_id=True)

    with pytest.raises(aws.ExternalIdNotEnforced) as caught:
        session.verify()

    (assume,) = recorder.calls(operation="AssumeRole")
    assert "ExternalId" not in assume.params
    assert "give the account an ExternalId" in str(caught.value)


def test_a_probe_that_fails_otherwise_is_not_taken_as_a_no(moto_endpoint, recorder):
    base = boto3.Session(region_name="us-east-1")
    answers = iter(["pass", "Throttling", "AccessDenied"])

    def flaky(**_):
        code = next(answers)
        if code != "pass":
            raise ClientError({"Error": {"Code": code, "Message": code}}, "AssumeRole")

    base.events.register("before-call.sts.AssumeRole", flaky)
    session = _session(moto_endpoint, recorder, base_session=base, require_external_id=True)

    with pytest.raises(aws.AssumeRoleFailed) as caught:
        session.verify()
    assert caught.value.kind.retryable  # an unknown answer: try again later, not "refused"
    assert recorder.count(service="ec2") == 0
    # Not remembered as a refusal: the next verification asks again, and passes.
    assert session.verify().account == ACCOUNT


def test_without_the_requirement_no_probe_is_made(moto_endpoint, recorder):
    session = _session(moto_endpoint, recorder)
    session.verify()
    assert recorder.count(operation="AssumeRole") == 1


@pytest.mark.parametrize(
    ("code", "reason", "fix"),
    [
        ("ExpiredToken", "CloudSweep's own credentials have expired", "renew the operator's"),
        ("RegionDisabledException", "STS is not activated in the region used", "activate STS"),
        ("MalformedPolicyDocument", "the read-only session policy was refused", "report this"),
        ("PackedPolicyTooLarge", "the read-only session policy is too large", "report this"),
        ("ValidationError", "STS refused the request", "check the role ARN and that the role's"),
        ("UnrecognizedClientException", "CloudSweep's own credentials are not valid", "check"),
        ("SignatureDoesNotMatch", "CloudSweep's own credentials are not valid", "check the op"),
        ("Throttling", "STS is unavailable or throttling (Throttling)", "nothing to change"),
        ("SomethingNew", "SomethingNew", "check the role ARN and its trust policy"),
    ],
)
def test_every_assume_role_failure_says_what_to_fix(moto_endpoint, recorder, code, reason, fix):
    base = boto3.Session(region_name="us-east-1")
    base.events.register("before-call.sts.AssumeRole", _deny(code, code))
    settings = Settings(aws_endpoint_url=moto_endpoint, aws_max_attempts=1)
    session = _session(moto_endpoint, recorder, base_session=base, settings=settings)

    with pytest.raises(aws.AssumeRoleFailed) as caught:
        session.verify()

    error = caught.value
    assert error.reason.startswith(reason), error.reason
    assert error.fix.startswith(fix), error.fix
    assert str(error).startswith(f"cannot assume role {ROLE_ARN}: {error.reason} ({code}). ")


def test_the_access_denied_fix_names_the_account(moto_endpoint, recorder):
    base = boto3.Session(region_name="us-east-1")
    base.events.register("before-call.sts.AssumeRole", _deny("AccessDenied", "denied"))
    session = _session(moto_endpoint, recorder, base_session=base)

    with pytest.raises(aws.AssumeRoleFailed) as caught:
        session.verify()

    assert caught.value.reason == "access denied: denied"
    assert caught.value.fix.startswith(f"check that the role exists in account {ACCOUNT}, ")


@pytest.mark.parametrize(
    ("partition", "region"),
    [("aws", "us-east-1"), ("aws-us-gov", "us-gov-west-1"), ("aws-cn", "cn-north-1")],
)
def test_sts_is_reached_in_the_partitions_home_region(moto_endpoint, recorder, partition, region):
    arn = f"arn:{partition}:iam::{ACCOUNT}:role/cloudsweep-scan"
    session = _session(moto_endpoint, recorder, role_arn=arn)
    with contextlib.suppress(aws.AwsError):  # moto may not serve every partition's STS
        session.verify()
    assume = recorder.calls(operation="AssumeRole")[0]
    assert assume.region == region
    assert assume.params["PolicyArns"] == [
        {"arn": f"arn:{partition}:iam::aws:policy/ReadOnlyAccess"}
    ]


def test_the_probe_policy_is_compact_json_allowing_only_the_identity_call(moto_endpoint, recorder):
    # Session policies count against STS's packed-size limit: no spaces, one statement.
    assert aws.session.read_only_policy(()) == (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Action":["sts:GetCallerIdentity"],"Resource":"*"}]}'
    )


def test_a_failed_probe_names_the_role(moto_endpoint, recorder):
    base = boto3.Session(region_name="us-east-1")
    answers = iter(["pass", "ValidationError"])

    def second_fails(**_):
        code = next(answers)
        if code != "pass":
            raise ClientError({"Error": {"Code": code, "Message": "bad"}}, "AssumeRole")

    base.events.register("before-call.sts.AssumeRole", second_fails)
    session = _session(moto_endpoint, recorder, base_session=base, require_external_id=True)

    with pytest.raises(aws.AssumeRoleFailed) as caught:
        session.verify()
    assert caught.value.role_arn == ROLE_ARN
    assert str(caught.value).startswith(f"cannot assume role {ROLE_ARN}: STS refused the request")


@pytest.mark.parametrize(
    ("failure", "reason", "fix"),
    [
        (
            NoCredentialsError(),
            "CloudSweep has no base AWS credentials",
            "give the operator credentials: a service account with a web identity (IRSA), a "
            "profile, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        ),
        (
            EndpointConnectionError(endpoint_url="https://sts.example"),
            'could not reach STS (Could not connect to the endpoint URL: "https://sts.example")',
            "check the network path to STS (proxy, firewall, CLOUDSWEEP_AWS_ENDPOINT_URL); "
            "if it is a passing outage, try again later",
        ),
    ],
)
def test_no_credentials_and_no_connection_are_told_apart(
    moto_endpoint, recorder, failure, reason, fix
):
    base = boto3.Session(region_name="us-east-1")

    def fail(**_):
        raise failure

    base.events.register("before-call.sts.AssumeRole", fail)
    settings = Settings(aws_endpoint_url=moto_endpoint, aws_max_attempts=1)
    session = _session(moto_endpoint, recorder, base_session=base, settings=settings)

    with pytest.raises(aws.AssumeRoleFailed) as caught:
        session.verify()
    assert (caught.value.reason, caught.value.fix) == (reason, fix)


def test_client_configuration_values(moto_endpoint, recorder):
    from cloudsweep import __version__

    settings = Settings(aws_endpoint_url=moto_endpoint, scan_concurrency=1)
    session = _session(moto_endpoint, recorder, settings=settings)
    config = session.client("ec2", REGION).meta.config

    assert (config.connect_timeout, config.read_timeout) == (10, 60)
    assert config.max_pool_connections == 10  # never fewer, whatever the concurrency
    assert config.user_agent_extra == f"cloudsweep/{__version__}"


def test_the_identity_is_asked_in_the_partitions_home_region(moto_endpoint, recorder):
    arn = f"arn:aws-us-gov:iam::{ACCOUNT}:role/cloudsweep-scan"
    session = _session(moto_endpoint, recorder, role_arn=arn)
    with contextlib.suppress(aws.AwsError):
        session.verify()
    assert {r.region for r in recorder.records} == {"us-gov-west-1"}


# --- what STS sees of the base client, what a failed identity check says, and connect() ---------


def test_assume_role_is_made_with_cloudsweeps_retry_bound_and_user_agent(moto_endpoint, recorder):
    """The base STS client has CloudSweep's configuration too: a throttling STS gets
    ``aws_max_attempts`` attempts in all (not botocore's default of five), and each carries
    CloudSweep's user agent, which the customer's CloudTrail shows for the AssumeRole."""
    from cloudsweep import __version__

    base = boto3.Session(region_name="us-east-1")
    agents = []
    body = (
        b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
        b"<Message>Rate exceeded</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
    )

    def throttle(request, **_):
        agent = request.headers["User-Agent"]
        agents.append(agent.decode() if isinstance(agent, bytes) else agent)
        return AWSResponse(request.url, 400, {}, _Raw(body))

    base.events.register("before-send.sts.AssumeRole", throttle)
    settings = Settings(aws_endpoint_url=moto_endpoint, aws_max_attempts=2)
    session = _session(moto_endpoint, recorder, base_session=base, settings=settings)

    with pytest.raises(aws.AssumeRoleFailed) as caught:
        session.verify()

    assert str(caught.value) == (
        f"cannot assume role {ROLE_ARN}: STS is unavailable or throttling (Rate exceeded) "
        "(Throttling). nothing to change: a temporary failure, try again later"
    )
    assert len(agents) == 2
    assert all(f"cloudsweep/{__version__}" in agent for agent in agents), agents


def test_a_failed_identity_check_names_the_call_and_its_region_and_is_asked_again(
    moto_endpoint, recorder
):
    session = _session(moto_endpoint, recorder)
    answers = iter(["Throttling"])

    def throttled_once(**_):
        code = next(answers, None)
        if code is not None:
            raise ClientError(
                {
                    "Error": {"Code": code, "Message": "Rate exceeded"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                "GetCallerIdentity",
            )

    session.events.register("before-call.sts.GetCallerIdentity", throttled_once)

    with pytest.raises(aws.AwsError) as caught:
        session.client("ec2", REGION)

    assert str(caught.value) == (
        "sts:GetCallerIdentity in us-east-1 failed (throttled, Throttling): Rate exceeded"
    )
    assert recorder.count(service="ec2") == 0
    # A throttled check is not a refusal: the next use asks again, and passes.
    assert session.verify().account == ACCOUNT


def test_connect_returns_a_session_verified_with_its_external_id_and_purpose(
    moto_endpoint, recorder, sts
):
    session = aws.connect(
        ACCOUNT,
        ROLE_ARN,
        external_id=EXTERNAL_ID,
        purpose=aws.Purpose.CLEANUP,
        settings=Settings(aws_endpoint_url=moto_endpoint),
        recorder=recorder,
    )

    # What STS received: one AssumeRole with the ExternalId, for a cleanup, then who-am-I.
    received = [r for r in sts.requests if r.service == "sts"]
    assert [(r.action, r.params.get("ExternalId"), r.refused) for r in received] == [
        ("AssumeRole", EXTERNAL_ID, False),
        ("GetCallerIdentity", None, False),
    ]
    assert received[0].params["RoleSessionName"] == f"cloudsweep-{ACCOUNT}-cleanup"
    assert received[0].params["RoleArn"] == ROLE_ARN
    assert (session.account_id, session.purpose) == (ACCOUNT, aws.Purpose.CLEANUP)
    # Verified already: using it asks STS nothing more.
    session.client("ec2", REGION)
    assert recorder.count(operation="GetCallerIdentity") == 1


def test_an_endpoint_that_never_answers_fails_the_call_at_the_read_timeout(
    recorder: aws.CallRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clients' read timeout is READ_TIMEOUT_SECONDS (shrunk to 1 s to keep this quick; it
    is 60 s, botocore's own default, so only a changed value would show a lost setting)."""
    monkeypatch.setattr(aws_session, "READ_TIMEOUT_SECONDS", 1)
    hang_up = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(10)

        def take_and_never_answer() -> None:
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                with conn:
                    conn.recv(65536)
                    hang_up.wait(8)  # then the connection closes: a different error

        server = threading.Thread(target=take_and_never_answer, daemon=True)
        server.start()
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        settings = Settings(aws_endpoint_url=endpoint, aws_max_attempts=1)
        session = _session(endpoint, recorder, settings=settings)
        try:
            with pytest.raises(aws.AssumeRoleFailed) as caught:
                session.verify()
        finally:
            hang_up.set()
            server.join()

    assert caught.value.reason == (
        f'could not reach STS (Read timeout on endpoint URL: "{endpoint}/")'
    )
