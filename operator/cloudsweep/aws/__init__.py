"""The only door to AWS: sessions into scanned accounts, error classification, call recording.

Called by the scan run (``scanning``), the detectors (through their ``RegionContext``) and the
cleanup actions. This package is the only place that imports boto3 or botocore.
"""

from cloudsweep.aws.budget import BudgetKey, RequestBudget
from cloudsweep.aws.errors import (
    AssumeRoleFailed,
    AwsError,
    ErrorKind,
    ExternalIdNotEnforced,
    IdentityMismatch,
    classify,
    translated,
)
from cloudsweep.aws.operations import method_name
from cloudsweep.aws.recorder import CallRecord, CallRecorder
from cloudsweep.aws.session import (
    AccountSession,
    CallerIdentity,
    Purpose,
    ScanSession,
    client_config,
    connect,
    endpoint_url,
)

__all__ = [
    "AccountSession",
    "AssumeRoleFailed",
    "AwsError",
    "BudgetKey",
    "CallRecord",
    "CallRecorder",
    "CallerIdentity",
    "ErrorKind",
    "ExternalIdNotEnforced",
    "IdentityMismatch",
    "Purpose",
    "RequestBudget",
    "ScanSession",
    "classify",
    "client_config",
    "connect",
    "endpoint_url",
    "method_name",
    "translated",
]
