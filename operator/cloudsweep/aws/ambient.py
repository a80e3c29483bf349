"""Sessions on the credentials the user already has: no role to assume, for ``cloudsweep scan``.

Called by the command line when ``scan`` is given no ``--role-arn`` (and by the scan run through its
session factory). The operator never uses it: in a cluster every account is reached through its
own role and ExternalId.

What a scan on ambient credentials may do is limited twice:

- where AWS allows a session policy on these credentials (an IAM user's long-term keys), the scan
  runs on ``GetFederationToken`` credentials whose session policy allows exactly the detectors'
  read permissions, so AWS itself refuses anything else;
- where it does not (the credentials are already a role session: SSO, an instance or task role,
  a profile with ``role_arn``; or the account's root user, which AWS advises against federating),
  AWS cannot narrow them, and a client-side guard refuses every operation that is not a read
  (``Describe*``, ``List*``, ``Get*``) before it is signed. ``read_only_mode`` says which applies.
"""

from __future__ import annotations

import enum
import re
import threading
from collections.abc import Sequence
from typing import Any

import boto3
import botocore.session
from botocore import exceptions as boto_exc
from botocore.credentials import DeferredRefreshableCredentials

from cloudsweep import domain
from cloudsweep.aws import errors
from cloudsweep.aws.budget import RequestBudget
from cloudsweep.aws.budget import attach as attach_budget
from cloudsweep.aws.recorder import CallRecorder
from cloudsweep.aws.session import (
    _PARTITION_HOME_REGION,
    DEFAULT_DURATION_SECONDS,
    CallerIdentity,
    Purpose,
    client_config,
    endpoint_url,
    read_only_policy,
)
from cloudsweep.settings import Settings, get_settings

# Operations a scan may call: reads only. GetFederationToken and GetCallerIdentity are made on the
# base credentials, before the guard applies.
_READ_OPERATION = re.compile(r"^(Describe|List|Get|Lookup|Search|BatchGet)[A-Z]")
_PRINCIPAL_ARN = re.compile(
    r"^arn:(?P<partition>aws|aws-cn|aws-us-gov):(?P<service>iam|sts)::(?P<account>[0-9]{12}):"
    r"(?P<kind>user|root|assumed-role|federated-user)(?P<rest>.*)$"
)
FEDERATION_NAME = "cloudsweep-scan"


class ReadOnlyMode(enum.StrEnum):
    SESSION_POLICY = "session-policy"  # AWS enforces: GetFederationToken with a session policy
    CLIENT_GUARD = "client-guard"  # CloudSweep refuses non-read operations before signing


class MutatingCallRefused(errors.AwsError):
    """A scan on ambient credentials tried an operation that is not a read."""

    def __init__(self, service: str, operation: str) -> None:
        super().__init__(
            errors.ErrorKind.TERMINAL,
            service=service,
            operation=operation,
            code="MutatingCallRefused",
            message="a scan on your own credentials makes read calls only "
            "(this is a CloudSweep bug; please report it)",
        )


def refuse_non_reads(model: Any, **_: Any) -> None:
    """botocore ``before-call`` handler: only read operations pass."""
    if not _READ_OPERATION.match(model.name):
        raise MutatingCallRefused(model.service_model.service_name, model.name)


class AmbientSession:
    """The account the default credential chain (or ``--profile``) belongs to, scanned read-only.

    Example::

        session = AmbientSession(base_session=boto3.Session(profile_name="dev"),
                                 scan_permissions=["ec2:DescribeVolumes"])
        identity = session.verify()       # GetCallerIdentity, then the read-only credentials
        print(identity.account, identity.arn, session.read_only_mode)
        ec2 = session.client("ec2", "eu-west-1")

    ``account_id``, when given, must be the account the credentials belong to (the same check as
    an assumed role's: a mismatch is refused before any other call). It has the interface the
    scan run uses of :class:`~cloudsweep.aws.session.AccountSession`.
    """

    def __init__(
        self,
        account_id: str | None = None,
        role_arn: str | None = None,
        *,
        external_id: str | None = None,
        purpose: Purpose = Purpose.SCAN,
        scan_permissions: Sequence[str] | None = None,
        base_session: boto3.Session | None = None,
        settings: Settings | None = None,
        recorder: CallRecorder | None = None,
        concurrency: int | None = None,
        duration_seconds: int = DEFAULT_DURATION_SECONDS,
        budget: RequestBudget | None = None,
    ) -> None:
        if role_arn is not None or external_id is not None:
            raise domain.InvalidInput(
                "a session on your own credentials assumes no role: drop the role ARN and the "
                "ExternalId, or use a role session"
            )
        if purpose is not Purpose.SCAN:
            raise domain.InvalidInput(
                "your own credentials are used for scans only; cleanups go through the account's "
                "role (register the account with --role-arn)"
            )
        self.account_id = domain.validate_account_id(account_id) if account_id else ""
        self.role_arn: str | None = None
        self.external_id: str | None = None
        self.purpose = purpose
        self.partition = "aws"
        self.assume_role_count = 0
        self.read_only_mode: ReadOnlyMode | None = None
        self.read_only_reason = ""
        self._permissions = tuple(scan_permissions or ())
        self._settings = settings or get_settings()
        self._endpoint = endpoint_url(self._settings)
        self._config = client_config(self._settings, concurrency)
        self._duration = duration_seconds
        self._base = base_session or boto3.Session()
        self._recorder = recorder
        if recorder is not None:
            recorder.attach(self._base, caller_account=None)
        self._session: Any = None
        self._budget = budget
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}
        self._identity: CallerIdentity | None = None
        self._refused: errors.AwsError | None = None

    # --- identity and credentials --------------------------------------------------------

    def verify(self) -> CallerIdentity:
        """GetCallerIdentity on the base credentials, then the read-only session for the scan."""
        with self._lock:
            if self._refused is not None:
                raise self._refused
            if self._identity is not None:
                return self._identity
            try:
                self._identity = self._connect()
            except errors.AwsError as exc:
                if not exc.kind.retryable:
                    self._refused = exc
                raise
            return self._identity

    def _base_client(self, service: str) -> Any:
        base: Any = self._base
        return base.client(
            service,
            region_name=_PARTITION_HOME_REGION.get(self.partition, "us-east-1"),
            endpoint_url=self._endpoint,
            config=self._config,
        )

    def _connect(self) -> CallerIdentity:
        identity = caller_identity(self._base, self._settings)
        if self.account_id and identity.account != self.account_id:
            raise errors.IdentityMismatch(
                declared=self.account_id, actual=identity.account, caller_arn=identity.arn
            )
        self.account_id = identity.account
        principal = _PRINCIPAL_ARN.match(identity.arn)
        if principal is not None:
            self.partition = principal.group("partition")
        kind = principal.group("kind") if principal else "unknown"
        if kind == "user" and self._permissions:
            self._session = self._federated_session()
            self.read_only_mode = ReadOnlyMode.SESSION_POLICY
            self.read_only_reason = (
                "GetFederationToken with a session policy allowing only the detectors' read "
                "permissions"
            )
        else:
            self._session = self._base
            self.read_only_mode = ReadOnlyMode.CLIENT_GUARD
            self.read_only_reason = {
                "assumed-role": "these credentials are a role session (SSO, instance or task "
                "role, or a profile with role_arn): AWS allows no session policy on them",
                "root": "these are the account's root credentials, which AWS advises never to "
                "federate",
                "federated-user": "these credentials are already a federation token",
            }.get(kind, "AWS allows no session policy on these credentials")
        # The guard applies in both modes: defence in depth where AWS enforces the policy too.
        self._session.events.register("before-call", refuse_non_reads)
        if self._budget is not None:
            attach_budget(self._session.events, self._budget, identity.account)
        return identity

    def _federated_session(self) -> Any:
        def federate() -> dict[str, str]:
            try:
                response = self._base_client("sts").get_federation_token(
                    Name=FEDERATION_NAME,
                    Policy=read_only_policy(self._permissions),
                    DurationSeconds=max(900, self._duration),
                )
            except (boto_exc.ClientError, boto_exc.BotoCoreError) as exc:
                raise errors.classify(exc, service="sts", operation="GetFederationToken") from exc
            creds = response["Credentials"]
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": creds["Expiration"].isoformat(),
            }

        core: Any = botocore.session.Session()
        core._credentials = DeferredRefreshableCredentials(  # botocore's documented pattern
            refresh_using=federate, method="sts-get-federation-token"
        )
        if self._recorder is not None:
            self._recorder.attach(core, caller_account=self.account_id)
        session: Any = boto3.Session(botocore_session=core)
        session.get_credentials().get_frozen_credentials()  # federate now: fail here, not later
        return session

    # --- clients -------------------------------------------------------------------------

    @property
    def events(self) -> Any:
        self.verify()
        return self._session.events

    def client(self, service: str, region: str) -> Any:
        """A client for ``service`` in ``region``, created once and shared by all threads."""
        self.verify()
        key = (service, region)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._session.client(
                    service, region_name=region, endpoint_url=self._endpoint, config=self._config
                )
            return client

    def __repr__(self) -> str:
        return f"AmbientSession({self.account_id or '?'}, mode={self.read_only_mode})"


def caller_identity(base_session: Any, settings: Settings | None = None) -> CallerIdentity:
    """Whose credentials ``base_session`` carries (GetCallerIdentity), as an ``AwsError`` if none."""
    probe = AmbientSession(base_session=base_session, settings=settings)
    try:
        response = probe._base_client("sts").get_caller_identity()
    except boto_exc.NoCredentialsError:
        raise errors.AwsError(
            errors.ErrorKind.ACCESS_DENIED,
            service="sts",
            operation="GetCallerIdentity",
            code="NoCredentials",
            message="no AWS credentials found: set AWS_PROFILE or --profile, run "
            "`aws sso login`, or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        ) from None
    except (boto_exc.ClientError, boto_exc.BotoCoreError) as exc:
        raise errors.classify(exc, service="sts", operation="GetCallerIdentity") from exc
    return CallerIdentity(
        account=str(response["Account"]), arn=response["Arn"], user_id=response["UserId"]
    )
