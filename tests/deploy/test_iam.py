"""The IAM documents in deploy/iam: generated, least privilege, and enough for the code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudsweep import iam
from tests.deploy import aws_calls

REPO = Path(__file__).resolve().parents[2]
IAM_DIR = REPO / "deploy" / "iam"

# Detected by the source scan but not AWS calls, each with the reason.
NOT_CALLED = {
    ("cloudwatch", "ListTagsForResource", "cloudsweep/detectors/inventory.py"): (
        "list_tags_for_resource is called on logs (log groups); the module also names cloudwatch "
        "(the metrics reader)"
    ),
    ("ec2", "DescribeTags", "cloudsweep/detectors/inventory.py"): (
        "Inventory._tags calls describe_tags for elb and elbv2 only; the module also names ec2"
    ),
    ("autoscaling", "DescribeTags", "cloudsweep/detectors/inventory.py"): (
        "Inventory._tags calls describe_tags for elb and elbv2 only; the module also names "
        "autoscaling (for DescribeLaunchConfigurations)"
    ),
    ("autoscaling", "DescribeLoadBalancers", "cloudsweep/detectors/inventory.py"): (
        "describe_load_balancers is called on elb and elbv2; autoscaling has an operation of "
        "that name"
    ),
    ("rds", "ListTagsForResource", "cloudsweep/detectors/inventory.py"): (
        "list_tags_for_resource is called on logs (log group tags); rds has one of that name"
    ),
}


# IAM permission names that are not operation names: KMS's ReEncrypt needs both of these.
IAM_ONLY_ACTIONS = {
    "kms:ReEncryptFrom": "kms:ReEncrypt",
    "kms:ReEncryptTo": "kms:ReEncrypt",
    **{action: f"s3:{op}" for (_, op), action in aws_calls.IAM_ACTION_OF.items()},
}
# Permissions that are no API operation at all.
PERMISSION_ONLY = {"iam:PassRole"}


def _statements(policy: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from policy["Statement"]


def _actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in _statements(policy) for a in s["Action"]}


def _policies() -> dict[str, dict[str, Any]]:
    return {
        "scan": iam.scan_policy(),
        "cleanup": iam.cleanup_policy(),
        "operator": iam.operator_policy(),
        "command line": iam.command_line_policy(),
    }


@pytest.fixture(scope="module")
def calls() -> set[aws_calls.Call]:
    return {
        c
        for c in aws_calls.package_calls(REPO / "operator")
        if (c.service, c.operation, c.module) not in NOT_CALLED
    }


def test_committed_files_equal_the_generated_ones() -> None:
    for name, document in iam.documents().items():
        path = IAM_DIR / name
        assert path.is_file(), f"{path} is missing: run `python -m cloudsweep.iam deploy/iam`"
        assert json.loads(path.read_text()) == document, (
            f"{path} is stale: run `python -m cloudsweep.iam deploy/iam`"
        )


def test_every_operation_the_code_calls_is_allowed(calls: set[aws_calls.Call]) -> None:
    allowed = set().union(*map(_actions, _policies().values())) | iam.UNRESTRICTED_OPERATIONS
    missing = sorted(f"{c.action} (called in {c.module})" for c in calls if c.action not in allowed)
    assert not missing, "operations the code calls that no policy allows:\n" + "\n".join(missing)


def test_policies_allow_nothing_the_code_does_not_call(calls: set[aws_calls.Call]) -> None:
    called = {c.action for c in calls}
    for name, policy in _policies().items():
        extra = sorted(_actions(policy) - called - set(iam.IMPLIED_ACTIONS))
        assert not extra, f"the {name} policy allows actions no code calls: {extra}"


def test_implied_actions_and_exemptions_are_not_stale(calls: set[aws_calls.Call]) -> None:
    allowed = set().union(*map(_actions, _policies().values()))
    called = {c.action for c in calls}
    for action in iam.IMPLIED_ACTIONS:
        assert action in allowed, f"IMPLIED_ACTIONS lists {action}, which no policy allows"
        assert action not in called, f"{action} is called directly: drop it from IMPLIED_ACTIONS"
    detected = {
        (c.service, c.operation, c.module) for c in aws_calls.package_calls(REPO / "operator")
    }
    for key in NOT_CALLED:
        assert key in detected, f"NOT_CALLED entry {key} is no longer detected: remove it"


def test_no_wildcard_actions_and_only_allow_statements() -> None:
    for name, policy in _policies().items():
        assert policy["Version"] == "2012-10-17"
        sids = [s["Sid"] for s in _statements(policy)]
        assert len(sids) == len(set(sids)), f"duplicate Sid in the {name} policy"
        for statement in _statements(policy):
            assert statement["Effect"] == "Allow"
            assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}
            for action in statement["Action"]:
                assert "*" not in action and "?" not in action, f"{name}: wildcard {action}"
            resource = statement["Resource"]
            # "*" where AWS has no resource-level permissions for the action (or the targets are
            # unknown); roles only for AssumeRole.
            assert resource in ("*", "arn:*:iam::*:role/*"), resource


def test_every_action_is_a_real_operation() -> None:
    known: set[str] = set()
    for service in (
        "ec2",
        "elbv2",
        "elb",
        "rds",
        "cloudwatch",
        "backup",
        "kms",
        "sts",
        "pricing",
        "organizations",
        "autoscaling",
        "logs",
        "s3",
    ):
        prefix = aws_calls.iam_prefix(service)
        known |= {f"{prefix}:{op}" for op in aws_calls.operations(service).values()}
    known |= PERMISSION_ONLY
    for name, policy in _policies().items():
        unknown = sorted(a for a in _actions(policy) if IAM_ONLY_ACTIONS.get(a, a) not in known)
        assert not unknown, f"the {name} policy names unknown actions: {unknown}"


def test_scan_policy_is_read_only() -> None:
    for action in _actions(iam.scan_policy()):
        operation = action.split(":", 1)[1]
        assert operation.startswith(("Describe", "List", "Get")), action


def test_cleanup_kms_is_limited_to_ec2() -> None:
    for statement in _statements(iam.cleanup_policy()):
        if any(a.startswith("kms:") for a in statement["Action"]):
            assert statement["Condition"]["StringLike"]["kms:ViaService"] == "ec2.*.amazonaws.com"
            assert all(a.startswith("kms:") for a in statement["Action"])


def test_scan_and_cleanup_cover_every_registered_permission() -> None:
    from cloudsweep import cleanup, detectors
    from cloudsweep.aws import regions

    union = _actions(iam.scan_policy()) | _actions(iam.cleanup_policy())
    registered = (
        set(detectors.permissions())
        | {p for action in cleanup.all_actions() for p in action.permissions}
        | {regions.DESCRIBE_REGIONS_PERMISSION}  # regions: [all]
    )
    assert union == registered


def test_cloudformation_role_trusts_only_the_operator_with_the_external_id() -> None:
    template = iam.cloudformation_template()
    role = template["Resources"]["CloudSweepRole"]["Properties"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"AWS": {"Ref": "OperatorRoleArn"}}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}}
    assert role["Policies"][0]["PolicyDocument"] == iam.scan_policy()
    cleanup_resource = template["Resources"]["CloudSweepCleanupPolicy"]
    assert cleanup_resource["Condition"] == "CleanupEnabled"
    assert cleanup_resource["Properties"]["PolicyDocument"] == iam.cleanup_policy()
    assert template["Parameters"]["EnableCleanup"]["Default"] == "false"
    # Every Ref names a parameter or a resource; every Condition is declared.
    names = set(template["Parameters"]) | set(template["Resources"])

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if set(node) == {"Ref"}:
                yield node["Ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    assert set(refs(template)) <= names
    for resource in template["Resources"].values():
        if "Condition" in resource:
            assert resource["Condition"] in template["Conditions"]


def test_scan_session_policy_fits_the_packed_size_limit() -> None:
    # AssumeRole's inline session policy is at most 2048 characters (before packing).
    from cloudsweep.aws.session import read_only_policy

    assert len(read_only_policy(iam.scan_actions())) <= 2048


def test_writer_writes_every_document(tmp_path: Path) -> None:
    assert iam.main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(iam.documents())
