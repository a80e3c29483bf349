"""``cloudsweep.crds.validate``: the samples pass, bad custom resources are refused naming the field.

The bad inputs are in ``data/bad_inputs.yaml``, each a change to a sample in ``deploy/samples/``.
"""

from __future__ import annotations

import copy
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudsweep import crds

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "deploy" / "samples"
SAMPLE_FILES = {
    "AwsAccount": SAMPLES / "awsaccount.yaml",
    "ScanSchedule": SAMPLES / "scanschedule.yaml",
    "CleanupPolicy": SAMPLES / "cleanuppolicy.yaml",
    "CleanupApproval": SAMPLES / "cleanupapproval.yaml",
}
BAD_INPUTS = yaml.safe_load((Path(__file__).parent / "data" / "bad_inputs.yaml").read_text())


def sample(kind: str) -> dict[str, Any]:
    return yaml.safe_load(SAMPLE_FILES[kind].read_text())


def with_spec(kind: str, **changes: Any) -> dict[str, Any]:
    obj = sample(kind)
    for key, value in changes.items():
        if value is None:
            obj["spec"].pop(key, None)
        else:
            obj["spec"][key] = value
    return obj


def minimal_policy(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cloudsweep.io/v1alpha1",
        "kind": "CleanupPolicy",
        "metadata": {"name": "p"},
        "spec": {"accounts": ["a"], **spec},
    }


@pytest.mark.parametrize("kind", sorted(SAMPLE_FILES))
def test_every_sample_is_valid(kind: str) -> None:
    assert crds.validate(kind, sample(kind)) == []


def test_every_sample_kind_has_a_sample() -> None:
    assert sorted(SAMPLE_FILES) == sorted(r.kind for r in crds.RESOURCES)
    for kind, path in SAMPLE_FILES.items():
        assert sample(kind)["kind"] == kind, path


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c["id"] for c in BAD_INPUTS])
def test_bad_input_is_refused_naming_the_field(case: dict[str, Any]) -> None:
    obj = with_spec(case["kind"], **case["set"])

    errors = crds.validate(case["kind"], obj)

    assert errors, f"{case['id']} was accepted"
    prefix = case["field"] + ":"
    naming = [e for e in errors if e.startswith(prefix)]
    assert naming, f"no message names {case['field']}: {errors}"
    assert any(case["says"] in e for e in naming), errors


def test_bad_input_ids_are_unique() -> None:
    ids = [c["id"] for c in BAD_INPUTS]
    assert len(ids) == len(set(ids))


def test_account_id_written_as_yaml_number_is_refused() -> None:
    text = (
        SAMPLE_FILES["AwsAccount"]
        .read_text()
        .replace('accountId: "123456789012"', "accountId: 123456789012")
    )
    obj = yaml.safe_load(text)
    assert obj["spec"]["accountId"] == 123456789012  # YAML read a number

    errors = crds.validate("AwsAccount", obj)

    assert len(errors) == 1, errors
    assert errors[0].startswith("spec.accountId: must be of type string")
    assert "quote the value in YAML" in errors[0]


def test_account_id_with_leading_zero_as_yaml_number_is_refused() -> None:
    # YAML 1.1 reads 0-led digits 0-7 as an octal number: the account ID would silently change.
    obj = with_spec("AwsAccount", roleArn="arn:aws:iam::012345670123:role/CloudSweep")
    obj["spec"]["accountId"] = yaml.safe_load("accountId: 012345670123")["accountId"]
    assert obj["spec"]["accountId"] == 0o12345670123

    errors = crds.validate("AwsAccount", obj)

    assert any(e.startswith("spec.accountId: must be of type string") for e in errors), errors


def test_role_arn_of_another_account_is_refused_by_the_cel_rule_only() -> None:
    obj = with_spec("AwsAccount", roleArn="arn:aws:iam::210987654321:role/CloudSweepReadOnly")

    errors = crds.validate("AwsAccount", obj)

    assert errors == [
        "spec.roleArn: roleArn must be a role in the account accountId: the account number "
        "inside the role ARN (arn:aws:iam::<account>:role/...) differs from accountId"
    ]


def test_a_role_with_a_path_in_the_declared_account_is_accepted() -> None:
    obj = with_spec("AwsAccount", roleArn="arn:aws:iam::123456789012:role/ops/cloudsweep+scan@x")
    assert crds.validate("AwsAccount", obj) == []


def test_an_account_may_name_all_its_enabled_regions() -> None:
    assert crds.validate("AwsAccount", with_spec("AwsAccount", regions=["all"])) == []


def test_cel_rules_run_beside_a_failed_pattern_as_on_the_api_server() -> None:
    # The API server (seen on kube-real, tests/kube_real) still evaluates every rule after a
    # pattern, minimum, maximum or format failure: the account rule is reported too.
    obj = with_spec("AwsAccount", roleArn="arn:aws:iam::1:role/x")

    errors = crds.validate("AwsAccount", obj)

    assert [e.split(":")[0] for e in errors] == ["spec.roleArn", "spec.roleArn"], errors
    assert errors[0].startswith("spec.roleArn: invalid value")
    assert "differs from accountId" in errors[1]


def test_no_cel_rule_runs_after_a_blocking_schema_error_as_on_the_api_server() -> None:
    # A wrong type, enum value, missing field or too long a value anywhere stops every rule: a
    # rule like ``double(self.maxMonthlyCost)`` could not be evaluated on such a value.
    obj = with_spec("CleanupPolicy", maxMonthlyCost=60, requireApprovalAbove="50.00")

    errors = crds.validate("CleanupPolicy", obj)

    assert [e.split(":")[0] for e in errors] == ["spec.maxMonthlyCost"], errors


@pytest.mark.parametrize(
    "schedule",
    [
        "0 3 * * *",
        "*/15 * * * *",
        "0 8-18 * * MON-FRI",
        "30 2 1,15 * *",
        "@hourly",
        "@daily",
        "@weekly",
    ],
)
def test_cron_schedules_and_macros_are_accepted(schedule: str) -> None:
    assert crds.validate("ScanSchedule", with_spec("ScanSchedule", schedule=schedule)) == []


@pytest.mark.parametrize("schedule", ["@every 5m", "@reboot", "* * * * * *", "", "0 3 * * * "])
def test_other_schedules_are_refused(schedule: str) -> None:
    errors = crds.validate("ScanSchedule", with_spec("ScanSchedule", schedule=schedule))
    assert any(e.startswith("spec.schedule:") for e in errors), errors


def test_cron_values_are_checked_even_when_another_field_is_wrong() -> None:
    obj = with_spec("ScanSchedule", schedule="0 25 * * *", scanType="deep")

    errors = crds.validate("ScanSchedule", obj)

    assert sorted(e.split(":")[0] for e in errors) == ["spec.scanType", "spec.schedule"]


def test_a_rule_that_cannot_be_evaluated_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(crds._CEL_FUNCTIONS, "split", lambda *_: 1 // 0)
    crds._cel_program.cache_clear()
    try:
        errors = crds.validate("AwsAccount", sample("AwsAccount"))
    finally:
        crds._cel_program.cache_clear()

    assert len(errors) == 1 and "could not be evaluated" in errors[0], errors
    assert errors[0].startswith("spec.roleArn:")


def test_account_names_instead_of_selector_are_accepted() -> None:
    obj = with_spec(
        "ScanSchedule", accountSelector=None, accounts=["payments-prod", "payments-dev"]
    )
    assert crds.validate("ScanSchedule", obj) == []


def test_empty_selector_selects_every_account_of_the_namespace_and_is_valid() -> None:
    obj = with_spec("ScanSchedule", accountSelector={})
    assert crds.validate("ScanSchedule", obj) == []


@pytest.mark.parametrize(
    ("resource_type", "action"),
    [(t, a) for t in crds.ACTIONS_BY_RESOURCE_TYPE for a in crds.ACTIONS_BY_RESOURCE_TYPE[t]],
)
def test_every_allowed_action_is_accepted(resource_type: str, action: str) -> None:
    obj = minimal_policy(resourceType=resource_type, action=action)
    assert crds.validate("CleanupPolicy", obj) == []


def test_the_cel_action_rules_allow_exactly_the_action_table() -> None:
    schema = crds.schema("CleanupPolicy")
    all_actions = schema["properties"]["spec"]["properties"]["action"]["enum"]
    for resource_type, allowed in crds.ACTIONS_BY_RESOURCE_TYPE.items():
        for action in all_actions:
            errors = crds.validate(
                "CleanupPolicy", minimal_policy(resourceType=resource_type, action=action)
            )
            assert (errors == []) == (action in allowed), (resource_type, action, errors)


def test_approval_threshold_equal_to_auto_execute_limit_is_accepted() -> None:
    obj = with_spec("CleanupPolicy", maxMonthlyCost="50", requireApprovalAbove="50.00")
    assert crds.validate("CleanupPolicy", obj) == []


def test_money_comparison_is_exact_at_cents() -> None:
    # Strings compared through double(): cents apart must still order correctly.
    ok = with_spec(
        "CleanupPolicy", maxMonthlyCost="99999999.98", requireApprovalAbove="99999999.99"
    )
    bad = with_spec(
        "CleanupPolicy", maxMonthlyCost="99999999.99", requireApprovalAbove="99999999.98"
    )
    assert crds.validate("CleanupPolicy", ok) == []
    assert crds.validate("CleanupPolicy", bad) != []


def test_defaults_are_safe() -> None:
    spec = crds.apply_defaults(
        "CleanupPolicy", minimal_policy(resourceType="elastic-ip", action="release")
    )["spec"]

    assert spec["dryRun"] is True
    assert spec["autoExecute"] is False
    assert spec["maxMonthlyCost"] == "0.00"
    assert spec["requireApprovalAbove"] == "50.00"
    assert spec["maxItemsPerRun"] == 20
    assert spec["maxCostPerRun"] == "500.00"
    assert spec["rules"] == {"minAgeDays": 7, "minConfidence": 80, "maxRiskLevel": "low"}
    assert "approvals" not in spec


def test_defaults_fill_only_missing_fields_and_do_not_change_the_input() -> None:
    obj = minimal_policy(resourceType="elastic-ip", action="release", dryRun=False)
    before = copy.deepcopy(obj)

    spec = crds.apply_defaults("CleanupPolicy", obj)["spec"]

    assert spec["dryRun"] is False
    assert obj == before


def test_schedule_defaults() -> None:
    obj = with_spec(
        "ScanSchedule", timeZone=None, concurrencyPolicy=None, scanType=None, suspend=None
    )
    spec = crds.apply_defaults("ScanSchedule", obj)["spec"]
    assert (spec["timeZone"], spec["concurrencyPolicy"], spec["scanType"], spec["suspend"]) == (
        "Etc/UTC",
        "Forbid",
        "full",
        False,
    )


def test_account_defaults() -> None:
    obj = with_spec("AwsAccount", regions=None, scanEnabled=None, autoCleanupEnabled=None)
    spec = crds.apply_defaults("AwsAccount", obj)["spec"]
    assert spec["regions"] == ["us-east-1", "us-west-2"]
    assert spec["scanEnabled"] is True
    assert spec["autoCleanupEnabled"] is False


def test_account_id_is_immutable_on_update() -> None:
    old = sample("AwsAccount")
    new = with_spec(
        "AwsAccount", accountId="210987654321", roleArn="arn:aws:iam::210987654321:role/CloudSweep"
    )

    assert crds.validate("AwsAccount", new) == []  # as a new object it is fine
    assert crds.validate("AwsAccount", new, old=old) == [
        "spec.accountId: accountId is immutable; create a new AwsAccount for another account"
    ]
    assert crds.validate("AwsAccount", old, old=old) == []


def test_unknown_fields_are_refused_at_every_level() -> None:
    obj = sample("CleanupPolicy")
    obj["extra"] = 1
    obj["spec"]["rules"]["olderThan"] = "30d"
    obj["spec"]["approvals"] = [  # the retired in-policy approvals (docs/approvals.md)
        {
            "accountId": "123456789012",
            "region": "us-east-1",
            "resourceId": "vol-1",
            "maxMonthlyCost": "1.00",
            "approvedFor": "ever",
        }
    ]

    errors = crds.validate("CleanupPolicy", obj)

    assert sorted(e.split(":")[0] for e in errors) == [
        "extra",
        "spec.approvals[0].approvedFor",
        "spec.rules.olderThan",
    ]
    assert all("unknown field" in e for e in errors)


def test_wrong_kind_and_api_version_are_refused() -> None:
    obj = sample("AwsAccount")
    obj["apiVersion"] = "cloudsweep.io/v1"

    errors = crds.validate("CleanupPolicy", obj)

    assert "apiVersion: must be cloudsweep.io/v1alpha1, not 'cloudsweep.io/v1'" in errors
    assert "kind: must be CleanupPolicy, not 'AwsAccount'" in errors


def test_missing_spec_is_refused() -> None:
    obj = sample("ScanSchedule")
    del obj["spec"]
    assert crds.validate("ScanSchedule", obj) == ["spec: required field is missing"]


def test_status_written_by_the_operator_is_validated_too() -> None:
    obj = sample("AwsAccount")
    obj["status"] = {
        "externalId": "cs-7f3a9c2e-4b1d-4e8a-9f0c-2d6b8e1a5c3f",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Scanned",
                "message": "",
                "lastTransitionTime": "2025-01-31T12:00:00Z",
                "observedGeneration": 1,
            },
            {"type": "Connected", "status": "Maybe", "reason": "x", "lastTransitionTime": "now"},
        ],
        "lastScan": {"monthlyWaste": "12.5", "completionTime": "2025-01-31T12:00:00.5+01:00"},
    }

    errors = crds.validate("AwsAccount", obj)

    assert sorted(e.split(":")[0] for e in errors) == [
        "status.conditions[1].lastTransitionTime",
        "status.conditions[1].status",
    ], errors


def test_yaml_timestamps_are_read_as_kubectl_sends_them() -> None:
    obj = sample("CleanupApproval")
    obj["spec"]["expiresAt"] = yaml.safe_load("t: 2030-01-31T00:00:00Z")["t"]
    assert crds.validate("CleanupApproval", obj) == []


def test_huge_inputs_are_refused_quickly() -> None:
    obj = sample("CleanupPolicy")
    obj["spec"]["approvals"] = [
        {
            "accountId": "123456789012",
            "region": "us-east-1",
            "resourceId": f"vol-{i:017x}",
            "maxMonthlyCost": "1",
        }
        for i in range(5000)
    ]
    obj["spec"]["rules"]["excludeTags"] = {"k": "v" * 1_000_000}
    started = time.monotonic()

    errors = crds.validate("CleanupPolicy", obj)

    assert time.monotonic() - started < 30
    assert any(e.startswith("spec.approvals: must have at most 500 items") for e in errors)
    assert any(
        e.startswith("spec.rules.excludeTags.k: must be at most 256 characters") for e in errors
    )


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown custom resource kind 'Widget'"):
        crds.validate("Widget", {})


def test_kind_can_be_named_by_plural_or_short_name() -> None:
    assert crds.resource("awsaccounts") is crds.AWS_ACCOUNT
    assert crds.resource("cleanpol") is crds.CLEANUP_POLICY
    assert crds.resource("scanschedule") is crds.SCAN_SCHEDULE


def test_crds_dir_can_be_overridden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(ROOT / "crds", tmp_path / "crds")
    path = tmp_path / "crds" / crds.AWS_ACCOUNT.file_name
    path.write_text(path.read_text().replace("- awsacct", "- awsacct\n    - acct"))
    monkeypatch.setenv(crds.CRDS_DIR_ENV, str(tmp_path / "crds"))

    assert crds.crds_dir() == tmp_path / "crds"
    assert crds.load("AwsAccount")["spec"]["names"]["shortNames"] == ["awsacct", "acct"]


def test_missing_crds_dir_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(crds.CRDS_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=crds.CRDS_DIR_ENV):
        crds.load("AwsAccount")


def test_an_admitted_cleanup_approval_cannot_be_changed() -> None:
    old = sample("CleanupApproval")
    old["metadata"]["name"] = "a"
    assert crds.validate("CleanupApproval", old, old=old) == []
    raised = copy.deepcopy(old)
    raised["spec"]["maxMonthlyCost"] = "9999.00"
    errors = crds.validate("CleanupApproval", raised, old=old)
    assert errors == [
        "spec: a CleanupApproval cannot be changed once admitted: delete it and create a new one"
    ], errors
    assert crds.validate("CleanupApproval", raised) == []  # a new object may say anything valid
