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

import dataclasses
import enum
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
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
from cloudsweep.cleanup import selection
from cloudsweep.store import Candidate

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
MAX_MONEY = domain.MAX_MONEY
# Tag keys and values as AWS and the CRD's patterns allow them: no control characters.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PolicyError(domain.InvalidInput):
    """A policy is invalid; the message names the policy and the bad field."""


def _boolean(value: Any) -> bool:
    # Not pydantic's lax bool, which reads "no", "off", 0 and "0" as false: for dryRun that
    # would turn a typo into a real cleanup.
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {value!r}")
    return value


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number, not {value!r}")
    return value


def _tags(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value  # pydantic says what is wrong with it
    for key, text in value.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128:
            raise ValueError(f"tag key {key!r} must be text of 1 to 128 characters")
        if _CONTROL.search(key):
            raise ValueError(f"tag key {key!r} contains a control character (NUL, newline, tab)")
        if isinstance(text, str) and (len(text) > 256 or _CONTROL.search(text)):
            raise ValueError(
                f"the value of tag {key!r} must be at most 256 characters without control "
                "characters"
            )
    return value


def _unstorable(value: Any, path: str) -> Iterator[str]:
    """Every key and string in ``value`` that PostgreSQL could not store, with where it is."""
    if isinstance(value, str):
        problem = domain.unstorable(value)
        if problem:
            yield f"{path}: {value[:40]!r} {problem}" if path else f"{value[:40]!r} {problem}"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and domain.unstorable(key):
                yield f"{path + ': ' if path else ''}key {key[:40]!r} {domain.unstorable(key)}"
            yield from _unstorable(item, where)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _unstorable(item, f"{path}[{index}]")


Money = Annotated[Decimal, BeforeValidator(domain.parse_money)]
Boolean = Annotated[bool, BeforeValidator(_boolean)]
Whole = Annotated[int, BeforeValidator(_whole)]
Tags = Annotated[dict[str, str], BeforeValidator(_tags)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class PolicyRules(_Model):
    """Which findings the policy matches."""

    min_age_days: Whole = Field(default=7, ge=0, le=3650)
    min_confidence: Whole = Field(default=80, ge=1, le=100)
    max_risk_level: domain.RiskLevel = domain.RiskLevel.LOW
    min_monthly_cost: Money | None = None
    max_monthly_cost: Money | None = None
    regions: tuple[str, ...] = Field(default=(), max_length=64)
    # Tag key -> value; "*" matches any value. All of include_tags must match; any of exclude_tags
    # excludes.
    include_tags: Tags = Field(default_factory=dict, max_length=50)
    exclude_tags: Tags = Field(default_factory=dict, max_length=50)

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
    auto_execute: Boolean = False
    max_monthly_cost: Money = Decimal("0.00")
    require_approval_above: Money = Decimal("50.00")
    dry_run: Boolean = True
    max_items_per_run: Whole = Field(default=20, ge=1, le=1000)
    max_cost_per_run: Money = Decimal("500.00")
    approval_ttl_days: Whole = Field(default=14, ge=1, le=90)
    parameters: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        # First, before any field: a NUL byte in a tag key once made every evaluation of the
        # namespace fail on the database; refused here, it never reaches the store.
        problems = list(_unstorable(data, ""))
        if problems:
            raise ValueError("; ".join(problems[:5]))
        return data

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


def spec_hash(policy: CleanupPolicy) -> str:
    """What a CleanupApproval binds itself to: everything the policy decides by, except the
    accounts it resolved (AwsAccounts come and go; the approval names its account itself).
    Any other change of the policy (dry run, rules, thresholds, action) voids its approvals."""
    document = {k: v for k, v in policy.to_document().items() if k != "accounts"}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def _describe(error: ValidationError) -> str:
    parts = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
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


class _PolicyLoader(yaml.SafeLoader):
    """YAML for policy files: a key given twice is an error (PyYAML keeps the last one
    silently), and only ``true``/``false`` are booleans (YAML 1.2; 1.1 also reads ``yes``, ``no``,
    ``on`` and ``off`` as booleans, so ``dryRun: no`` would quietly mean "act")."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _bounded_int(loader: _PolicyLoader, node: yaml.ScalarNode) -> int:
    # Python refuses to convert more than 4,300 digits, with advice meant for programmers.
    if len(str(node.value)) > 100:
        raise yaml.constructor.ConstructorError(
            None, None, "a number of more than 100 digits", node.start_mark
        )
    value: int = loader.construct_yaml_int(node)  # type: ignore[no-untyped-call]
    return value


_PolicyLoader.add_constructor("tag:yaml.org,2002:int", _bounded_int)
_PolicyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PolicyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _one_line(error: yaml.YAMLError) -> str:
    """A YAML error as one line: what, and where (line and column, counted from 1)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}"


def load_policies(path: Path) -> list[CleanupPolicy]:
    """Policies from a YAML file: one policy, a list, or ``policies: [...]``; names are unique."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise PolicyError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise PolicyError(
            f"{path} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
            f"{error.start}); save it as UTF-8"
        ) from None
    try:
        loaded = yaml.load(text, Loader=_PolicyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as error:
        raise PolicyError(f"{path} is not valid YAML: {_one_line(error)}") from None
    except ValueError as error:  # an integer too long to convert, for one
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
    # The same rules as the executor's re-check applies to the live tags (cleanup.selection).
    missing = selection.missing_included(tags, rules.include_tags)
    if missing:
        return f"lacks the included tags {', '.join(missing)}"
    excluded = selection.present_excluded(tags, rules.exclude_tags)
    if excluded:
        return f"has the excluded tags {', '.join(excluded)}"
    return None


def approval_problem(
    candidate: Candidate, now: datetime, policy: CleanupPolicy | None = None
) -> str | None:
    """Why the item's recorded approval does not count (None: it counts, or there is none)."""
    approval = candidate.approval
    if approval is None:
        return None
    if (
        policy is not None
        and approval.policy_hash is not None
        and approval.policy_name == policy.name
        and approval.policy_hash != spec_hash(policy)
    ):
        return (
            f"CleanupPolicy {policy.name} changed since the approval by {approval.approver_email}"
        )
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
    if (
        candidate.approval is not None
        and candidate.approval.policy_name is not None
        and candidate.approval.policy_name != policy.name
    ):
        # Approved under another policy: it holds there, not here (and does not lapse here).
        candidate = dataclasses.replace(candidate, approval=None)
    lapsed = approval_problem(candidate, now, policy)
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

    ``candidates_for(policy)`` yields the policy's candidates, in any order: the plan is
    ordered here, most expensive first.
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
