"""Sessions into the scanned accounts: STS AssumeRole with ExternalId, self-refreshing.

Called by the scan run (one :class:`AccountSession` per account and run, shared by every region and
detector thread) and by the cleanup executor (``purpose=Purpose.CLEANUP``). Nothing else in
CloudSweep builds boto3 sessions or clients.

How a session is built:

- the base credentials come from boto3's default chain (environment, profile, or a Kubernetes
  service account's web identity: ``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE``);
- the account's role is assumed with its ExternalId and a session name ``cloudsweep-<account>-<purpose>``
  that shows up in the customer's CloudTrail;
- scan sessions carry a read-only session policy, so a scan cannot write even where the customer's
  role would allow it; cleanup sessions do not;
- credentials are ``DeferredRefreshableCredentials``: botocore calls AssumeRole again before they
  expire, so hour-long scans keep working;
- before the first client is handed out, ``GetCallerIdentity`` must return the declared account;
- with ``require_external_id=True`` (every scan and cleanup session, unless the installation allows
  shared accounts) the role must also *refuse* an AssumeRole without the ExternalId: one probe,
  whose session policy allows nothing but ``sts:GetCallerIdentity``; a role that lets it through
  raises ``ExternalIdNotEnforced`` before any call beyond STS;
- every client uses botocore's *standard* retry mode (bounded attempts, jittered exponential
  back-off; *adaptive* mode would share one client-side rate budget, which a multi-tenant operator
  must not do) and a connection pool sized for the scan's concurrency;
- ``Settings.aws_endpoint_url`` (or ``AWS_ENDPOINT_URL``) sends every call elsewhere: that is how
  tests and the demo reach moto;
- what holds no tenant's data is built once per process (``shared``): botocore's data loader (the
  parsed service models, endpoints and partitions) and the operator's own base credentials. A
  fresh boto3 session re-parsed them for every connection check (0.07 CPU-s a session, two a
  check: issue 16). Each account still gets its own botocore sessions, event hooks, clients and
  assumed-role credentials: nothing of one account's session is shared with another's.
"""

from __future__ import annotations

import enum
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import boto3
import botocore.session
from botocore import exceptions as boto_exc
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials

from cloudsweep import __version__, domain, redaction
from cloudsweep.aws import errors, shared
from cloudsweep.aws.budget import RequestBudget
from cloudsweep.aws.budget import attach as attach_budget
from cloudsweep.aws.recorder import CallRecorder
from cloudsweep.settings import Settings, get_settings

DEFAULT_DURATION_SECONDS = 3600
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 60
READ_ONLY_POLICY_NAME = "ReadOnlyAccess"

# Where to reach STS in each partition (any region of the partition would do).
_PARTITION_HOME_REGION = {"aws": "us-east-1", "aws-cn": "cn-north-1", "aws-us-gov": "us-gov-west-1"}


class Purpose(enum.StrEnum):
    SCAN = "scan"  # read-only session policy attached
    CLEANUP = "cleanup"  # the role's own permissions


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    account: str
    arn: str
    user_id: str


class ScanSession(Protocol):
    """What a scan needs of a session: an :class:`AccountSession`, or an ``AmbientSession``."""

    account_id: str
    partition: str

    def verify(self) -> CallerIdentity: ...

    def client(self, service: str, region: str) -> Any: ...


def endpoint_url(settings: Settings | None = None) -> str | None:
    """The endpoint every AWS call goes to, or ``None`` for AWS itself."""
    settings = settings or get_settings()
    return settings.aws_endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None


def client_config(settings: Settings | None = None, concurrency: int | None = None) -> Config:
    """botocore configuration shared by every CloudSweep client."""
    settings = settings or get_settings()
    pool = max(10, concurrency or settings.scan_concurrency)
    return Config(
        retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts},
        max_pool_connections=pool,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        user_agent_extra=f"cloudsweep/{__version__}",
    )


def read_only_policy(permissions: Sequence[str]) -> str:
    """An inline session policy allowing exactly ``permissions`` (plus GetCallerIdentity)."""
    actions = sorted({*permissions, "sts:GetCallerIdentity"})
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        },
        separators=(",", ":"),
    )


class AccountSession:
    """Credentials and clients for one AWS account, through its IAM role.

    Example::

        session = AccountSession("111111111111", "arn:aws:iam::111111111111:role/cloudsweep",
                                 external_id="org-7f3a")
        session.verify()            # AssumeRole + GetCallerIdentity, or AssumeRoleFailed
        ec2 = session.client("ec2", "eu-west-1")

    ``scan_permissions``: with ``Purpose.SCAN``, an inline session policy allowing only these
    actions; without it the AWS managed ``ReadOnlyAccess`` policy is the session policy.
    ``client()`` verifies the identity first, so no call beyond STS is made for a session whose
    credentials belong to another account.

    Thread-safe: one instance is shared by all region and detector threads of a scan.
    """

    def __init__(
        self,
        account_id: str,
        role_arn: str,
        *,
        external_id: str | None,
        purpose: Purpose = Purpose.SCAN,
        scan_permissions: Sequence[str] | None = None,
        base_session: boto3.Session | None = None,
        settings: Settings | None = None,
        recorder: CallRecorder | None = None,
        concurrency: int | None = None,
        duration_seconds: int = DEFAULT_DURATION_SECONDS,
        budget: RequestBudget | None = None,
        require_external_id: bool = False,
    ) -> None:
        self.require_external_id = require_external_id
        self.account_id = domain.validate_account_id(account_id)
        domain.validate_role_for_account(role_arn, self.account_id)
        self.role_arn = role_arn
        self.partition = role_arn.split(":", 2)[1]
        self.external_id = external_id
        redaction.remember(external_id)  # a secret with no telling shape: masked in every log
        self.purpose = purpose
        self.session_name = f"cloudsweep-{self.account_id}-{purpose.value}"
        self._scan_permissions = tuple(scan_permissions) if scan_permissions else None
        self._settings = settings or get_settings()
        self._endpoint = endpoint_url(self._settings)
        self._config = client_config(self._settings, concurrency)
        self._duration = duration_seconds
        self._home_region = _PARTITION_HOME_REGION[self.partition]

        # The operator's own identity: the process's shared base session unless one is given.
        # Its hooks are never touched (shared by every account): the recorder is attached to
        # this session's own STS client, made from it (see _sts).
        self._given_base = base_session
        self._recorder = recorder
        self._base_sts: Any = None

        core: Any = botocore.session.Session()
        core._credentials = DeferredRefreshableCredentials(  # botocore's documented pattern
            refresh_using=self._assume_role, method="sts-assume-role"
        )
        if recorder is not None:
            recorder.attach(core, caller_account=self.account_id)
        if budget is not None:
            attach_budget(core, budget, self.account_id)
        self._session: Any = shared.boto3_session(core)

        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}
        self._identity: CallerIdentity | None = None
        self._refused: errors.AwsError | None = None
        self.assume_role_count = 0

    # --- credentials ---------------------------------------------------------------------

    def assume_role_params(self) -> dict[str, Any]:
        """The AssumeRole request this session makes (without secrets; shown in logs and tests)."""
        params: dict[str, Any] = {
            "RoleArn": self.role_arn,
            "RoleSessionName": self.session_name,
            "DurationSeconds": self._duration,
        }
        if self.external_id:
            params["ExternalId"] = self.external_id
        if self.purpose is Purpose.SCAN:
            if self._scan_permissions:
                params["Policy"] = read_only_policy(self._scan_permissions)
            else:
                arn = f"arn:{self.partition}:iam::aws:policy/{READ_ONLY_POLICY_NAME}"
                params["PolicyArns"] = [{"arn": arn}]
        return params

    def _sts(self) -> Any:
        if self._base_sts is None:
            # Keyword arguments, not a dict of string keys: "config" as a string constant would
            # read as a call of the AWS Config service to the IAM check (tests/deploy/aws_calls.py).
            options = dict(
                region_name=self._home_region,
                endpoint_url=self._endpoint,
                config=self._config,
            )
            given: Any = self._given_base
            if given is not None:
                client = given.client("sts", **options)
            else:
                client = shared.base_client("sts", **options)
            if self._recorder is not None:
                self._recorder.attach(client.meta, caller_account=None)
            self._base_sts = client
        return self._base_sts

    def _assume_role(self) -> dict[str, str]:
        """Refresh callback of the credentials: one AssumeRole call."""
        try:
            response = self._sts().assume_role(**self.assume_role_params())
        except (boto_exc.ClientError, boto_exc.BotoCoreError) as exc:
            raise _assume_role_failed(self.role_arn, self.account_id, exc) from exc
        self.assume_role_count += 1
        creds = response["Credentials"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    def verify(self) -> CallerIdentity:
        """Assume the role and check ``GetCallerIdentity`` names the declared account.

        Raises :class:`errors.AssumeRoleFailed` or :class:`errors.IdentityMismatch`; a refused
        session stays refused (every later ``client()`` raises the same error).
        """
        with self._lock:
            if self._refused is not None:
                raise self._refused
            if self._identity is not None:
                return self._identity
            try:
                self._identity = self._check_identity()
            except errors.AwsError as exc:
                if not exc.kind.retryable:
                    self._refused = exc
                raise
            return self._identity

    def _check_identity(self) -> CallerIdentity:
        # AssumeRole first, on its own: its failure is the clearer error, and it must come before
        # any call made with the account's credentials.
        self._session.get_credentials().get_frozen_credentials()
        sts = self._new_client("sts", self._home_region)
        with errors.translated("sts", "GetCallerIdentity", self._home_region):
            response = sts.get_caller_identity()
        identity = CallerIdentity(
            account=str(response["Account"]), arn=response["Arn"], user_id=response["UserId"]
        )
        if identity.account != self.account_id:
            raise errors.IdentityMismatch(
                declared=self.account_id, actual=identity.account, caller_arn=identity.arn
            )
        if self.require_external_id and self.assumable_without_external_id():
            raise errors.ExternalIdNotEnforced(
                role_arn=self.role_arn, external_id_configured=bool(self.external_id)
            )
        return identity

    def assumable_without_external_id(self) -> bool:
        """Does the role let CloudSweep in without the ExternalId (confused-deputy guard off)?

        Without a configured ExternalId the session itself got in without one: True, no call.
        Otherwise one AssumeRole without it, whose session policy allows only GetCallerIdentity
        (the probe's credentials are never used). AccessDenied means the guard holds; any other
        failure (throttling, STS down) is raised: an unknown answer is not a "no".
        """
        if not self.external_id:
            return True
        params = {
            "RoleArn": self.role_arn,
            "RoleSessionName": f"cloudsweep-{self.account_id}-probe",
            "DurationSeconds": 900,
            "Policy": read_only_policy(()),
        }
        try:
            self._sts().assume_role(**params)
        except (boto_exc.ClientError, boto_exc.BotoCoreError) as exc:
            classified = errors.classify(exc, service="sts", operation="AssumeRole")
            if classified.kind is errors.ErrorKind.ACCESS_DENIED:
                return False
            raise _assume_role_failed(self.role_arn, self.account_id, exc) from exc
        return True

    # --- clients -------------------------------------------------------------------------

    @property
    def events(self) -> Any:
        """The event system of the assumed-role session (tests inject faults through it)."""
        return self._session.events

    def client(self, service: str, region: str) -> Any:
        """A client for ``service`` in ``region``, created once and shared by all threads."""
        self.verify()
        key = (service, region)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._new_client(service, region)
            return client

    def _new_client(self, service: str, region: str) -> Any:
        return self._session.client(
            service, region_name=region, endpoint_url=self._endpoint, config=self._config
        )

    def __repr__(self) -> str:
        return f"AccountSession({self.account_id}, {self.role_arn}, purpose={self.purpose.value})"


def connect(
    account_id: str,
    role_arn: str,
    *,
    external_id: str | None,
    purpose: Purpose = Purpose.SCAN,
    **kwargs: Any,
) -> AccountSession:
    """Build an :class:`AccountSession` and verify it; the usual way in."""
    session = AccountSession(
        account_id, role_arn, external_id=external_id, purpose=purpose, **kwargs
    )
    session.verify()
    return session


_ASSUME_ROLE_REASONS: dict[str, tuple[str, str]] = {
    "AccessDenied": (
        "access denied",
        "check that the role exists in account {account}, that its trust policy allows "
        "CloudSweep's principal to call sts:AssumeRole, and that the ExternalId configured for "
        "this account matches the trust policy's sts:ExternalId condition (AWS reports a wrong "
        "ExternalId, an unknown role and an unknown account all as AccessDenied)",
    ),
    "InvalidClientTokenId": (
        "CloudSweep's own credentials are not valid",
        "check the operator's AWS credentials (service account web identity, profile or "
        "AWS_* environment)",
    ),
    "ExpiredToken": (
        "CloudSweep's own credentials have expired",
        "renew the operator's base credentials (web identity token, profile or environment)",
    ),
    "RegionDisabledException": (
        "STS is not activated in the region used",
        "activate STS for the region in the account's IAM settings",
    ),
    "MalformedPolicyDocument": (
        "the read-only session policy was refused",
        "report this as a CloudSweep bug; the session policy is built by CloudSweep",
    ),
    "PackedPolicyTooLarge": (
        "the read-only session policy is too large",
        "report this as a CloudSweep bug; the session policy is built by CloudSweep",
    ),
    "ValidationError": (
        "STS refused the request",
        "check the role ARN and that the role's maximum session duration is at least one hour",
    ),
}
_ASSUME_ROLE_REASONS["UnrecognizedClientException"] = _ASSUME_ROLE_REASONS["InvalidClientTokenId"]
_ASSUME_ROLE_REASONS["SignatureDoesNotMatch"] = _ASSUME_ROLE_REASONS["InvalidClientTokenId"]


def _assume_role_failed(
    role_arn: str, account_id: str, exc: BaseException
) -> errors.AssumeRoleFailed:
    classified = errors.classify(exc, service="sts", operation="AssumeRole")
    if isinstance(exc, boto_exc.NoCredentialsError):
        reason, fix = (
            "CloudSweep has no base AWS credentials",
            "give the operator credentials: a service account with a web identity (IRSA), a "
            "profile, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        )
    elif classified.code in _ASSUME_ROLE_REASONS:
        reason, fix = _ASSUME_ROLE_REASONS[classified.code]
        reason = f"{reason}: {classified.message}" if classified.message else reason
    elif isinstance(exc, boto_exc.ConnectionError | boto_exc.HTTPClientError):
        # Said for whoever reads it, a person at the CLI or an object's status: no promise
        # of an automatic retry, which only the operator makes.
        reason, fix = (
            f"could not reach STS ({classified.message})",
            "check the network path to STS (proxy, firewall, CLOUDSWEEP_AWS_ENDPOINT_URL); "
            "if it is a passing outage, try again later",
        )
    elif classified.kind.retryable:
        reason, fix = (
            f"STS is unavailable or throttling ({classified.message})",
            "nothing to change: a temporary failure, try again later",
        )
    else:
        reason, fix = classified.message, "check the role ARN and its trust policy"
    return errors.AssumeRoleFailed(
        role_arn=role_arn,
        code=classified.code,
        reason=reason,
        fix=fix.format(account=account_id),
        kind=classified.kind,
    )
