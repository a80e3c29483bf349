"""The detector contract and the safety checks every detector shares.

Subclassed by each detector module (``detectors.ebs_volume`` ...); the registry in
``detectors/__init__.py`` keeps the subclasses; the scan run calls ``Detector.detect`` once per
account, region and detector.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Generic, ParamSpec, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cloudsweep import domain
from cloudsweep.detectors.context import RegionContext
from cloudsweep.detectors.metrics import MetricNeeds
from cloudsweep.domain import Finding, RiskLevel, SafetyCheck, money

DEFAULT_PROTECTION_TAGS: tuple[str, ...] = ("cloudsweep.io/protect", "do-not-delete")
# A protection tag whose value is one of these does not protect (``do-not-delete=false``).
_NOT_PROTECTING = frozenset({"false", "no", "0", "off"})

PROTECTION_CHECK = domain.PROTECTION_CHECK
AGE_CHECK = "recently-created"
REFERENCE_CHECK = "referenced-by"


class DetectorParameters(BaseModel):
    """Parameters every detector accepts; subclasses add their own. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protection_tags: tuple[str, ...] = Field(
        default=DEFAULT_PROTECTION_TAGS,
        description="Tag keys (case-insensitive) that protect a resource from cleanup.",
    )
    min_age_days: int = Field(
        default=7,
        ge=0,
        le=3650,
        description="Resources younger than this fail the recently-created safety check.",
    )


P = TypeVar("P", bound=DetectorParameters)
PS = ParamSpec("PS")


class Detector(abc.ABC, Generic[P]):
    """One resource type's waste detector; see a detector module for an example."""

    name: ClassVar[str]
    resource_type: ClassVar[str]
    permissions: ClassVar[tuple[str, ...]]
    Parameters: ClassVar[type[DetectorParameters]]

    def parameters(self, raw: Mapping[str, Any] | None = None) -> P:
        """Validate raw parameters (from a ScanSchedule or the CLI); raises pydantic's error."""
        return self.Parameters.model_validate(dict(raw or {}))  # type: ignore[return-value]

    def metric_needs(self, ctx: RegionContext, params: P) -> MetricNeeds | None:
        """What ``detect`` will read from CloudWatch, so the scan reads every detector's metrics
        of a region together beforehand (None: no metrics). May list resources (the inventory
        keeps them for ``detect``); AWS failures raise ``aws.errors.AwsError``."""
        return None

    @property
    def reads_metrics(self) -> bool:
        """Whether this detector declares metric needs (overrides ``metric_needs``)."""
        return type(self).metric_needs is not Detector.metric_needs

    @abc.abstractmethod
    def detect(self, ctx: RegionContext, params: P) -> Iterator[Finding]:
        """Yield one finding per wasted resource; AWS failures raise ``aws.errors.AwsError``."""


# --- helpers shared by the detectors ----------------------------------------------------------


def tag_map(tags: Sequence[Mapping[str, Any]] | None) -> dict[str, str]:
    """``[{"Key": k, "Value": v}, ...]`` as a dict."""
    return {str(t["Key"]): str(t.get("Value", "")) for t in tags or () if "Key" in t}


def protection_check(tags: Mapping[str, str], keys: Sequence[str]) -> SafetyCheck:
    wanted = {k.lower() for k in keys}
    for key, value in tags.items():
        if key.lower() in wanted and value.strip().lower() not in _NOT_PROTECTING:
            return SafetyCheck(PROTECTION_CHECK, False, f"protected by tag {key}={value}")
    return SafetyCheck(PROTECTION_CHECK, True, f"none of the tags {', '.join(keys)}")


def age_days(created: datetime | None, now: datetime) -> float | None:
    if created is None:
        return None
    return (now - created).total_seconds() / 86400


def age_check(created: datetime | None, now: datetime, min_age_days: int) -> SafetyCheck:
    age = age_days(created, now)
    if age is None:
        return SafetyCheck(AGE_CHECK, False, "creation time unknown")
    if age < min_age_days:
        return SafetyCheck(
            AGE_CHECK, False, f"created {age:.1f} days ago, less than {min_age_days} days"
        )
    return SafetyCheck(AGE_CHECK, True, f"created {age:.0f} days ago")


def risk_from(checks: Sequence[SafetyCheck], base: RiskLevel) -> RiskLevel:
    """A protection tag makes any finding HIGH risk; any other failed check at least MEDIUM."""
    failed = {c.name for c in checks if not c.passed}
    if PROTECTION_CHECK in failed:
        return RiskLevel.HIGH
    if failed and base.rank < RiskLevel.MEDIUM.rank:
        return RiskLevel.MEDIUM
    return base


def confidence(value: float) -> int:
    return max(1, min(100, round(value)))


def priced(
    lookup: Callable[PS, Decimal], *args: PS.args, **kwargs: PS.kwargs
) -> tuple[Decimal, str | None]:
    """A monthly price rounded to cents, or 0 and the reason when the catalog has no price.

    The catalog raises ``UnknownPrice`` (a ``LookupError``) rather than guess; the finding is kept
    with a zero cost and the reason in its evidence, since the waste is real even when unpriced.
    """
    try:
        return money(lookup(*args, **kwargs)), None
    except LookupError as exc:
        return money(0), str(exc)


def cost_evidence(cost: Decimal, unknown: str | None, what: str) -> str:
    if unknown is not None:
        return f"price unknown ({unknown}); cost counted as 0"
    return f"{what} billed at {cost} USD/month"


def pricing_details(
    ctx: RegionContext, cost: Decimal, unknown: str | None = None, **inputs: Any
) -> dict[str, Any]:
    """What a price was computed from, kept in ``resource_details`` for audit."""
    basis = getattr(ctx.prices, "basis", None)
    try:
        region_basis = str(basis(ctx.region)) if callable(basis) else None
    except LookupError:
        region_basis = None
    return {
        "pricing": {
            "monthly_cost": str(money(cost)),
            "catalog_version": str(getattr(ctx.prices, "version", "unknown")),
            "region": ctx.region,
            "basis": region_basis,
            "unknown_price": unknown,
            **{k: v for k, v in inputs.items() if v is not None},
        }
    }
