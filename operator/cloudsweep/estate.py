"""An AWS Organization as AwsAccount manifests for a GitOps repository, and their drift.

Called by ``cloudsweep accounts discover`` (manifests from ``aws.organizations.discover``) and
``cloudsweep accounts discover --check`` (what changed since the manifests were written). Pure: no
AWS, no Kubernetes; the manifests are plain dictionaries the command line writes as YAML.

A manifest carries what discovery knew in annotations (``cloudsweep.io/ou-path``, the
organization), so ``--check`` can tell a moved account from an unchanged one without AWS history.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cloudsweep.aws.organizations import OrgAccount, Organization

API_VERSION = "cloudsweep.io/v1alpha1"
OU_PATH_ANNOTATION = "cloudsweep.io/ou-path"
ORGANIZATION_ANNOTATION = "cloudsweep.io/aws-organization"
ACCOUNT_NAME_ANNOTATION = "cloudsweep.io/aws-account-name"
OU_LABEL = "cloudsweep.io/ou"
TAG_LABEL_PREFIX = "tags.cloudsweep.io/"
_NAME_MAX = 63
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


def resource_name(account: OrgAccount) -> str:
    """A DNS-1123 name that stays unique (the account ID) and readable (the account's name)."""
    slug = re.sub(r"[^a-z0-9]+", "-", account.name.lower()).strip("-")
    room = _NAME_MAX - len(account.account_id) - 1
    slug = slug[:room].rstrip("-")
    return f"{slug}-{account.account_id}" if slug else f"account-{account.account_id}"


def _label_value(text: str) -> str | None:
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("._-")[:63].rstrip("._-")
    return value if _LABEL_VALUE.fullmatch(value) else None


def labels(account: OrgAccount) -> dict[str, str]:
    """The OU (as ``a.b.c`` of the path) and the account's tags that make valid labels."""
    result: dict[str, str] = {}
    if account.ou_path:
        ou = _label_value(".".join(u.name for u in account.ou_path).lower())
        if ou:
            result[OU_LABEL] = ou
    for key, value in sorted(account.tags.items()):
        name = _label_value(key.lower())
        label_value = _label_value(value)
        if name and _LABEL_NAME.fullmatch(name) and label_value is not None:
            result[TAG_LABEL_PREFIX + name] = label_value
    return result


def manifest(
    account: OrgAccount,
    organization: Organization,
    *,
    role_name: str,
    namespace: str | None = None,
    regions: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The AwsAccount for one organization account, its role named by ``role_name``."""
    metadata: dict[str, Any] = {"name": resource_name(account)}
    if namespace:
        metadata["namespace"] = namespace
    found_labels = labels(account)
    if found_labels:
        metadata["labels"] = found_labels
    metadata["annotations"] = {
        ORGANIZATION_ANNOTATION: organization.id,
        OU_PATH_ANNOTATION: account.ou_path_text or "/",
        ACCOUNT_NAME_ANNOTATION: account.name,
    }
    spec: dict[str, Any] = {
        "accountId": account.account_id,
        "roleArn": f"arn:{organization.partition}:iam::{account.account_id}:role/{role_name}",
        "displayName": account.name[:255],
    }
    if regions:
        spec["regions"] = list(regions)
    return {"apiVersion": API_VERSION, "kind": "AwsAccount", "metadata": metadata, "spec": spec}


def manifests(
    organization: Organization,
    *,
    role_name: str,
    namespace: str | None = None,
    regions: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One AwsAccount per ACTIVE account; closed and closing accounts get none."""
    return [
        manifest(a, organization, role_name=role_name, namespace=namespace, regions=regions)
        for a in organization.accounts
        if a.active
    ]


def kustomization(documents: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A kustomization.yaml listing the written manifests (``<name>.yaml`` each)."""
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(f"{doc['metadata']['name']}.yaml" for doc in documents),
    }


class Change(enum.StrEnum):
    ADDED = "added"  # active in the organization, no manifest
    CLOSED = "closed"  # a manifest, but the account is closed, closing or gone
    MOVED = "moved"  # its OU path differs from the one the manifest recorded


@dataclass(frozen=True, slots=True)
class Drift:
    change: Change
    account_id: str
    name: str
    detail: str


def drift(organization: Organization, written: Iterable[Mapping[str, Any]]) -> list[Drift]:
    """What changed in the organization since ``written`` (AwsAccount manifests) was produced."""
    by_id: dict[str, Mapping[str, Any]] = {}
    for document in written:
        if document.get("kind") == "AwsAccount":
            by_id[str(document.get("spec", {}).get("accountId"))] = document
    now = {a.account_id: a for a in organization.accounts}
    changes: list[Drift] = []
    for account in organization.accounts:
        doc = by_id.get(account.account_id)
        if doc is None:
            if account.active:
                changes.append(
                    Drift(Change.ADDED, account.account_id, account.name, account.ou_path_text)
                )
            continue
        if not account.active:
            changes.append(
                Drift(Change.CLOSED, account.account_id, account.name, f"status {account.status}")
            )
            continue
        annotations = doc.get("metadata", {}).get("annotations") or {}
        recorded = annotations.get(OU_PATH_ANNOTATION)
        current = account.ou_path_text or "/"
        if recorded is not None and recorded != current:
            changes.append(
                Drift(Change.MOVED, account.account_id, account.name, f"{recorded} -> {current}")
            )
    for account_id, doc in sorted(by_id.items()):
        if account_id not in now:
            name = str(doc.get("metadata", {}).get("name", account_id))
            changes.append(Drift(Change.CLOSED, account_id, name, "no longer in the organization"))
    return sorted(changes, key=lambda d: (d.change.value, d.account_id))
