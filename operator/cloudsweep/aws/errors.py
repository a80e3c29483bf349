"""AWS failures, classified once.

Called by everything that makes AWS calls (``aws.session``, the detectors' inventory, cleanup
actions): they wrap calls in :func:`translated` so that callers above see only :class:`AwsError`
with a :class:`ErrorKind`, never a botocore exception. Only the front doors turn these into kopf
errors or status conditions.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager

from botocore import exceptions as boto_exc


class ErrorKind(enum.StrEnum):
    """What the caller should do about a failed AWS call."""

    NOT_FOUND = "not-found"  # the resource is gone: a delete counts as done
    THROTTLED = "throttled"  # botocore already retried; try the whole step later
    ACCESS_DENIED = "access-denied"  # credentials, role or policy: a person must fix it
    REGION_DISABLED = "region-disabled"  # opt-in region not enabled for the account
    RECOVERABLE = "recoverable"  # 5xx, time-outs, connection errors: try later
    TERMINAL = "terminal"  # the request itself is wrong: retrying will not help

    @property
    def retryable(self) -> bool:
        return self in (ErrorKind.THROTTLED, ErrorKind.RECOVERABLE)


_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "SlowDown",
        "EC2ThrottledException",
        "BandwidthLimitExceeded",
        "PriorRequestNotComplete",
    }
)
_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnauthorizedAccess",
        "AuthFailure",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "InvalidAccessKeyId",
        "MissingAuthenticationToken",
        "IncompleteSignature",
        "NotAuthorized",
    }
)
_REGION_CODES = frozenset({"OptInRequired", "RegionDisabledException", "InvalidRegion"})
_RECOVERABLE_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "IDPCommunicationError",
    }
)


def kind_of_code(code: str, http_status: int | None = None) -> ErrorKind:
    """Classify an AWS error code (``InvalidVolume.NotFound``, ``Throttling``, ...)."""
    if code in _THROTTLING_CODES:
        return ErrorKind.THROTTLED
    if code in _ACCESS_CODES:
        return ErrorKind.ACCESS_DENIED
    if code in _REGION_CODES:
        return ErrorKind.REGION_DISABLED
    if (
        code.endswith(("NotFound", "NotFoundFault", "NotFoundException"))
        or code.startswith("NoSuch")
        or code in {"ResourceNotFoundException", "NoSuchEntity"}
    ):
        return ErrorKind.NOT_FOUND
    if code in _RECOVERABLE_CODES or (http_status is not None and http_status >= 500):
        return ErrorKind.RECOVERABLE
    return ErrorKind.TERMINAL


class AwsError(Exception):
    """A classified AWS failure; ``str()`` is a message fit for a status condition."""

    def __init__(
        self,
        kind: ErrorKind,
        *,
        service: str,
        operation: str,
        code: str,
        message: str,
        region: str | None = None,
    ) -> None:
        self.kind = kind
        self.service = service
        self.operation = operation
        self.code = code
        self.message = message
        self.region = region
        where = f" in {region}" if region else ""
        super().__init__(f"{service}:{operation}{where} failed ({kind}, {code}): {message}")


# Transport failures after a request was sent: AWS may have carried it out. A cleanup must then
# reconcile from AWS's state rather than record a failure (or retry blindly).
OUTCOME_UNKNOWN_CODES = frozenset({"ReadTimeoutError", "ConnectionClosedError", "HTTPClientError"})


def outcome_unknown(error: AwsError) -> bool:
    """True when the call may have taken effect although no answer came back."""
    return error.code in OUTCOME_UNKNOWN_CODES


class AssumeRoleFailed(AwsError):
    """STS refused to hand out the account's credentials; the message names the role and the fix."""

    def __init__(self, *, role_arn: str, code: str, reason: str, fix: str, kind: ErrorKind) -> None:
        super().__init__(
            kind, service="sts", operation="AssumeRole", code=code, message=f"{reason}; {fix}"
        )
        self.role_arn = role_arn
        self.reason = reason
        self.fix = fix
        # Exception.__str__ uses args; give it the full, readable sentence.
        self.args = (f"cannot assume role {role_arn}: {reason} ({code}). {fix}",)


class IdentityMismatch(AwsError):
    """The assumed credentials belong to another account than the one declared."""

    def __init__(self, *, declared: str, actual: str, caller_arn: str) -> None:
        super().__init__(
            ErrorKind.TERMINAL,
            service="sts",
            operation="GetCallerIdentity",
            code="IdentityMismatch",
            message=f"credentials are for account {actual} ({caller_arn}), "
            f"not the declared account {declared}",
        )
        self.declared = declared
        self.actual = actual
        self.args = (
            f"refusing to scan: the assumed role's credentials belong to account {actual} "
            f"({caller_arn}), not to the declared account {declared}; fix the role ARN or the "
            "account ID so they name the same account",
        )


class ExternalIdNotEnforced(AwsError):
    """The role can be assumed without the account's ExternalId (the confused-deputy guard is off):
    CloudSweep refuses to use it unless the installation allows shared accounts."""

    def __init__(self, *, role_arn: str, external_id_configured: bool) -> None:
        super().__init__(
            ErrorKind.ACCESS_DENIED,
            service="sts",
            operation="AssumeRole",
            code="ExternalIdNotEnforced",
            message=f"{role_arn} can be assumed without the ExternalId",
        )
        self.role_arn = role_arn
        fix = (
            'add the condition "sts:ExternalId" with the account\'s ExternalId (status.externalId) '
            "to the role's trust policy"
            if external_id_configured
            else "give the account an ExternalId and require it in the role's trust policy "
            '(condition "sts:ExternalId")'
        )
        self.args = (
            f"refusing to use {role_arn}: it can be assumed without the ExternalId, so anyone "
            f"who knows its ARN can make CloudSweep act in the account (confused deputy); {fix}, "
            "or, for a single-team install only, set CLOUDSWEEP_ALLOW_SHARED_ACCOUNTS=true",
        )


def classify(
    exc: BaseException, *, service: str, operation: str, region: str | None = None
) -> AwsError:
    """Return the :class:`AwsError` for a botocore exception (or pass an AwsError through)."""
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, boto_exc.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        message = str(error.get("Message") or exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return AwsError(
            kind_of_code(code, status if isinstance(status, int) else None),
            service=service,
            operation=operation,
            code=code,
            message=message,
            region=region,
        )
    if isinstance(exc, boto_exc.NoCredentialsError | boto_exc.PartialCredentialsError):
        kind, code = ErrorKind.ACCESS_DENIED, type(exc).__name__
    elif isinstance(exc, boto_exc.ParamValidationError):
        kind, code = ErrorKind.TERMINAL, "ParamValidationError"
    elif isinstance(
        exc,
        boto_exc.ConnectionError | boto_exc.HTTPClientError | boto_exc.ConnectionClosedError,
    ):
        kind, code = ErrorKind.RECOVERABLE, type(exc).__name__
    else:
        kind, code = ErrorKind.TERMINAL, type(exc).__name__
    return AwsError(
        kind, service=service, operation=operation, code=code, message=str(exc), region=region
    )


@contextmanager
def translated(service: str, operation: str, region: str | None = None) -> Iterator[None]:
    """Turn botocore exceptions raised inside the block into :class:`AwsError`."""
    try:
        yield
    except AwsError:
        raise
    except (boto_exc.BotoCoreError, boto_exc.ClientError) as exc:
        raise classify(exc, service=service, operation=operation, region=region) from exc
