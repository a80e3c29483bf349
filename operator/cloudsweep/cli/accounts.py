"""``cloudsweep accounts``: an AWS Organization as AwsAccount manifests, their drift, the StackSet.

``discover`` runs with your own credentials in the management account (or a delegated
administrator) and writes one AwsAccount per active account; ``discover --check DIR`` says what
changed since; ``stackset`` turns the AwsAccounts' issued ExternalIds into the StackSet template
that deploys the scanner role everywhere. The order: discover, commit and apply the AwsAccounts,
read their ExternalIds, deploy the StackSet (docs/organizations.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cloudsweep import domain, names
from cloudsweep.cli import output

# The commands import the engine (boto3, the IAM templates) and YAML themselves, so that
# `cloudsweep --help` stays light.

EXIT_DRIFT = 3

app = typer.Typer(
    help="Discover an AWS Organization's accounts as AwsAccount manifests.",
    no_args_is_help=True,
)

DRIFT_COLUMNS = ["change", "account_id", "name", "detail"]
ACCOUNT_COLUMNS = ["account_id", "name", "ou_path", "status", "file"]


def _read_manifests(directory: Path) -> list[dict[str, Any]]:
    import yaml

    if not directory.is_dir():
        raise domain.InvalidInput(f"{directory} is not a directory of AwsAccount manifests")
    documents: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            loaded = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise domain.InvalidInput(f"{path}: not readable YAML ({exc})") from None
        documents.extend(doc for doc in loaded if isinstance(doc, dict))
    return documents


@app.command()
def discover(
    ou: Annotated[
        list[str] | None,
        typer.Option("--ou", help="Only accounts under this OU (ou-...); repeatable."),
    ] = None,
    role_name: Annotated[
        str,
        typer.Option("--role-name", help="The scanner role's name in every member account."),
    ] = names.SCANNER_ROLE_NAME,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="metadata.namespace of the manifests.")
    ] = None,
    regions: Annotated[
        str | None,
        typer.Option("--regions", help="spec.regions: comma-separated, or 'all'."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write <name>.yaml per account and kustomization.yaml here."),
    ] = None,
    check: Annotated[
        Path | None,
        typer.Option(
            "--check",
            help="Compare with the manifests in this directory: accounts added, closed or moved.",
        ),
    ] = None,
    tags: Annotated[
        bool, typer.Option("--tags/--no-tags", help="Turn account tags into labels.")
    ] = True,
    profile: Annotated[
        str | None, typer.Option("--profile", help="AWS profile of the management account.")
    ] = None,
    fmt: Annotated[
        output.OutputFormat, typer.Option("--output", "-o", help="table, json or csv")
    ] = output.OutputFormat.TABLE,
) -> None:
    """List the organization's active accounts as AwsAccount manifests (YAML on standard output,
    or files with --out), or report what changed since (--check; exit 3 when something did)."""
    import yaml

    from cloudsweep import estate
    from cloudsweep.aws import organizations
    from cloudsweep.aws.base import base_session
    from cloudsweep.settings import get_settings

    region_list = [r.strip() for r in regions.split(",") if r.strip()] if regions else None
    if out is not None and check is not None:
        raise domain.InvalidInput("use either --out or --check, not both")
    with output.errors.status("reading the organization's accounts..."):
        org = organizations.discover(
            base_session(profile), under=ou or (), with_tags=tags, settings=get_settings()
        )
    if check is not None:
        changes = estate.drift(org, _read_manifests(check))
        output.render(
            [
                {
                    "change": c.change.value,
                    "account_id": c.account_id,
                    "name": c.name,
                    "detail": c.detail,
                }
                for c in changes
            ],
            columns=DRIFT_COLUMNS,
            fmt=fmt,
            title=f"Changes in {org.id} since {check}",
        )
        output.errors.print(
            f"{len(changes)} change(s) in {len(org.accounts)} accounts of {org.id}"
            if changes
            else f"{check} is up to date with the {len(org.accounts)} accounts of {org.id}"
        )
        raise typer.Exit(EXIT_DRIFT if changes else 0)

    documents = estate.manifests(org, role_name=role_name, namespace=namespace, regions=region_list)
    if out is None:
        sys.stdout.write(yaml.safe_dump_all(documents, sort_keys=False))
        output.errors.print(f"{len(documents)} AwsAccounts from organization {org.id}")
        return
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for document in documents:
        path = out / f"{document['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        files[document["spec"]["accountId"]] = path.name
    (out / "kustomization.yaml").write_text(
        yaml.safe_dump(estate.kustomization(documents), sort_keys=False), encoding="utf-8"
    )
    output.render(
        [
            {
                "account_id": a.account_id,
                "name": a.name,
                "ou_path": a.ou_path_text or "/",
                "status": a.status,
                "file": files.get(a.account_id, "(none: not active)"),
            }
            for a in org.accounts
        ],
        columns=ACCOUNT_COLUMNS,
        fmt=fmt,
        title=f"Accounts of {org.id}",
    )
    output.errors.print(f"wrote {len(documents)} AwsAccounts and kustomization.yaml to {out}")


@app.command()
def stackset(
    source: Annotated[
        str,
        typer.Argument(
            help="`kubectl get awsaccounts -A -o json` saved to a file, or - for standard input."
        ),
    ],
) -> None:
    """Print the StackSet template that deploys the scanner role to every member account, each
    trusting the operator only with the ExternalId its AwsAccount was issued."""
    from cloudsweep import iam

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        listing = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise domain.InvalidInput(f"{source}: not a readable JSON listing ({exc})") from None
    items = listing.get("items") if isinstance(listing, dict) else None
    if not isinstance(items, list):
        raise domain.InvalidInput(f"{source}: expected `kubectl get awsaccounts -A -o json` output")
    external_ids: dict[str, str] = {}
    waiting: list[str] = []
    for item in items:
        spec, status = item.get("spec") or {}, item.get("status") or {}
        account_id = domain.validate_account_id(spec.get("accountId"))
        external_id = status.get("externalId")
        if not external_id:
            waiting.append(str(item.get("metadata", {}).get("name", account_id)))
            continue
        if external_ids.setdefault(account_id, external_id) != external_id:
            raise domain.InvalidInput(
                f"account {account_id} appears twice with different ExternalIds; one AWS account "
                "belongs to one organization"
            )
    if waiting:
        raise domain.InvalidInput(
            f"no ExternalId yet in the status of {', '.join(waiting)}: wait until the operator "
            "has seen them (kubectl get awsaccounts), then run this again"
        )
    sys.stdout.write(iam.render(iam.stackset_template(external_ids)))
