"""The accounts of an AWS Organization, with where each sits in the OU tree and its tags.

Called by ``cloudsweep accounts discover`` with the user's own credentials in the management
account or a delegated administrator (Organizations is read there, not in member accounts).
Read-only: ListRoots, ListOrganizationalUnitsForParent, ListAccountsForParent, ListTagsForResource,
DescribeOrganization.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cloudsweep.aws import errors
from cloudsweep.aws.session import client_config, endpoint_url
from cloudsweep.settings import Settings, get_settings

PERMISSIONS = (
    "organizations:DescribeOrganization",
    "organizations:ListRoots",
    "organizations:ListOrganizationalUnitsForParent",
    "organizations:ListAccountsForParent",
    "organizations:ListTagsForResource",
)


@dataclass(frozen=True, slots=True)
class OrgUnit:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class OrgAccount:
    account_id: str
    name: str
    status: str  # ACTIVE, SUSPENDED (closed), PENDING_CLOSURE
    ou_path: tuple[OrgUnit, ...]  # from the root's first OU down to the account's parent
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status == "ACTIVE"

    @property
    def ou_path_text(self) -> str:
        """``Workloads/Prod``; empty for an account directly under the root."""
        return "/".join(unit.name for unit in self.ou_path)


@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    partition: str
    accounts: tuple[OrgAccount, ...]


def _pages(client: Any, operation: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
    with errors.translated("organizations", operation):
        for page in client.get_paginator(_snake(operation)).paginate(**params):
            yield from page.get(key, [])


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def discover(
    base_session: Any,
    *,
    under: Sequence[str] = (),
    with_tags: bool = True,
    settings: Settings | None = None,
) -> Organization:
    """Every account of the organization (or under the OUs ``under``), walking the OU tree once.

    ``under`` takes OU IDs (``ou-...``) or a root ID (``r-...``); an ID that is not in the tree is
    an error naming it, not an empty result.
    """
    settings = settings or get_settings()
    client = base_session.client(
        "organizations",
        region_name="us-east-1",  # Organizations is served from us-east-1 in the aws partition
        endpoint_url=endpoint_url(settings),
        config=client_config(settings),
    )
    with errors.translated("organizations", "DescribeOrganization"):
        org = client.describe_organization()["Organization"]
    partition = str(org["Arn"]).split(":", 2)[1]
    accounts: list[OrgAccount] = []
    seen_units: set[str] = set()

    def walk(parent_id: str, path: tuple[OrgUnit, ...]) -> None:
        seen_units.add(parent_id)
        for account in _pages(client, "ListAccountsForParent", "Accounts", ParentId=parent_id):
            accounts.append(
                OrgAccount(
                    account_id=str(account["Id"]),
                    name=str(account.get("Name") or account["Id"]),
                    status=str(account.get("Status") or account.get("State") or "ACTIVE"),
                    ou_path=path,
                )
            )
        for unit in _pages(
            client, "ListOrganizationalUnitsForParent", "OrganizationalUnits", ParentId=parent_id
        ):
            walk(str(unit["Id"]), (*path, OrgUnit(id=str(unit["Id"]), name=str(unit["Name"]))))

    for root in _pages(client, "ListRoots", "Roots"):
        walk(str(root["Id"]), ())
    missing = [unit for unit in under if unit not in seen_units]
    if missing:
        raise errors.AwsError(
            errors.ErrorKind.TERMINAL,
            service="organizations",
            operation="ListOrganizationalUnitsForParent",
            code="UnknownOrganizationalUnit",
            message=f"{', '.join(missing)} is not an OU or root of organization {org['Id']}",
        )
    if under and not any(unit.startswith("r-") for unit in under):  # a root selects everyone
        wanted = set(under)
        accounts = [a for a in accounts if wanted & {u.id for u in a.ou_path}]
    if with_tags:
        accounts = [
            OrgAccount(
                account_id=a.account_id,
                name=a.name,
                status=a.status,
                ou_path=a.ou_path,
                tags={
                    str(t["Key"]): str(t["Value"])
                    for t in _pages(client, "ListTagsForResource", "Tags", ResourceId=a.account_id)
                },
            )
            for a in accounts
        ]
    accounts.sort(key=lambda a: (a.ou_path_text, a.name, a.account_id))
    return Organization(id=str(org["Id"]), partition=partition, accounts=tuple(accounts))
