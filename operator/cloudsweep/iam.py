"""IAM documents for the scanned accounts and the operator, built from the registries.

Called by ``python -m cloudsweep.iam [OUTPUT_DIR]``, which writes ``deploy/iam/`` (the policy
documents and the CloudFormation template customers deploy in each scanned account), by
``docs/install.md``'s instructions and by ``tests/deploy/test_iam.py``, which checks that the
committed files equal what this module builds and that the policies allow exactly the AWS API
operations the code calls.

Where the permissions come from:

- the scan policy is ``cloudsweep.detectors.permissions()``: the union of every detector's
  ``permissions``, all read-only. The operator also passes these actions as an inline session
  policy when it assumes the role for a scan, so a scan cannot write even with cleanup enabled;
- the cleanup policy is the union of every cleanup action's ``permissions`` (rollback steps
  included) less what the scan policy already allows; KMS actions are allowed only through EC2
  (encrypted volumes and snapshots), and grants only for AWS resources;
- the operator policy (in the operator's own account, for its IRSA / Pod Identity role) allows
  ``sts:AssumeRole`` on roles and the Price List API used by ``cloudsweep pricing refresh``.

Every resource is ``"*"``: the Describe*/List* calls support no resource-level permissions, and
the cleanup targets are not known when the role is created. Least privilege is carried by the
action list (no action wildcards), the scan session policy, the KMS conditions and the ExternalId.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from cloudsweep import cleanup, detectors, names
from cloudsweep.aws import organizations, regions

POLICY_VERSION: Final = "2012-10-17"
DEFAULT_ROLE_NAME: Final = names.SCANNER_ROLE_NAME

# IAM actions no code path calls directly, that AWS checks on the caller's behalf. The least
# privilege test allows exactly these beyond the operations the code calls.
IMPLIED_ACTIONS: Final[Mapping[str, str]] = {
    "iam:PassRole": "RunInstances with an IAM instance profile passes its role (EC2 rollback)",
    "elasticloadbalancing:AddTags": "the rollback's Create* calls pass Tags (tag on create)",
    "rds:AddTagsToResource": "RestoreDBInstanceFromDBSnapshot passes Tags (tag on create)",
    "rds:CreateDBSnapshot": "DeleteDBInstance with FinalDBSnapshotIdentifier takes a snapshot",
    "kms:CreateGrant": "EC2 creates a grant to use a customer managed key of an encrypted volume",
    "kms:Decrypt": "EC2 reads an encrypted snapshot while restoring a volume from it",
    "kms:DescribeKey": "EC2 checks the key of an encrypted volume or snapshot",
    "kms:GenerateDataKeyWithoutPlaintext": "EC2 creates the data key of an encrypted volume",
    "kms:ReEncryptFrom": "EC2 re-encrypts a snapshot's data key for a restored volume",
    "kms:ReEncryptTo": "EC2 re-encrypts a snapshot's data key for a restored volume",
}

# Operations AWS never refuses (documented: "No permissions are required").
UNRESTRICTED_OPERATIONS: Final = frozenset({"sts:GetCallerIdentity"})

_SERVICE_SIDS: Final[Mapping[str, str]] = {
    "autoscaling": "AutoScaling",
    "backup": "Backup",
    "cloudwatch": "CloudWatch",
    "ec2": "Ec2",
    "elasticloadbalancing": "LoadBalancing",
    "rds": "Rds",
}


def _sid(prefix: str, service: str) -> str:
    return prefix + _SERVICE_SIDS.get(service, service.capitalize())


def _by_service(actions: Iterable[str], prefix: str) -> list[dict[str, Any]]:
    grouped: dict[str, list[str]] = {}
    for action in sorted(set(actions)):
        grouped.setdefault(action.split(":", 1)[0], []).append(action)
    return [
        {"Sid": _sid(prefix, service), "Effect": "Allow", "Action": items, "Resource": "*"}
        for service, items in sorted(grouped.items())
    ]


def scan_actions() -> list[str]:
    """The read-only actions every scan needs (all detectors, and the regions of ``[all]``)."""
    return sorted({*detectors.permissions(), regions.DESCRIBE_REGIONS_PERMISSION})


def command_line_policy() -> dict[str, Any]:
    """For a person running ``cloudsweep`` on their own credentials (no role to assume).

    A scan on an IAM user's keys runs on a ``GetFederationToken`` session limited to the scan
    actions, so the user needs those actions and GetFederationToken; ``cloudsweep accounts
    discover`` reads Organizations in the management account or a delegated administrator.
    """
    return {
        "Version": POLICY_VERSION,
        "Statement": _by_service(
            [*scan_actions(), "sts:GetFederationToken", *organizations.PERMISSIONS], "Cli"
        ),
    }


def cleanup_actions() -> list[str]:
    """Every cleanup action's permissions (all steps and rollbacks), sorted and unique."""
    return sorted({p for action in cleanup.all_actions() for p in action.permissions})


def scan_policy() -> dict[str, Any]:
    """The identity policy of the read-only scanning role."""
    return {"Version": POLICY_VERSION, "Statement": _by_service(scan_actions(), "Scan")}


def cleanup_policy() -> dict[str, Any]:
    """What cleanup adds to the scan policy; attach both to a role that may clean up."""
    extra = set(cleanup_actions()) - set(scan_actions())
    kms = sorted(a for a in extra if a.startswith("kms:"))
    statements = _by_service((a for a in extra if not a.startswith("kms:")), "Cleanup")
    grant = [a for a in kms if a == "kms:CreateGrant"]
    other_kms = [a for a in kms if a != "kms:CreateGrant"]
    via_ec2 = {"StringLike": {"kms:ViaService": "ec2.*.amazonaws.com"}}
    if other_kms:
        statements.append(
            {
                "Sid": "CleanupKmsThroughEc2",
                "Effect": "Allow",
                "Action": other_kms,
                "Resource": "*",
                "Condition": via_ec2,
            }
        )
    if grant:
        statements.append(
            {
                "Sid": "CleanupKmsGrantForEbs",
                "Effect": "Allow",
                "Action": grant,
                "Resource": "*",
                "Condition": {**via_ec2, "Bool": {"kms:GrantIsForAWSResource": "true"}},
            }
        )
    return {"Version": POLICY_VERSION, "Statement": statements}


def operator_policy() -> dict[str, Any]:
    """The identity policy of the operator's own role (IRSA / EKS Pod Identity)."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "AssumeScannedAccountRoles",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole"],
                "Resource": "arn:*:iam::*:role/*",
            },
            {
                "Sid": "ReadPriceList",
                "Effect": "Allow",
                "Action": ["pricing:GetProducts"],
                "Resource": "*",
            },
        ],
    }


def trust_policy(operator_role_arn: Any, external_id: Any) -> dict[str, Any]:
    """The trust policy of a scanned account's role: only the operator, only with the ExternalId.

    ``sts:TagSession`` is allowed for the same principal because EKS Pod Identity sessions carry
    transitive session tags, which AssumeRole passes on.
    """
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "CloudSweepOperatorWithExternalId",
                "Effect": "Allow",
                "Principal": {"AWS": operator_role_arn},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }


def cloudformation_template() -> dict[str, Any]:
    """A CloudFormation template for each scanned account: the role and its policies."""
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "CloudSweep: a read-only scanning role (and, optionally, the permissions "
        "cleanup needs) that only the CloudSweep operator can assume, with the ExternalId shown "
        "in the AwsAccount's status.externalId. Generated by `python -m cloudsweep.iam`.",
        "Parameters": {
            "OperatorRoleArn": {
                "Type": "String",
                "Description": "ARN of the CloudSweep operator's IAM role (its service account's "
                "IRSA or EKS Pod Identity role).",
                "AllowedPattern": r"^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[\w+=,.@/-]+$",
            },
            "ExternalId": {
                "Type": "String",
                "Description": "The AwsAccount's ExternalId: kubectl get awsaccount NAME -o "
                "jsonpath='{.status.externalId}'",
                "MinLength": 2,
                "MaxLength": 1224,
                "AllowedPattern": r"^[\w+=,.@:/-]+$",
                "NoEcho": True,
            },
            "RoleName": {
                "Type": "String",
                "Default": DEFAULT_ROLE_NAME,
                "Description": "Name of the role; use it in the AwsAccount's spec.roleArn.",
                "AllowedPattern": r"^[\w+=,.@-]{1,64}$",
            },
            "EnableCleanup": {
                "Type": "String",
                "Default": "false",
                "AllowedValues": ["false", "true"],
                "Description": "Also grant what cleanup needs (delete, snapshot, restore). Cleanup "
                "still only happens under a CleanupPolicy, with dry run on by default.",
            },
        },
        "Conditions": {"CleanupEnabled": {"Fn::Equals": [{"Ref": "EnableCleanup"}, "true"]}},
        "Resources": {
            "CloudSweepRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": {"Ref": "RoleName"},
                    "Description": "Assumed by the CloudSweep operator to find (and, if enabled, "
                    "clean up) unused AWS resources.",
                    "MaxSessionDuration": 3600,
                    "AssumeRolePolicyDocument": trust_policy(
                        {"Ref": "OperatorRoleArn"}, {"Ref": "ExternalId"}
                    ),
                    "Policies": [{"PolicyName": "CloudSweepScan", "PolicyDocument": scan_policy()}],
                    "Tags": [{"Key": "app.kubernetes.io/name", "Value": "cloudsweep"}],
                },
            },
            "CloudSweepCleanupPolicy": {
                "Type": "AWS::IAM::RolePolicy",
                "Condition": "CleanupEnabled",
                "Properties": {
                    "RoleName": {"Ref": "CloudSweepRole"},
                    "PolicyName": "CloudSweepCleanup",
                    "PolicyDocument": cleanup_policy(),
                },
            },
        },
        "Outputs": {
            "RoleArn": {
                "Description": "Put this in the AwsAccount's spec.roleArn.",
                "Value": {"Fn::GetAtt": ["CloudSweepRole", "Arn"]},
            },
            "CleanupEnabled": {"Value": {"Ref": "EnableCleanup"}},
        },
    }


def stackset_template(external_ids: Mapping[str, str]) -> dict[str, Any]:
    """The per-account template for a CloudFormation StackSet over many member accounts.

    A StackSet deploys one template with one set of parameters everywhere, but each AwsAccount has
    its own ExternalId; so the ExternalIds (account ID -> ``status.externalId``) are a mapping in
    the template, looked up with the account the stack instance runs in. An account missing from
    the mapping fails its stack instance instead of creating a role without the condition.
    """
    if not external_ids:
        raise ValueError("no ExternalIds: apply the AwsAccounts first and read their status")
    template = cloudformation_template()
    template["Description"] = (
        "CloudSweep scanning role for every member account of a StackSet, each trusting the "
        "operator only with its own AwsAccount's ExternalId. Generated by `cloudsweep accounts "
        "stackset`."
    )
    del template["Parameters"]["ExternalId"]
    template["Mappings"] = {
        "ExternalIds": {
            account: {"Id": external_id} for account, external_id in sorted(external_ids.items())
        }
    }
    role = template["Resources"]["CloudSweepRole"]["Properties"]
    role["AssumeRolePolicyDocument"] = trust_policy(
        {"Ref": "OperatorRoleArn"},
        {"Fn::FindInMap": ["ExternalIds", {"Ref": "AWS::AccountId"}, "Id"]},
    )
    return template


def documents() -> dict[str, dict[str, Any]]:
    """File name -> document, everything ``deploy/iam/`` holds."""
    return {
        "scan-policy.json": scan_policy(),
        "cleanup-policy.json": cleanup_policy(),
        "operator-policy.json": operator_policy(),
        "command-line-policy.json": command_line_policy(),
        "trust-policy.json": trust_policy("${OperatorRoleArn}", "${ExternalId}"),
        "cloudformation.json": cloudformation_template(),
    }


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in documents().items():
        path = directory / name
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cloudsweep.iam",
        description="Write CloudSweep's IAM policies and CloudFormation template.",
    )
    parser.add_argument("directory", nargs="?", default="deploy/iam", type=Path)
    args = parser.parse_args(argv)
    for path in write(args.directory):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
