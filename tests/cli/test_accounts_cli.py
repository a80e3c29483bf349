"""`cloudsweep accounts`: an organization into AwsAccount manifests, their drift, the StackSet.

Organizations and CloudFormation are moto's, over HTTP: the StackSet template is deployed and the
role it creates is read back from moto's IAM.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
import yaml

from cloudsweep import crds

from ..aws.test_organizations import seed_organization
from .test_scan_cli import _cloudsweep


def _env(moto_endpoint: str) -> dict[str, str]:
    return {"CLOUDSWEEP_AWS_ENDPOINT_URL": moto_endpoint}


def test_discover_writes_one_valid_awsaccount_per_active_account(
    moto_endpoint: str, data_home: Path, tmp_path: Path
) -> None:
    world = seed_organization(moto_endpoint)
    out = tmp_path / "accounts"
    result = _cloudsweep(
        "accounts",
        "discover",
        "--out",
        str(out),
        "--role-name",
        "CloudSweepScanner",
        "-n",
        "finops",
        data_home=data_home,
        env=_env(moto_endpoint),
    )
    assert result.returncode == 0, result.stderr
    written = {p.name: yaml.safe_load(p.read_text()) for p in out.glob("*.yaml")}
    kustomization = written.pop("kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(written)
    by_account = {doc["spec"]["accountId"]: doc for doc in written.values()}
    assert world.accounts["Sandbox Old"] not in by_account  # closed: no manifest
    payments = by_account[world.accounts["Payments Prod"]]
    account_id = world.accounts["Payments Prod"]
    assert payments["metadata"]["name"] == f"payments-prod-{account_id}"
    assert payments["metadata"]["namespace"] == "finops"
    assert payments["spec"]["roleArn"] == f"arn:aws:iam::{account_id}:role/CloudSweepScanner"
    assert payments["metadata"]["labels"] == {
        "cloudsweep.io/ou": "workloads.prod",
        "tags.cloudsweep.io/cost-center": "42",
        "tags.cloudsweep.io/team": "payments",
    }
    assert payments["metadata"]["annotations"]["cloudsweep.io/ou-path"] == "Workloads/Prod"
    for document in written.values():
        assert crds.validate("AwsAccount", document) == [], document
    assert "Payments Prod" in result.stdout  # the summary table


def test_check_reports_accounts_added_closed_and_moved(
    moto_endpoint: str, data_home: Path, tmp_path: Path
) -> None:
    world = seed_organization(moto_endpoint)
    out = tmp_path / "accounts"
    env = _env(moto_endpoint)
    assert (
        _cloudsweep(
            "accounts", "discover", "--out", str(out), data_home=data_home, env=env
        ).returncode
        == 0
    )
    same = _cloudsweep("accounts", "discover", "--check", str(out), data_home=data_home, env=env)
    assert same.returncode == 0, same.stderr
    assert "up to date" in same.stderr

    org = boto3.client("organizations", endpoint_url=moto_endpoint, region_name="us-east-1")
    org.move_account(
        AccountId=world.accounts["Payments Prod"],
        SourceParentId=world.prod,
        DestinationParentId=world.sandbox,
    )
    org.close_account(AccountId=world.accounts["Sandbox Alice"])
    added = org.create_account(Email="new@example.com", AccountName="New Team")
    new_id = added["CreateAccountStatus"]["AccountId"]

    changed = _cloudsweep(
        "accounts", "discover", "--check", str(out), "-o", "json", data_home=data_home, env=env
    )
    assert changed.returncode == 3, changed.stderr
    changes = {(c["change"], c["account_id"]): c["detail"] for c in json.loads(changed.stdout)}
    assert changes == {
        ("added", new_id): "",
        ("closed", world.accounts["Sandbox Alice"]): "status SUSPENDED",
        ("moved", world.accounts["Payments Prod"]): "Workloads/Prod -> Sandbox",
    }


def test_stackset_template_deploys_a_role_trusting_only_its_accounts_external_id(
    moto_endpoint: str, data_home: Path, tmp_path: Path
) -> None:
    # What `kubectl get awsaccounts -A -o json` prints once the operator issued ExternalIds;
    # moto runs every stack in its default account 123456789012.
    listing = {
        "items": [
            {
                "metadata": {"name": "a"},
                "spec": {"accountId": "123456789012"},
                "status": {"externalId": "cs-ext-for-123456789012"},
            },
            {
                "metadata": {"name": "b"},
                "spec": {"accountId": "210987654321"},
                "status": {"externalId": "cs-ext-for-210987654321"},
            },
        ]
    }
    source = tmp_path / "awsaccounts.json"
    source.write_text(json.dumps(listing))
    result = _cloudsweep("accounts", "stackset", str(source), data_home=data_home)
    assert result.returncode == 0, result.stderr
    template = json.loads(result.stdout)
    assert "ExternalId" not in template["Parameters"]

    cfn = boto3.client("cloudformation", endpoint_url=moto_endpoint, region_name="us-east-1")
    cfn.create_stack_set(
        StackSetName="cloudsweep-scanner",
        TemplateBody=result.stdout,
        Parameters=[
            {
                "ParameterKey": "OperatorRoleArn",
                "ParameterValue": "arn:aws:iam::999999999999:role/cloudsweep-operator",
            },
        ],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    cfn.create_stack_instances(
        StackSetName="cloudsweep-scanner", Accounts=["123456789012"], Regions=["us-east-1"]
    )
    [instance] = cfn.list_stack_instances(StackSetName="cloudsweep-scanner")["Summaries"]
    assert instance["StackInstanceStatus"]["DetailedStatus"] == "SUCCEEDED"
    iam = boto3.client("iam", endpoint_url=moto_endpoint, region_name="us-east-1")
    trust = iam.get_role(RoleName="CloudSweep")["Role"]["AssumeRolePolicyDocument"]
    if isinstance(trust, str):
        trust = json.loads(trust)
    [statement] = trust["Statement"]
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": "cs-ext-for-123456789012"}}
    assert statement["Principal"] == {"AWS": "arn:aws:iam::999999999999:role/cloudsweep-operator"}


@pytest.mark.parametrize(
    ("listing", "says"),
    [
        (
            {"items": [{"metadata": {"name": "a"}, "spec": {"accountId": "123456789012"}}]},
            "no ExternalId yet in the status of a",
        ),
        ({"kind": "AwsAccount"}, "expected `kubectl get awsaccounts -A -o json` output"),
    ],
)
def test_stackset_refuses_what_it_cannot_deploy_safely(
    listing: dict, says: str, data_home: Path, tmp_path: Path
) -> None:
    source = tmp_path / "awsaccounts.json"
    source.write_text(json.dumps(listing))
    result = _cloudsweep("accounts", "stackset", str(source), data_home=data_home)
    assert result.returncode == 1
    assert says in result.stderr
    assert "Traceback" not in result.stderr
