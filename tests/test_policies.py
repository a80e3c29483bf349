"""The policy model and its evaluation: one decision with its reason per item, caps, approvals."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cloudsweep import policies
from cloudsweep.policies import CleanupPolicy, DecisionKind, RunMode
from cloudsweep.store import Approval, Candidate
from cloudsweep.store.ledger import fingerprint

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def policy(**overrides: Any) -> CleanupPolicy:
    document: dict[str, Any] = {
        "name": "volumes",
        "resourceType": "elastic-ip",
        "action": "release",
        "rules": {"minAgeDays": 7, "minConfidence": 80, "maxRiskLevel": "low"},
        "maxMonthlyCost": "5.00",
        "requireApprovalAbove": "50.00",
        "autoExecute": True,
        "dryRun": False,
    }
    document.update(overrides)
    return policies.parse_policy(document)


def candidate(cost: str = "3.65", **overrides: Any) -> Candidate:
    details = {
        "tags": {"team": "web"},
        "safety_checks": [{"name": "protection-tag", "passed": True, "detail": "none"}],
        "created_at": (NOW - timedelta(days=30)).isoformat(),
    }
    details.update(overrides.pop("details", {}))
    base = Candidate(
        id=overrides.pop("id", uuid.uuid4()),
        organization_id=uuid.uuid4(),
        account_uuid=uuid.uuid4(),
        account_id="111111111111",
        role_arn="arn:aws:iam::111111111111:role/r",
        external_id="x",
        region="us-east-1",
        resource_type="elastic-ip",
        resource_id=f"eipalloc-{uuid.uuid4().hex[:8]}",
        resource_arn=None,
        availability_zone=None,
        monthly_cost=Decimal(cost),
        confidence_score=90,
        risk_level="low",
        safety_checks_passed=True,
        cleanup_status="pending",
        resource_details=details,
        discovered_at=NOW - timedelta(days=30),
        account_auto_cleanup=True,
        organization_auto_cleanup=True,
        approval=None,
        fingerprint="",
    )
    base = replace(base, **overrides)
    return replace(
        base,
        fingerprint=fingerprint(
            base.resource_arn, base.risk_level, base.safety_checks_passed, base.resource_details
        ),
    )


def decide(p: CleanupPolicy, c: Candidate, mode: RunMode = RunMode.AUTOMATED) -> policies.Decision:
    return policies.decide(p, c, mode=mode, now=NOW)


# --- the model -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"resourceType": "sqs-queue"}, "unknown resource type 'sqs-queue'"),
        ({"action": "delete"}, "action 'delete' is not available for elastic-ip"),
        ({"rules": {"minConfidence": 101}}, "rules.minConfidence"),
        ({"rules": {"minAgeDays": -1}}, "rules.minAgeDays"),
        ({"rules": {"maxRiskLevel": "extreme"}}, "rules.maxRiskLevel"),
        ({"rules": {"bogus": 1}}, "rules.bogus"),
        ({"maxMonthlyCost": "-1"}, "maxMonthlyCost"),
        ({"maxMonthlyCost": "1.001"}, "more than two decimals"),
        ({"maxCostPerRun": "1e12"}, "maxCostPerRun"),
        ({"maxItemsPerRun": 100000}, "maxItemsPerRun"),
        ({"requireApprovalAbove": "1.00"}, "requireApprovalAbove must be at least maxMonthlyCost"),
        ({"accounts": ["12345678901"]}, "accounts.0"),
        ({"accounts": [123456789012]}, "must be a string"),
        ({"name": "Bad Name"}, "name"),
        ({"unknownField": True}, "unknownField"),
        # booleans are booleans: pydantic's lax mode read these as false (dry run off)
        ({"dryRun": "no"}, "dryRun: must be true or false"),
        ({"dryRun": 0}, "dryRun: must be true or false"),
        ({"dryRun": "false"}, "dryRun: must be true or false"),
        ({"autoExecute": 1}, "autoExecute: must be true or false"),
        ({"maxItemsPerRun": True}, "maxItemsPerRun: must be a whole number"),
        ({"rules": {"minAgeDays": 7.5}}, "rules.minAgeDays: must be a whole number"),
        # money is a plain decimal
        ({"maxCostPerRun": "NaN"}, "maxCostPerRun: 'NaN' is not an amount of money"),
        ({"maxCostPerRun": "Infinity"}, "maxCostPerRun: 'Infinity' is not an amount of money"),
        ({"maxCostPerRun": "1E2"}, "maxCostPerRun: '1E2' is not an amount of money"),
        ({"maxCostPerRun": 12.5}, "maxCostPerRun: 12.5 is a YAML number"),
        ({"maxCostPerRun": float("inf")}, "maxCostPerRun: inf is a YAML number"),
        ({"maxCostPerRun": 10**5000}, "maxCostPerRun: the amount is too large"),
        # text PostgreSQL cannot store, and tag keys AWS would never have
        ({"rules": {"excludeTags": {"keep\x00me": "*"}}}, "rules.excludeTags: key 'keep\\x00me'"),
        ({"rules": {"includeTags": {"team": "a\x00"}}}, "NUL character"),
        ({"rules": {"excludeTags": {"k\ud800": "*"}}}, "lone surrogate U+D800"),
        ({"rules": {"excludeTags": {"line\nbreak": "*"}}}, "contains a control character"),
        ({"rules": {"excludeTags": {"": "*"}}}, "1 to 128 characters"),
        ({"parameters": {"x\x00": 1}}, "parameters: key"),
    ],
)
def test_invalid_policies_name_the_bad_field(override: dict[str, Any], field: str) -> None:
    with pytest.raises(policies.PolicyError, match="is invalid") as refused:
        policy(**override)
    assert field in str(refused.value)


def test_defaults_are_safe() -> None:
    minimal = policies.parse_policy(
        {"name": "p", "resourceType": "elastic-ip", "action": "release"}
    )
    assert minimal.dry_run is True
    assert minimal.auto_execute is False
    assert minimal.max_monthly_cost == Decimal("0.00")
    assert minimal.max_items_per_run == 20
    # snake_case works too (the Python side), and the CRD's camelCase round-trips.
    assert policies.parse_policy(minimal.to_document()) == minimal


def test_policy_files(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "policies:\n"
        "  - {name: a, resourceType: elastic-ip, action: release}\n"
        "  - {name: b, resourceType: elastic-ip, action: release, rules: {minConfidence: 90}}\n"
    )
    assert [p.name for p in policies.load_policies(path)] == ["a", "b"]
    path.write_text(
        "- {name: a, resourceType: elastic-ip, action: release}\n- {name: a, resourceType: elastic-ip, action: release}\n"
    )
    with pytest.raises(policies.PolicyError, match="unique"):
        policies.load_policies(path)
    path.write_text("name: [unclosed")
    with pytest.raises(policies.PolicyError, match="not valid YAML"):
        policies.load_policies(path)
    with pytest.raises(policies.PolicyError, match="cannot read"):
        policies.load_policies(tmp_path / "missing.yaml")


EIP = "resourceType: elastic-ip\naction: release\n"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        # PyYAML keeps the last of two equal keys, silently
        (f"name: a\n{EIP}name: b\n", "duplicate key 'name' (line 4, column 1)"),
        (f"name: a\n{EIP}rules: {{minAgeDays: 1, minAgeDays: 2}}\n", "duplicate key 'minAgeDays'"),
        # YAML 1.1 booleans are text here, so the boolean fields refuse them
        (f"name: a\n{EIP}dryRun: no\n", "dryRun: must be true or false, not 'no'"),
        (f"name: a\n{EIP}dryRun: off\n", "dryRun: must be true or false, not 'off'"),
        (f"name: a\n{EIP}maxCostPerRun: {'9' * 5000}\n", "more than 100 digits (line 4"),
        (f'name: a\n{EIP}rules: {{excludeTags: {{"keep\\0me": "*"}}}}\n', "NUL character"),
    ],
)
def test_policy_files_refuse_what_yaml_would_quietly_accept(
    text: str, says: str, tmp_path: Path
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(policies.PolicyError) as refused:
        policies.load_policies(path)
    assert says in str(refused.value)
    assert "\n" not in str(refused.value)


def test_yaml_true_and_false_stay_booleans(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"name: a\n{EIP}dryRun: false\nautoExecute: True\n")
    (loaded,) = policies.load_policies(path)
    assert loaded.dry_run is False and loaded.auto_execute is True


def test_a_policy_file_that_is_not_utf8_says_where(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(f"name: a\n{EIP}".encode() + b"# caf\xe9\n")
    with pytest.raises(policies.PolicyError, match=r"is not UTF-8 text \(byte 0xe9 at offset 54\)"):
        policies.load_policies(path)


# --- decisions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {
                "safety_checks_passed": False,
                "details": {
                    "safety_checks": [
                        {"name": "protection-tag", "passed": False, "detail": "do-not-delete=true"}
                    ]
                },
            },
            "failed safety checks: protection-tag",
        ),
        ({"confidence_score": 50}, "below minConfidence"),
        ({"risk_level": "medium"}, "above maxRiskLevel"),
        ({"details": {"created_at": (NOW - timedelta(days=2)).isoformat()}}, "under minAgeDays"),
        ({"region": "eu-west-1"}, "not in the policy's regions"),
    ],
)
def test_rules_skip_with_a_reason(change: dict[str, Any], reason: str) -> None:
    p = policy(rules={"regions": ["us-east-1"]})
    decision = decide(p, candidate(**change))
    assert decision.kind is DecisionKind.SKIP
    assert reason in decision.reason


def test_tag_selectors() -> None:
    p = policy(rules={"includeTags": {"team": "*"}, "excludeTags": {"env": "prod"}})
    assert decide(p, candidate()).kind is DecisionKind.RUN_AUTOMATICALLY
    assert "lacks the included tags team" in decide(p, candidate(details={"tags": {}})).reason
    prod = candidate(details={"tags": {"team": "web", "env": "prod"}})
    assert "excluded tags env" in decide(p, prod).reason


def test_thresholds_and_both_auto_cleanup_flags_gate_automatic_runs() -> None:
    p = policy()
    assert decide(p, candidate("4.99")).kind is DecisionKind.RUN_AUTOMATICALLY
    above_auto = decide(p, candidate("5.01"))
    assert (
        above_auto.kind is DecisionKind.NEEDS_APPROVAL
        and "above maxMonthlyCost" in above_auto.reason
    )
    assert decide(p, candidate("60")).kind is DecisionKind.NEEDS_APPROVAL
    org_off = decide(p, candidate(organization_auto_cleanup=False))
    assert (
        org_off.kind is DecisionKind.NEEDS_APPROVAL
        and "organization's auto cleanup is off" in org_off.reason
    )
    account_off = decide(p, candidate(account_auto_cleanup=False))
    assert "account 111111111111's auto cleanup is off" in account_off.reason
    assert "does not autoExecute" in decide(policy(autoExecute=False), candidate()).reason


def test_a_person_may_run_what_costs_up_to_the_approval_threshold() -> None:
    p = policy(autoExecute=False)
    assert decide(p, candidate("49.99"), RunMode.MANUAL).kind is DecisionKind.APPROVED_TO_RUN
    assert decide(p, candidate("50.01"), RunMode.MANUAL).kind is DecisionKind.NEEDS_APPROVAL


def _approved(c: Candidate, *, cost: str, expires: datetime, fp: str | None = None) -> Candidate:
    return replace(
        c,
        cleanup_status="approved",
        approval=Approval(
            approved_by=uuid.uuid4(),
            approver_email="ann@example.com",
            approved_at=NOW - timedelta(days=1),
            expires_at=expires,
            monthly_cost=Decimal(cost),
            fingerprint=fp if fp is not None else c.fingerprint,
        ),
    )


def test_an_approval_is_for_one_resource_at_one_cost_and_lapses() -> None:
    p = policy()
    expensive = candidate("80.00")
    ok = _approved(expensive, cost="80.00", expires=NOW + timedelta(days=1))
    decision = decide(p, ok)
    assert decision.kind is DecisionKind.APPROVED_TO_RUN and "ann@example.com" in decision.reason

    rose = _approved(candidate("95.00"), cost="80.00", expires=NOW + timedelta(days=1))
    assert decide(p, rose).kind is DecisionKind.NEEDS_APPROVAL
    assert "rose from the approved 80.00 to 95.00" in (decide(p, rose).lapsed_approval or "")

    expired = _approved(expensive, cost="80.00", expires=NOW - timedelta(seconds=1))
    assert decide(p, expired).kind is DecisionKind.NEEDS_APPROVAL
    assert "expired" in (decide(p, expired).lapsed_approval or "")

    changed = _approved(
        expensive, cost="80.00", expires=NOW + timedelta(days=1), fp="another-state"
    )
    assert "changed since it was approved" in (decide(p, changed).lapsed_approval or "")


def test_caps_bound_a_policy_that_matches_everything() -> None:
    p = policy(maxItemsPerRun=3, maxCostPerRun="10.00", maxMonthlyCost="50.00")
    items = [candidate("4.00") for _ in range(10)]
    plan = policies.evaluate([p], lambda _: iter(items), mode=RunMode.AUTOMATED, now=NOW)
    assert len(plan.actionable) == 2  # 4 + 4 fits in 10; a third 4 would pass it
    counts = plan.counts()
    assert counts["deferred"] == 8
    assert all("per-run cap" in d.reason for d in plan.decisions if d.deferred)
    document = plan.document()
    assert len(document["actionable"]) == 2 and document["counts"]["deferred"] == 8


def test_most_valuable_items_first_and_one_decision_per_item() -> None:
    cheap, dear = candidate("1.00"), candidate("4.50")
    strict = policy(name="a-strict", rules={"minConfidence": 99})
    loose = policy(name="b-loose")
    plan = policies.evaluate(
        [strict, loose], lambda _: iter([cheap, dear]), mode=RunMode.AUTOMATED, now=NOW
    )
    assert [d.candidate.monthly_cost for d in plan.decisions] == [Decimal("4.50"), Decimal("1.00")]
    assert {d.policy.name for d in plan.decisions} == {"b-loose"}


def test_evaluating_100k_items_is_bounded() -> None:
    p = policy(maxItemsPerRun=1000, maxCostPerRun="999999.00", maxMonthlyCost="50.00")
    template = candidate("1.00")
    items = (replace(template, id=uuid.uuid4()) for _ in range(100_000))
    plan = policies.evaluate([p], lambda _: items, mode=RunMode.AUTOMATED, now=NOW)
    assert len(plan.actionable) == 1000
    assert plan.counts()["deferred"] == 99_000


@pytest.mark.parametrize(
    ("cost", "kind", "reason"),
    [
        ("0.99", DecisionKind.SKIP, "costs 0.99/month, under minMonthlyCost 1.00"),
        ("1.00", DecisionKind.RUN_AUTOMATICALLY, "within maxMonthlyCost"),
        ("4.00", DecisionKind.RUN_AUTOMATICALLY, "within maxMonthlyCost"),
        ("4.01", DecisionKind.SKIP, "costs 4.01/month, over the rule's maxMonthlyCost 4.00"),
        ("60.00", DecisionKind.SKIP, "over the rule's maxMonthlyCost 4.00"),
    ],
)
def test_rule_level_cost_bounds_select_items(cost: str, kind: DecisionKind, reason: str) -> None:
    """``rules.minMonthlyCost`` / ``rules.maxMonthlyCost`` bound what the policy matches at all
    (inclusive), before approvals and thresholds: an item outside them is skipped, even approved
    or in a manual run, and the bounds themselves are matched."""
    p = policy(rules={"minMonthlyCost": "1.00", "maxMonthlyCost": "4.00"})
    for mode in RunMode:
        decision = decide(p, candidate(cost), mode)
        expected = (
            DecisionKind.APPROVED_TO_RUN
            if kind is DecisionKind.RUN_AUTOMATICALLY and mode is RunMode.MANUAL
            else kind
        )
        assert decision.kind is expected, (cost, mode, decision.reason)
        if mode is RunMode.AUTOMATED:
            assert reason in decision.reason
    approved = _approved(candidate(cost), cost="100", expires=NOW + timedelta(days=1))
    assert decide(p, approved).kind is (
        DecisionKind.SKIP if kind is DecisionKind.SKIP else DecisionKind.APPROVED_TO_RUN
    )


def test_rule_level_cost_bounds_are_optional_and_ordered() -> None:
    only_min = policy(rules={"minMonthlyCost": "2.00"})
    assert decide(only_min, candidate("60.00")).kind is DecisionKind.NEEDS_APPROVAL
    assert decide(only_min, candidate("1.99")).kind is DecisionKind.SKIP
    only_max = policy(rules={"maxMonthlyCost": "2.00"})
    assert decide(only_max, candidate("0.01")).kind is DecisionKind.RUN_AUTOMATICALLY
    assert decide(only_max, candidate("2.01")).kind is DecisionKind.SKIP
    with pytest.raises(policies.PolicyError, match="minMonthlyCost must not be above"):
        policy(rules={"minMonthlyCost": "3.00", "maxMonthlyCost": "2.00"})
    assert policy(rules={"minMonthlyCost": "2.00", "maxMonthlyCost": "2.00"}).rules


# --- boundaries (found by mutation testing: each assert kills a mutant that survived) -----------


def test_every_threshold_is_inclusive_at_its_boundary() -> None:
    """minConfidence, minAgeDays, requireApprovalAbove, maxMonthlyCost, maxCostPerRun and the
    approval's expiry, each exactly at the value: the comparison's side is the guard."""
    p = policy(rules={"minConfidence": 80, "minAgeDays": 7, "maxRiskLevel": "low"})
    exactly = candidate(
        confidence_score=80, details={"created_at": (NOW - timedelta(days=7)).isoformat()}
    )
    assert decide(p, exactly).kind is DecisionKind.RUN_AUTOMATICALLY
    assert decide(p, replace(exactly, confidence_score=79)).kind is DecisionKind.SKIP
    younger = candidate(details={"created_at": (NOW - timedelta(days=7, seconds=-1)).isoformat()})
    assert "under minAgeDays 7" in decide(p, younger).reason
    # At requireApprovalAbove (a person's run) and at maxMonthlyCost (unattended): may run.
    assert decide(policy(), candidate("50.00"), RunMode.MANUAL).kind is DecisionKind.APPROVED_TO_RUN
    assert decide(policy(), candidate("5.00")).kind is DecisionKind.RUN_AUTOMATICALLY
    # An approval is unusable from its expiry on, usable just before it.
    at = _approved(candidate("80.00"), cost="80.00", expires=NOW)
    assert decide(policy(), at).kind is DecisionKind.NEEDS_APPROVAL
    before = _approved(candidate("80.00"), cost="80.00", expires=NOW + timedelta(seconds=1))
    assert decide(policy(), before).kind is DecisionKind.APPROVED_TO_RUN
    # maxCostPerRun: items adding up to exactly the cap all run.
    capped = policy(maxCostPerRun="8.00", maxMonthlyCost="50.00")
    items = [candidate("4.00"), candidate("4.00"), candidate("0.50")]
    plan = policies.evaluate([capped], lambda _: iter(items), mode=RunMode.AUTOMATED, now=NOW)
    assert [str(d.candidate.monthly_cost) for d in plan.actionable] == ["4.00", "4.00"]
    assert [d.deferred for d in plan.decisions] == [False, False, True]


def test_age_counts_from_first_sight_without_a_creation_time() -> None:
    """Elastic IPs have no creation time: their age is from ``discovered_at``."""
    p = policy(rules={"minAgeDays": 7})
    no_created = candidate(details={"created_at": None}, discovered_at=NOW - timedelta(days=7))
    assert decide(p, no_created).kind is DecisionKind.RUN_AUTOMATICALLY
    recent = replace(no_created, discovered_at=NOW - timedelta(days=6, hours=23))
    decision = decide(p, recent)
    assert decision.kind is DecisionKind.SKIP
    assert decision.reason == "first seen 7.0 days ago, under minAgeDays 7"  # 6.96, rounded
    created = decide(p, candidate(details={"created_at": (NOW - timedelta(days=1)).isoformat()}))
    assert created.reason.startswith("created 1.0 days ago")


def test_tag_selectors_compare_values() -> None:
    include = policy(rules={"includeTags": {"team": "web"}})
    assert decide(include, candidate()).kind is DecisionKind.RUN_AUTOMATICALLY
    assert (
        "lacks the included tags team"
        in decide(include, candidate(details={"tags": {"team": "data"}})).reason
    )
    exclude = policy(rules={"excludeTags": {"env": "prod"}})
    staging = candidate(details={"tags": {"team": "web", "env": "staging"}})
    assert decide(exclude, staging).kind is DecisionKind.RUN_AUTOMATICALLY
    any_env = policy(rules={"excludeTags": {"env": "*"}})
    assert "has the excluded tags env" in decide(any_env, staging).reason


def test_failed_safety_checks_are_named_in_the_reason() -> None:
    failing = candidate(
        safety_checks_passed=False,
        details={
            "safety_checks": [
                {"name": "protection-tag", "passed": True, "detail": "none"},
                {"name": "attached", "passed": False, "detail": "attached to i-1"},
                {"name": "recent", "passed": False, "detail": "2 days old"},
            ]
        },
    )
    assert decide(policy(), failing).reason == (
        "failed safety checks: attached (attached to i-1); recent (2 days old)"
    )
    unnamed = candidate(safety_checks_passed=False, details={"safety_checks": []})
    assert decide(policy(), unnamed).reason == "failed safety checks: see the finding"


def test_decisions_keep_their_item_and_policy_and_every_item_is_decided() -> None:
    """The plan keeps one decision per item, each naming the item and the deciding policy;
    a policy that would act wins over an earlier one that would not; the mode is the run's."""
    p = policy(maxItemsPerRun=1)
    first, second, third = candidate("3.00"), candidate("2.00"), candidate("1.00")
    plan = policies.evaluate(
        [p], lambda _: iter([first, second, third]), mode=RunMode.MANUAL, now=NOW
    )
    assert [d.candidate for d in plan.decisions] == [first, second, third]
    assert all(d.policy is p for d in plan.decisions)
    assert plan.decisions[0].kind is DecisionKind.APPROVED_TO_RUN  # manual: a person's run
    assert [d.deferred for d in plan.decisions] == [False, True, True]
    refusing = policy(name="a-refuses", rules={"minConfidence": 99})
    acting = policy(name="b-acts")
    seen: list[str] = []

    def candidates_for(which: CleanupPolicy):
        seen.append(which.name)
        return iter([first])

    plan = policies.evaluate([acting, refusing], candidates_for, mode=RunMode.AUTOMATED, now=NOW)
    assert seen == ["a-refuses", "b-acts"]
    [decision] = plan.decisions
    assert decision.policy is acting and decision.candidate is first
    later_refusal = policies.evaluate(
        [policy(name="a-acts"), policy(name="b-refuses", rules={"minConfidence": 99})],
        lambda _: iter([first]),
        mode=RunMode.AUTOMATED,
        now=NOW,
    )
    assert [d.policy.name for d in later_refusal.decisions] == ["a-acts"]
    skip = decide(policy(rules={"minConfidence": 99}), first)
    assert skip.candidate is first and skip.policy.name == "volumes"
    ok = decide(p, first)
    assert ok.candidate is first and ok.policy is p
    lapsed = _approved(candidate("80.00"), cost="10.00", expires=NOW + timedelta(days=1))
    needs = decide(p, lapsed)
    assert needs.candidate is lapsed and needs.policy is p
    assert needs.reason.endswith(f"({needs.lapsed_approval})")
    assert decide(p, candidate("80.00")).reason == (
        "costs 80.00/month, above requireApprovalAbove 50.00"
    )


def test_the_first_policy_that_acts_keeps_the_item() -> None:
    item = candidate("3.00")
    plan = policies.evaluate(
        [policy(name="b-acts-too"), policy(name="a-acts")],
        lambda _: iter([item]),
        mode=RunMode.AUTOMATED,
        now=NOW,
    )
    assert [d.policy.name for d in plan.decisions] == ["a-acts"]
    neither = policies.evaluate(
        [
            policy(name="a-no", rules={"minConfidence": 99}),
            policy(name="b-no", rules={"minConfidence": 98}),
        ],
        lambda _: iter([item]),
        mode=RunMode.AUTOMATED,
        now=NOW,
    )
    assert [d.policy.name for d in neither.decisions] == ["a-no"]


# --- what a policy file's errors say, in full, and the edges of the tag and number checks -------


def _refusal(tmp_path: Path, text: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(policies.PolicyError) as refused:
        policies.load_policies(path)
    return str(refused.value).removeprefix(f"{path}")


def test_policy_file_refusals_name_the_file_and_say_what_is_wrong(tmp_path: Path) -> None:
    assert _refusal(tmp_path, "name: [unclosed") == (
        " is not valid YAML: expected ',' or ']', but got '<stream end>' (line 1, column 16)"
    )
    # A reader error has no position mark: its first line is what is said.
    assert _refusal(tmp_path, "name: a\x07") == (
        " is not valid YAML: unacceptable character #x0007: special characters are not allowed"
    )
    expected = ": expected a policy, a list of policies, or 'policies: [...]'"
    assert _refusal(tmp_path, "- 1\n- 2\n") == expected
    assert _refusal(tmp_path, "policies: []\n") == expected  # an empty file of policies
    assert _refusal(tmp_path, f"name: a\n{EIP}dryRun: 1\n") == (
        ": policy 'a' is invalid: dryRun: must be true or false, not 1"
    )
    twice = "- {name: %s, resourceType: elastic-ip, action: release}\n"
    assert _refusal(tmp_path, (twice % "b") * 2 + (twice % "a") * 2) == (
        ": policy names must be unique; repeated: a, b"
    )


def test_a_problem_of_the_whole_policy_is_not_given_a_field(tmp_path: Path) -> None:
    # The NUL check runs on the whole document before any field: its location is empty.
    with pytest.raises(policies.PolicyError) as refused:
        policies.parse_policy({"name": "a", "resourceType": "elastic-ip", "action": "x\0y"})
    assert str(refused.value).startswith("policy: policy 'a' is invalid: action: 'x\\x00y' ")


def test_numbers_of_up_to_100_digits_are_read(tmp_path: Path) -> None:
    hundred = _refusal(tmp_path, f"name: a\n{EIP}maxItemsPerRun: {'9' * 100}\n")
    assert "maxItemsPerRun: Input should be less than or equal to 1000" in hundred
    assert "digits" not in hundred
    assert "more than 100 digits" in _refusal(
        tmp_path, f"name: a\n{EIP}maxItemsPerRun: {'9' * 101}\n"
    )


@pytest.mark.parametrize(
    ("tags", "accepted"),
    [
        ({"k": "*"}, True),
        ({"k" * 128: "*"}, True),
        ({"k" * 129: "*"}, False),
        ({"": "*"}, False),
        ({"k": "v" * 256}, True),
        ({"k": "v" * 257}, False),
        ({"k": "a\tb"}, False),
    ],
)
def test_tag_keys_and_values_have_the_limits_aws_has(tags: dict[str, str], accepted: bool) -> None:
    document = {"name": "a", "resourceType": "elastic-ip", "action": "release"}
    if accepted:
        assert policies.parse_policy({**document, "rules": {"excludeTags": tags}})
        return
    with pytest.raises(policies.PolicyError) as refused:
        policies.parse_policy({**document, "rules": {"excludeTags": tags}})
    message = str(refused.value)
    assert "rules.excludeTags: " in message
    key = next(iter(tags))
    if len(key) in (0, 129):
        assert f"tag key {key!r} must be text of 1 to 128 characters" in message
    else:
        assert message.endswith(
            f"the value of tag {key!r} must be at most 256 characters without control characters"
        )


def test_a_policy_document_is_its_json_form_with_the_crds_field_names() -> None:
    p = policy(rules={"minMonthlyCost": "1.50", "includeTags": {"team": "web"}})
    document = p.to_document()
    assert document["resourceType"] == "elastic-ip"
    assert document["maxMonthlyCost"] == "5.00"  # money as text, exactly
    assert document["dryRun"] is False
    assert document["rules"]["minMonthlyCost"] == "1.50"
    assert document["rules"]["includeTags"] == {"team": "web"}
    assert policies.parse_policy(document) == p  # and it reads back as the same policy


def test_the_recorded_plan_lists_each_actionable_item_in_full() -> None:
    p = policy(maxMonthlyCost="50.00")
    acting = candidate("4.00")
    skipped = candidate("9.00", confidence_score=10)
    plan = policies.evaluate(
        [p], lambda _: iter([skipped, acting]), mode=RunMode.AUTOMATED, now=NOW
    )
    assert plan.document() == {
        "counts": {kind.value: 0 for kind in DecisionKind}
        | {"skip": 1, "run-automatically": 1, "deferred": 0},
        "actionable": [
            {
                "item": str(acting.id),
                "resource_id": acting.resource_id,
                "region": "us-east-1",
                "account_id": "111111111111",
                "monthly_cost": "4.00",
                "policy": "volumes",
                "decision": "run-automatically",
            }
        ],
    }


# --- approvals bound to one policy's spec, and the decisions' full reasons ---------------------


def _bound(
    c: Candidate, p: CleanupPolicy, *, name: str | None = None, spec: str | None = None
) -> Candidate:
    approved = _approved(c, cost=str(c.monthly_cost), expires=NOW + timedelta(days=1))
    assert approved.approval is not None
    return replace(
        approved,
        approval=replace(
            approved.approval,
            policy_name=p.name if name is None else name,
            policy_hash=policies.spec_hash(p) if spec is None else spec,
        ),
    )


def test_an_approval_bound_to_a_policy_holds_under_that_policy_only() -> None:
    p = policy()
    expensive = candidate("80.00")
    here = decide(p, _bound(expensive, p))
    assert here.kind is DecisionKind.APPROVED_TO_RUN
    assert (here.candidate.id, here.policy) == (expensive.id, p)
    assert here.reason == "approved by ann@example.com at up to 80.00/month"

    elsewhere = decide(p, _bound(expensive, p, name="other-policy"))
    assert elsewhere.kind is DecisionKind.NEEDS_APPROVAL
    assert elsewhere.lapsed_approval is None  # it holds there; it did not lapse here


def test_an_approval_lapses_when_its_policy_changed() -> None:
    p = policy()
    before = policy(maxCostPerRun="400.00")
    decision = decide(p, _bound(candidate("80.00"), p, spec=policies.spec_hash(before)))
    assert decision.kind is DecisionKind.NEEDS_APPROVAL
    assert decision.lapsed_approval == (
        "CleanupPolicy volumes changed since the approval by ann@example.com"
    )
    assert (
        policies.approval_problem(
            _bound(candidate("80.00"), p, spec=policies.spec_hash(before)), NOW
        )
        is None
    )  # without the policy (the CLI's view) the spec is not compared


def test_an_approval_holds_when_its_policy_resolves_other_accounts() -> None:
    """AwsAccounts come and go, and an approval names its own account: the accounts a policy
    resolved are not part of what an approval binds to, so a new account does not void it."""
    approved_under = policy(accounts=["111111111111"])
    resolving_more = policy(accounts=["111111111111", "222222222222"])
    decision = decide(resolving_more, _bound(candidate("80.00"), approved_under))
    assert decision.kind is DecisionKind.APPROVED_TO_RUN
    assert decision.lapsed_approval is None


def test_a_person_started_run_keeps_the_note_of_a_lapsed_approval() -> None:
    p = policy(autoExecute=False)
    c = candidate("20.00")
    lapsed = _approved(c, cost="20.00", expires=NOW - timedelta(seconds=1))
    decision = decide(p, lapsed, RunMode.MANUAL)
    assert decision.kind is DecisionKind.APPROVED_TO_RUN
    expired = (
        f"the approval by ann@example.com expired at {(NOW - timedelta(seconds=1)).isoformat()}"
    )
    assert decision.lapsed_approval == expired
    assert (
        decision.reason
        == "costs 20.00/month, within requireApprovalAbove 50.00; run started by a person"
    )


def test_every_closed_gate_of_an_automatic_run_is_named() -> None:
    p = policy(autoExecute=False, maxMonthlyCost="5.00")
    c = candidate("20.00", organization_auto_cleanup=False, account_auto_cleanup=False)
    assert decide(p, c).reason == (
        "costs 20.00/month, above maxMonthlyCost 5.00; the policy does not autoExecute; "
        "the organization's auto cleanup is off (for a namespace: annotation "
        "cloudsweep.io/auto-cleanup=enabled); account 111111111111's auto cleanup is off"
    )


def test_missing_included_tags_are_listed() -> None:
    p = policy(rules={"minAgeDays": 7, "includeTags": {"a": "*", "b": "*"}})
    assert decide(p, candidate(details={"tags": {}})).reason == "lacks the included tags a, b"


def test_refusals_of_the_whole_document_and_of_an_actions_parameters_say_what_is_wrong() -> None:
    document = {"name": "a", "resourceType": "elastic-ip", "action": "release"}
    with pytest.raises(policies.PolicyError) as refused:
        policies.parse_policy({**document, "x\0": 1})
    assert str(refused.value) == (
        "policy: policy 'a' is invalid: key 'x\\x00' contains a NUL character (at position 1), "
        "which PostgreSQL cannot store"
    )
    with pytest.raises(policies.PolicyError) as refused:
        policies.parse_policy({**document, "parameters": {"bogus": 1}}, source="p.yaml")
    assert (
        str(refused.value) == "p.yaml: policy 'a' is invalid: bogus: Extra inputs are not permitted"
    )


def test_a_lapsed_approval_is_kept_on_every_kind_of_decision() -> None:
    gone = NOW - timedelta(seconds=1)
    expired = f"the approval by ann@example.com expired at {gone.isoformat()}"
    # Gates closed: needs approval, with the lapse noted.
    closed = policy(autoExecute=False)
    c = _approved(candidate("3.00"), cost="3.00", expires=gone)
    decision = decide(closed, c)
    assert (decision.kind, decision.candidate, decision.policy) == (
        DecisionKind.NEEDS_APPROVAL,
        c,
        closed,
    )
    assert decision.lapsed_approval == expired
    assert decision.reason == f"the policy does not autoExecute ({expired})"
    # Gates open: runs automatically, and still says the approval lapsed.
    automatic = decide(policy(), c)
    assert automatic.kind is DecisionKind.RUN_AUTOMATICALLY
    assert automatic.lapsed_approval == expired
    changed = _approved(candidate("80.00"), cost="80.00", expires=NOW + timedelta(days=1), fp="x")
    assert decide(policy(), changed).lapsed_approval == (
        "the resource changed since it was approved (tags, safety checks or risk)"
    )


def test_every_problem_of_a_policy_and_every_excluded_tag_is_named() -> None:
    with pytest.raises(policies.PolicyError) as refused:
        policies.parse_policy(
            {"name": "a", "resourceType": "elastic-ip", "action": "release", "dryRun": 1, "x": 1}
        )
    assert str(refused.value) == (
        "policy: policy 'a' is invalid: dryRun: must be true or false, not 1; "
        "x: Extra inputs are not permitted"
    )
    p = policy(rules={"minAgeDays": 7, "excludeTags": {"a": "*", "b": "*"}})
    assert decide(p, candidate(details={"tags": {"a": "1", "b": "2"}})).reason == (
        "has the excluded tags a, b"
    )
    long = "v" * 50 + "\0"
    with pytest.raises(policies.PolicyError) as refused:
        policies.parse_policy({"name": "a", "resourceType": "elastic-ip", "action": long})
    assert f"invalid: action: {long[:40]!r} contains a NUL" in str(refused.value)
    with pytest.raises(policies.PolicyError) as refused:
        policies.parse_policy("a\0" + "w" * 50)  # type: ignore[arg-type]  # not even a mapping
    assert f"invalid: {('a' + chr(0) + 'w' * 50)[:40]!r} contains a NUL" in str(refused.value)


# --- where unstorable text is, unnamed policies, and decisions independent of input order -------


def test_a_long_key_or_a_list_item_postgresql_cannot_store_is_refused_with_where_it_is() -> None:
    document = {"name": "a", "resourceType": "elastic-ip", "action": "release"}
    key = "k" * 50 + "\0"
    with pytest.raises(policies.PolicyError) as refused:
        policies.parse_policy({**document, "parameters": {key: 1}})
    assert str(refused.value) == (
        f"policy: policy 'a' is invalid: parameters: key {key[:40]!r} contains a NUL character "
        "(at position 50), which PostgreSQL cannot store"
    )
    # Inside a list too: a region is plain text to the model, so only this check refuses it.
    with pytest.raises(policies.PolicyError) as refused:
        policies.parse_policy({**document, "rules": {"regions": ["us-east-1", "eu-west-1\0"]}})
    assert str(refused.value) == (
        "policy: policy 'a' is invalid: rules.regions[1]: 'eu-west-1\\x00' contains a NUL "
        "character (at position 9), which PostgreSQL cannot store"
    )


def test_a_policy_without_a_name_is_called_question_mark(tmp_path: Path) -> None:
    assert _refusal(tmp_path, EIP) == ": policy '?' is invalid: name: Field required"
    with pytest.raises(policies.PolicyError) as refused:
        policies.parse_policy(["not", "a", "mapping"])  # type: ignore[arg-type]
    assert str(refused.value) == (
        "policy: policy '?' is invalid: "
        "Input should be a valid dictionary or instance of CleanupPolicy"
    )


def test_a_policy_file_with_an_impossible_date_says_so(tmp_path: Path) -> None:
    # PyYAML reads 2026-02-30 as a date and fails with a ValueError, not a YAMLError.
    assert _refusal(tmp_path, f"name: a\n{EIP}parameters: {{since: 2026-02-30}}\n") == (
        " is not valid YAML: day is out of range for month"
    )


def test_an_approval_holds_when_its_policy_lists_the_same_tags_in_another_order() -> None:
    """The spec an approval binds to is the policy's content, not the order its mappings were
    written in: re-applying the same policy with its tags reordered must not void approvals."""
    tags = {"a": "*", "b": "1"}
    approved_under = policy(rules={"excludeTags": tags, "includeTags": {"team": "web", "x": "*"}})
    reordered = policy(
        rules={
            "excludeTags": dict(reversed(tags.items())),
            "includeTags": {"x": "*", "team": "web"},
        }
    )
    item = candidate("80.00", details={"tags": {"team": "web", "x": "1"}})
    decision = decide(reordered, _bound(item, approved_under))
    assert decision.kind is DecisionKind.APPROVED_TO_RUN
    assert decision.lapsed_approval is None
    # ... while a changed value is a changed policy.
    changed = policy(
        rules={"excludeTags": {"a": "*", "b": "2"}, "includeTags": {"team": "web", "x": "*"}}
    )
    assert decide(changed, _bound(item, approved_under)).kind is DecisionKind.NEEDS_APPROVAL


def test_equal_cost_items_are_taken_in_the_same_order_whatever_order_they_arrive_in() -> None:
    """Under a cap, which of several equally valuable items acts must not depend on the order
    the store happened to return them in: the same one acts on every run."""
    p = policy(maxItemsPerRun=1)
    first, second = (candidate("3.00", id=uuid.UUID(int=n)) for n in (1, 2))
    for arriving in ([first, second], [second, first]):
        plan = policies.evaluate(
            [p], lambda _, a=arriving: iter(a), mode=RunMode.AUTOMATED, now=NOW
        )
        assert [d.candidate.id for d in plan.actionable] == [first.id]
        assert [d.candidate.id for d in plan.decisions] == [first.id, second.id]
