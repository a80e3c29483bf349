"""Cleanup policies: the model (one for the CleanupPolicy custom resource and the CLI's YAML files)
and its evaluation against stored findings, one decision with its reason per item.

Called by the cleanup executor, the ``cloudsweep cleanup`` command and the CleanupPolicy handler.
Pure: no AWS, no database; the executor feeds it candidates from the store.

Money thresholds (the same in the CRD's documentation):

- at or below ``maxMonthlyCost``: may run unattended (``autoExecute``, and both the organization's
  and the account's ``auto_cleanup_enabled``);
- up to ``requireApprovalAbove``: may run when a person starts the run (``cloudsweep cleanup
  --execute --as EMAIL``), which is the person's approval;
- above ``requireApprovalAbove``: only with a recorded approval of that item at that cost.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from cloudsweep import cleanup, detectors, domain
from cloudsweep.store import Candidate

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
MAX_MONEY = Decimal("99999999.99")


class PolicyError(domain.InvalidInput):
    """A policy is invalid; the message names the policy and the bad field."""


def _money(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("must be an amount of money, not a boolean")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount of money") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError("must be a non-negative amount")
    if amount > MAX_MONEY:
        raise ValueError(f"must be at most {MAX_MONEY}")
    if amount != amount.quantize(domain.CENTS):
        raise ValueError("has more than two decimals")
    return amount.quantize(domain.CENTS)


Money = Annotated[Decimal, BeforeValidator(_money)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class PolicyRules(_Model):
    """Which findings the policy matches."""

    min_age_days: int = Field(default=7, ge=0, le=3650)
    min_confidence: int = Field(default=80, ge=1, le=100)
    max_risk_level: domain.RiskLevel = domain.RiskLevel.LOW
    min_monthly_cost: Money | None = None
    max_monthly_cost: Money | None = None
    regions: tuple[str, ...] = Field(default=(), max_length=64)
    # Tag key -> value; "*" matches any value. All of include_tags must match; any of exclude_tags
    # excludes.
    include_tags: dict[str, str] = Field(default_factory=dict, max_length=50)
    exclude_tags: dict[str, str] = Field(default_factory=dict, max_length=50)

    @model_validator(mode="after")
    def _cost_range(self) -> PolicyRules:
        if (
            self.min_monthly_cost is not None
            and self.max_monthly_cost is not None
            and self.min_monthly_cost > self.max_monthly_cost
        ):
            raise ValueError("minMonthlyCost must not be above maxMonthlyCost")
        return self


class CleanupPolicy(_Model):
    """What may be removed, how, and under which gates. Example (YAML for the CLI)::

    name: old-unattached-volumes
    resourceType: ebs-volume
    action: snapshot-and-delete
    rules: {minAgeDays: 30, minConfidence: 85, maxRiskLevel: medium, regions: [us-east-1]}
    autoExecute: false
    maxMonthlyCost: "0.00"
    requireApprovalAbove: "50.00"
    maxItemsPerRun: 20
    maxCostPerRun: "500.00"
    dryRun: false
    """

    name: str = Field(min_length=1, max_length=253)
    resource_type: str
    action: str
    accounts: tuple[domain.AccountId, ...] = Field(default=(), max_length=500)
    rules: PolicyRules = Field(default_factory=PolicyRules)
    auto_execute: bool = False
    max_monthly_cost: Money = Decimal("0.00")
    require_approval_above: Money = Decimal("50.00")
    dry_run: bool = True
    max_items_per_run: int = Field(default=20, ge=1, le=1000)
    max_cost_per_run: Money = Decimal("500.00")
    approval_ttl_days: int = Field(default=14, ge=1, le=90)
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.fullmatch(value):
            raise ValueError("must be a lower-case name of letters, digits, '-' and '.'")
        return value

    @field_validator("resource_type")
    @classmethod
    def _resource_type(cls, value: str) -> str:
        detectors.get(value)  # raises with the known names
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CleanupPolicy:
        known = cleanup.actions_for(self.resource_type)
        if self.action not in known:
            raise ValueError(
                f"action {self.action!r} is not available for {self.resource_type}; "
                f"use one of: {', '.join(known) or 'none yet'}"
            )
        if self.require_approval_above < self.max_monthly_cost:
            raise ValueError(
                "requireApprovalAbove must be at least maxMonthlyCost "
                f"({self.require_approval_above} < {self.max_monthly_cost})"
            )
        cleanup.get(self.resource_type, self.action)().parameters(self.parameters)
        return self

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _describe(error: ValidationError) -> str:
    parts = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem["loc"]) or "policy"
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def parse_policy(document: Mapping[str, Any], *, source: str = "policy") -> CleanupPolicy:
    """One policy from a mapping (YAML, the CRD's spec plus a name); PolicyError names the field."""
    name = document.get("name", "?") if isinstance(document, Mapping) else "?"
    try:
        return CleanupPolicy.model_validate(document)
    except ValidationError as error:
        raise PolicyError(f"{source}: policy {name!r} is invalid: {_describe(error)}") from None
    except domain.InvalidInput as error:
        raise PolicyError(f"{source}: policy {name!r} is invalid: {error}") from None


def load_policies(path: Path) -> list[CleanupPolicy]:
    """Policies from a YAML file: one policy, a list, or ``policies: [...]``; names are unique."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PolicyError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise PolicyError(f"{path} is not valid YAML: {error}") from None
    if isinstance(loaded, Mapping) and "policies" in loaded:
        loaded = loaded["policies"]
    documents = loaded if isinstance(loaded, list) else [loaded]
    if not documents or not all(isinstance(d, Mapping) for d in documents):
        raise PolicyError(f"{path}: expected a policy, a list of policies, or 'policies: [...]'")
    policies = [parse_policy(d, source=str(path)) for d in documents]
    names = [p.name for p in policies]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PolicyError(f"{path}: policy names must be unique; repeated: {', '.join(duplicates)}")
    return policies


# --- evaluation ----------------------------------------------------------------------------------


class DecisionKind(enum.StrEnum):
    SKIP = "skip"
    NEEDS_APPROVAL = "needs-approval"
    APPROVED_TO_RUN = "approved-to-run"
    RUN_AUTOMATICALLY = "run-automatically"

    @property
    def actionable(self) -> bool:
        return self in (DecisionKind.APPROVED_TO_RUN, DecisionKind.RUN_AUTOMATICALLY)


class RunMode(enum.StrEnum):
    """Who starts the run: a person (the CLI, with an identity) or the operator on its own."""

    MANUAL = "manual"
    AUTOMATED = "automated"


@dataclass(frozen=True, slots=True)
class Decision:
    candidate: Candidate
    policy: CleanupPolicy
    kind: DecisionKind
    reason: str
    lapsed_approval: str | None = None  # why a recorded approval no longer counts

    @property
    def deferred(self) -> bool:
        return self.kind is DecisionKind.SKIP and self.reason.startswith("deferred")


def _age_days(candidate: Candidate, now: datetime) -> tuple[float, str]:
    created = candidate.resource_details.get("created_at")
    if created:
        when = datetime.fromisoformat(str(created))
        return (now - when).total_seconds() / 86400, "created"
    # Elastic IPs have no creation time: count from when CloudSweep first saw the resource.
    return (now - candidate.discovered_at).total_seconds() / 86400, "first seen"


def _tags_match(tags: Mapping[str, str], wanted: Mapping[str, str]) -> list[str]:
    return [
        key
        for key, value in wanted.items()
        if key not in tags or (value != "*" and tags[key] != value)
    ]


def _rule_failure(policy: CleanupPolicy, candidate: Candidate, now: datetime) -> str | None:
    rules = policy.rules
    if not candidate.safety_checks_passed:
        failed = [
            f"{c.get('name')} ({c.get('detail')})"
            for c in candidate.resource_details.get("safety_checks") or []
            if not c.get("passed")
        ]
        return "failed safety checks: " + ("; ".join(failed) or "see the finding")
    if rules.regions and candidate.region not in rules.regions:
        return f"region {candidate.region} is not in the policy's regions"
    if candidate.confidence_score < rules.min_confidence:
        return (
            f"confidence {candidate.confidence_score} is below minConfidence {rules.min_confidence}"
        )
    risk = domain.RiskLevel(candidate.risk_level)
    if risk.rank > rules.max_risk_level.rank:
        return f"risk {risk} is above maxRiskLevel {rules.max_risk_level}"
    age, basis = _age_days(candidate, now)
    if age < rules.min_age_days:
        return f"{basis} {age:.1f} days ago, under minAgeDays {rules.min_age_days}"
    if rules.min_monthly_cost is not None and candidate.monthly_cost < rules.min_monthly_cost:
        return (
            f"costs {candidate.monthly_cost}/month, under minMonthlyCost {rules.min_monthly_cost}"
        )
    if rules.max_monthly_cost is not None and candidate.monthly_cost > rules.max_monthly_cost:
        return f"costs {candidate.monthly_cost}/month, over the rule's maxMonthlyCost {rules.max_monthly_cost}"
    tags = dict(candidate.resource_details.get("tags") or {})
    missing = _tags_match(tags, rules.include_tags)
    if missing:
        return f"lacks the included tags {', '.join(missing)}"
    excluded = [
        k for k, v in rules.exclude_tags.items() if k in tags and (v == "*" or tags[k] == v)
    ]
    if excluded:
        return f"has the excluded tags {', '.join(excluded)}"
    return None


def approval_problem(candidate: Candidate, now: datetime) -> str | None:
    """Why the item's recorded approval does not count (None: it counts, or there is none)."""
    approval = candidate.approval
    if approval is None:
        return None
    if now >= approval.expires_at:
        return f"the approval by {approval.approver_email} expired at {approval.expires_at.isoformat()}"
    if candidate.monthly_cost > approval.monthly_cost:
        return f"the cost rose from the approved {approval.monthly_cost} to {candidate.monthly_cost}/month"
    if candidate.fingerprint != approval.fingerprint:
        return "the resource changed since it was approved (tags, safety checks or risk)"
    return None


def decide(
    policy: CleanupPolicy, candidate: Candidate, *, mode: RunMode, now: datetime
) -> Decision:
    """One item under one policy, before the per-run caps."""
    failure = _rule_failure(policy, candidate, now)
    if failure is not None:
        return Decision(candidate, policy, DecisionKind.SKIP, failure)
    cost = candidate.monthly_cost
    lapsed = approval_problem(candidate, now)
    approved = candidate.approval is not None and lapsed is None
    if approved:
        assert candidate.approval is not None
        return Decision(
            candidate,
            policy,
            DecisionKind.APPROVED_TO_RUN,
            f"approved by {candidate.approval.approver_email} at up to {candidate.approval.monthly_cost}/month",
        )
    note = f" ({lapsed})" if lapsed else ""
    if cost > policy.require_approval_above:
        return Decision(
            candidate,
            policy,
            DecisionKind.NEEDS_APPROVAL,
            f"costs {cost}/month, above requireApprovalAbove {policy.require_approval_above}{note}",
            lapsed,
        )
    if mode is RunMode.MANUAL:
        return Decision(
            candidate,
            policy,
            DecisionKind.APPROVED_TO_RUN,
            f"costs {cost}/month, within requireApprovalAbove {policy.require_approval_above}; "
            "run started by a person",
            lapsed,
        )
    closed = []
    if cost > policy.max_monthly_cost:
        closed.append(f"costs {cost}/month, above maxMonthlyCost {policy.max_monthly_cost}")
    if not policy.auto_execute:
        closed.append("the policy does not autoExecute")
    if not candidate.organization_auto_cleanup:
        closed.append(
            "the organization's auto cleanup is off (for a namespace: annotation "
            "cloudsweep.io/auto-cleanup=enabled)"
        )
    if not candidate.account_auto_cleanup:
        closed.append(f"account {candidate.account_id}'s auto cleanup is off")
    if closed:
        return Decision(
            candidate, policy, DecisionKind.NEEDS_APPROVAL, "; ".join(closed) + note, lapsed
        )
    return Decision(
        candidate,
        policy,
        DecisionKind.RUN_AUTOMATICALLY,
        f"costs {cost}/month, within maxMonthlyCost {policy.max_monthly_cost}; auto cleanup on",
        lapsed,
    )


def apply_caps(decisions: Iterable[Decision]) -> list[Decision]:
    """Bound what one run may do per policy (items and dollars), most valuable items first."""
    counts: dict[str, int] = {}
    dollars: dict[str, Decimal] = {}
    capped = []
    for decision in decisions:
        if not decision.kind.actionable:
            capped.append(decision)
            continue
        policy = decision.policy
        count = counts.get(policy.name, 0)
        spent = dollars.get(policy.name, Decimal("0"))
        cost = decision.candidate.monthly_cost
        if count + 1 > policy.max_items_per_run:
            reason = f"deferred: the per-run cap of {policy.max_items_per_run} items is reached"
        elif spent + cost > policy.max_cost_per_run:
            reason = f"deferred: the per-run cap of {policy.max_cost_per_run}/month would be passed"
        else:
            counts[policy.name] = count + 1
            dollars[policy.name] = spent + cost
            capped.append(decision)
            continue
        capped.append(Decision(decision.candidate, policy, DecisionKind.SKIP, reason))
    return capped


@dataclass(frozen=True)
class Plan:
    decisions: tuple[Decision, ...]

    @property
    def actionable(self) -> list[Decision]:
        return [d for d in self.decisions if d.kind.actionable]

    def counts(self) -> dict[str, int]:
        result = {kind.value: 0 for kind in DecisionKind}
        result["deferred"] = 0
        for decision in self.decisions:
            result["deferred" if decision.deferred else decision.kind.value] += 1
        return result

    def document(self) -> dict[str, Any]:
        """What the run records before acting: the counts and exactly what it may act on."""
        return {
            "counts": self.counts(),
            "actionable": [
                {
                    "item": str(d.candidate.id),
                    "resource_id": d.candidate.resource_id,
                    "region": d.candidate.region,
                    "account_id": d.candidate.account_id,
                    "monthly_cost": str(d.candidate.monthly_cost),
                    "policy": d.policy.name,
                    "decision": d.kind.value,
                }
                for d in self.actionable
            ],
        }


def evaluate(
    policies: Sequence[CleanupPolicy],
    candidates_for: Any,
    *,
    mode: RunMode,
    now: datetime,
) -> Plan:
    """Decide every candidate of every policy; an item matched by several policies is decided by
    the first (in name order) that would act on it, else the first that matches it at all.

    ``candidates_for(policy)`` yields the policy's candidates, most expensive first.
    """
    chosen: dict[Any, Decision] = {}
    for policy in sorted(policies, key=lambda p: p.name):
        for candidate in candidates_for(policy):
            decision = decide(policy, candidate, mode=mode, now=now)
            previous = chosen.get(candidate.id)
            if previous is None or (decision.kind.actionable and not previous.kind.actionable):
                chosen[candidate.id] = decision
    ordered = sorted(
        chosen.values(), key=lambda d: (-d.candidate.monthly_cost, str(d.candidate.id))
    )
    return Plan(decisions=tuple(apply_caps(ordered)))
