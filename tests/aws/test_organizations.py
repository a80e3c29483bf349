"""Organization discovery against moto's Organizations over HTTP: nested OUs, tags, a closed account."""

from __future__ import annotations

from dataclasses import dataclass

import boto3
import pytest

from cloudsweep import aws
from cloudsweep.aws import organizations
from cloudsweep.settings import Settings


@dataclass
class OrgWorld:
    root: str
    workloads: str
    prod: str
    sandbox: str
    accounts: dict[str, str]  # name -> account ID


def seed_organization(endpoint: str) -> OrgWorld:
    """Root / Workloads / Prod, Root / Sandbox; payments in Prod, two in Sandbox (one closed)."""
    org = boto3.client("organizations", endpoint_url=endpoint, region_name="us-east-1")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    workloads = org.create_organizational_unit(ParentId=root, Name="Workloads")
    prod = org.create_organizational_unit(
        ParentId=workloads["OrganizationalUnit"]["Id"], Name="Prod"
    )
    sandbox = org.create_organizational_unit(ParentId=root, Name="Sandbox")
    accounts: dict[str, str] = {}
    for name, parent, tags in (
        (
            "Payments Prod",
            prod["OrganizationalUnit"]["Id"],
            {"team": "payments", "cost-center": "42"},
        ),
        ("Sandbox Alice", sandbox["OrganizationalUnit"]["Id"], {}),
        ("Sandbox Old", sandbox["OrganizationalUnit"]["Id"], {}),
    ):
        status = org.create_account(
            Email=f"{name.replace(' ', '.').lower()}@example.com",
            AccountName=name,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )["CreateAccountStatus"]
        account_id = status["AccountId"]
        org.move_account(AccountId=account_id, SourceParentId=root, DestinationParentId=parent)
        accounts[name] = account_id
    org.close_account(AccountId=accounts["Sandbox Old"])
    return OrgWorld(
        root=root,
        workloads=workloads["OrganizationalUnit"]["Id"],
        prod=prod["OrganizationalUnit"]["Id"],
        sandbox=sandbox["OrganizationalUnit"]["Id"],
        accounts=accounts,
    )


@pytest.fixture
def settings(moto_endpoint: str) -> Settings:
    return Settings(aws_endpoint_url=moto_endpoint, aws_max_attempts=1)


def test_every_account_with_its_ou_path_status_and_tags(
    moto_endpoint: str, settings: Settings
) -> None:
    world = seed_organization(moto_endpoint)
    found = organizations.discover(boto3.Session(), settings=settings)
    by_name = {a.name: a for a in found.accounts}
    assert found.partition == "aws"
    payments = by_name["Payments Prod"]
    assert payments.account_id == world.accounts["Payments Prod"]
    assert payments.ou_path_text == "Workloads/Prod"
    assert payments.tags == {"team": "payments", "cost-center": "42"}
    assert payments.active
    assert by_name["Sandbox Alice"].ou_path_text == "Sandbox"
    assert not by_name["Sandbox Old"].active
    assert by_name["Sandbox Old"].status == "SUSPENDED"
    # The management account itself sits under the root.
    assert any(a.ou_path_text == "" for a in found.accounts)


def test_limited_to_an_ou_and_its_children(moto_endpoint: str, settings: Settings) -> None:
    world = seed_organization(moto_endpoint)
    found = organizations.discover(boto3.Session(), under=[world.workloads], settings=settings)
    assert [a.name for a in found.accounts] == ["Payments Prod"]


def test_an_unknown_ou_is_named_not_an_empty_answer(moto_endpoint: str, settings: Settings) -> None:
    seed_organization(moto_endpoint)
    with pytest.raises(aws.AwsError, match="ou-nope-12345678 is not an OU"):
        organizations.discover(boto3.Session(), under=["ou-nope-12345678"], settings=settings)
