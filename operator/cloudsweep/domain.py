"""Domain values shared by every layer: identifiers, enums, findings.

Imported by the detectors (which produce findings), the store (which persists them), the scanner and
the front doors. Nothing here talks to AWS, a database or Kubernetes.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator

ACCOUNT_ID_RE = re.compile(r"^[0-9]{12}$")
ROLE_ARN_RE = re.compile(
    r"^arn:(?P<partition>aws|aws-cn|aws-us-gov):iam::(?P<account>[0-9]{12}):role/(?P<path>[\w+=,.@/-]{1,512})$"
)
CENTS = Decimal("0.01")
# Tag on everything a cleanup creates (the snapshot taken before a delete, restored resources),
# valued with the cleanup action's ID: how a rerun finds its own earlier work, and how the scan
# knows a snapshot is undo data rather than waste.
CLEANUP_ACTION_TAG = "cloudsweep.io/action-id"
# An account's regions may be this one word: every region enabled for the account, read from AWS
# (DescribeRegions) at the start of each scan.
ALL_REGIONS = "all"
# The safety check a protection tag fails. A finding that fails it is *protected*: its owner
# declared it intended, so it is shown (with its cost) but never counted as waste.
PROTECTION_CHECK = "protection-tag"
# Tags the ``ami`` deregister action puts on the deregistered image's snapshots: they are its undo
# data until the UTC time in RETAIN_UNTIL_TAG (ISO 8601); the ebs-snapshot detector and actions
# leave them alone until then, and treat them as any other snapshot after.
RETAIN_UNTIL_TAG = "cloudsweep.io/retain-until"
DEREGISTERED_IMAGE_TAG = "cloudsweep.io/deregistered-image"


class InvalidInput(ValueError):
    """Input from a user or a custom resource is wrong; the message says what and how to fix it."""


def validate_account_id(value: object) -> str:
    """Return an AWS account ID as a 12-digit string, refusing anything else.

    YAML reads an unquoted account ID as a number and drops leading zeros, so an int is refused
    explicitly with advice rather than converted.
    """
    if not isinstance(value, str):
        raise InvalidInput(
            f"account ID {value!r} must be a string of exactly 12 digits; quote it in YAML "
            '(accountId: "012345678901") so leading zeros are kept'
        )
    if not ACCOUNT_ID_RE.fullmatch(value):
        raise InvalidInput(f"account ID {value!r} must be exactly 12 digits")
    return value


def role_arn_account(role_arn: str) -> str:
    """Return the account ID inside an IAM role ARN, or raise InvalidInput naming the problem."""
    match = ROLE_ARN_RE.fullmatch(role_arn)
    if match is None:
        raise InvalidInput(
            f"role ARN {role_arn!r} is not an IAM role ARN "
            "(expected arn:aws:iam::<12-digit account>:role/<name>)"
        )
    return match.group("account")


def validate_role_for_account(role_arn: str, account_id: str) -> None:
    """Refuse a role ARN that belongs to another account than the one declared."""
    arn_account = role_arn_account(role_arn)
    if arn_account != account_id:
        raise InvalidInput(
            f"role ARN {role_arn!r} belongs to account {arn_account}, not to the declared "
            f"account {account_id}; use a role in account {account_id}"
        )


AccountId = Annotated[str, BeforeValidator(validate_account_id)]


def money(value: Decimal | int | str) -> Decimal:
    """Round to cents, half up, as invoices do."""
    return Decimal(value).quantize(CENTS, rounding=ROUND_HALF_UP)


MAX_MONEY = Decimal("99999999.99")  # numeric(10, 2): what the database stores
_PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)


def parse_money(value: object) -> Decimal:
    """An amount of US dollars a person wrote, as exact cents: the one parser of money input
    (policy files, custom resources, command-line options).

    Only plain decimals are money: ``49.99``, ``50``, or a whole number (YAML ``50``). Refused,
    each with a message saying how to write it: signs, exponents (``1e3``), ``NaN``,
    ``Infinity``, more than two decimals, more than ``MAX_MONEY``, booleans, and YAML floats
    (``49.99`` unquoted is a binary float in YAML, which cannot hold cents exactly).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_MONEY:
        raise InvalidInput(f"the amount is too large: must be at most {MAX_MONEY}")
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    if isinstance(value, bool | float):
        kind = "a boolean" if isinstance(value, bool) else "a YAML number"
        raise InvalidInput(
            f"{shown} is {kind}, not an amount of money: quote it as a plain decimal string "
            '("49.99")'
        )
    text = str(value).strip() if isinstance(value, int | str | Decimal) else None
    if text is None or not _PLAIN_DECIMAL.fullmatch(text):
        raise InvalidInput(
            f"{shown} is not an amount of money: write a plain decimal such as 49.99 "
            "(no sign, exponent, NaN or Infinity)"
        )
    whole, _, cents = text.partition(".")
    if len(cents) > 2:
        raise InvalidInput(f"{shown} has more than two decimals (cents)")
    amount = Decimal(text)  # at most two decimals: exact, and compared exactly
    if len(whole) > 20 or amount > MAX_MONEY:
        raise InvalidInput(f"{shown} is too large: must be at most {MAX_MONEY}")
    return amount.quantize(CENTS)


def unstorable(text: str) -> str | None:
    """Why PostgreSQL cannot store ``text`` (in ``text`` or ``jsonb``), or None if it can.

    NUL is refused by both types, and a lone UTF-16 surrogate (which JSON's ``\\ud800`` escapes
    can produce) is not UTF-8 at all: either would fail the write of everything around it.
    """
    for index, char in enumerate(text):
        if char == "\x00":
            return f"contains a NUL character (at position {index}), which PostgreSQL cannot store"
        if "\ud800" <= char <= "\udfff":
            return (
                f"contains a lone surrogate U+{ord(char):04X} (at position {index}), which is not "
                "text PostgreSQL can store"
            )
    return None


def utcnow() -> datetime:
    return datetime.now(UTC)


# "User initiated (2024-05-01 10:11:12 GMT)": the only place AWS says when an instance stopped.
_STOPPED_AT = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)")


def stopped_at(reason: str | None) -> datetime | None:
    """When an EC2 instance stopped, from its ``StateTransitionReason``; None if AWS did not
    say. Read by the ec2-stopped-instance detector and by its cleanup's re-check."""
    found = _STOPPED_AT.search(reason or "")
    if not found:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


class RiskLevel(enum.StrEnum):
    """How bad it would be to remove the resource if the finding were wrong."""

    SAFE = "safe"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return list(RiskLevel).index(self)


# No approval holds longer than this, whatever its expiry or its policy's approvalTtlDays say.
MAX_APPROVAL_DAYS = 90


class CleanupStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CLEANING = "cleaning"
    CLEANED = "cleaned"
    FAILED = "failed"


class ScanType(enum.StrEnum):
    """Full scans close items they do not see again; incremental and manual ones never do.

    full: every enabled region and every detector; items of the account not seen are marked gone.
    incremental: the regions or detectors asked for only; nothing is marked gone.
    manual: a full scan requested by a person (CLI, run-now annotation); closes items like full.
    """

    FULL = "full"
    INCREMENTAL = "incremental"
    MANUAL = "manual"

    @property
    def closes_unseen(self) -> bool:
        return self is not ScanType.INCREMENTAL


class ScanStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    PARTIAL = "partial"  # some regions failed; the others' findings are stored
    FAILED = "failed"
    CANCELLED = "cancelled"


class ConnectionStatus(enum.StrEnum):
    PENDING = "pending"
    CONNECTED = "connected"
    FAILED = "failed"


class PlanType(enum.StrEnum):
    FREE = "free"
    STARTER = "starter"
    PRO = "pro"
    ENTERPRISE = "enterprise"


class UserRole(enum.StrEnum):
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


class ActionType(enum.StrEnum):
    DELETE = "delete"
    STOP = "stop"
    RESIZE = "resize"
    DETACH = "detach"
    RELEASE = "release"
    ARCHIVE = "archive"
    ROLLBACK = "rollback"


class AttemptStatus(enum.StrEnum):
    """One cleanup attempt in the ledger: the intent (started), then exactly one outcome."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"  # re-checked in AWS and no longer waste, or no longer allowed


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class ExecutionMethod(enum.StrEnum):
    MANUAL = "manual"
    AUTOMATED = "automated"
    SCHEDULED = "scheduled"


@dataclass(frozen=True, slots=True)
class SafetyCheck:
    """One check a finding passed or failed, e.g. ``protection-tag``, ``recently-created``."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One wasted resource as a detector sees it; the store keys it by account, region, type, id."""

    resource_type: str
    resource_id: str
    region: str
    monthly_cost: Decimal
    confidence: int
    risk: RiskLevel
    resource_arn: str | None = None
    availability_zone: str | None = None
    evidence: tuple[str, ...] = ()
    safety_checks: tuple[SafetyCheck, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.confidence <= 100:
            raise ValueError(
                f"confidence {self.confidence} of {self.resource_id} is outside 1..100"
            )
        if not isinstance(self.monthly_cost, Decimal):
            raise TypeError(f"monthly_cost of {self.resource_id} must be a Decimal")
        if self.created_at is not None and self.created_at.tzinfo is None:
            raise ValueError(f"created_at of {self.resource_id} must be timezone-aware")

    @property
    def annual_cost(self) -> Decimal:
        return money(self.monthly_cost * 12)

    @property
    def safety_checks_passed(self) -> bool:
        return all(check.passed for check in self.safety_checks)

    @property
    def protected(self) -> bool:
        return any(c.name == PROTECTION_CHECK and not c.passed for c in self.safety_checks)

    def resource_details(self) -> dict[str, Any]:
        """The JSON stored in ``waste_items.resource_details``: why this is waste, and the facts."""
        return {
            "evidence": list(self.evidence),
            "safety_checks": [
                {"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.safety_checks
            ],
            "tags": dict(self.tags),
            "created_at": self.created_at.isoformat() if self.created_at else None,
            **dict(self.details),
        }
