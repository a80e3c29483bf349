"""``cloudsweep cleanup``, ``approve``, ``reject``, ``actions`` and ``rollback``.

Dry run is the default everywhere: nothing in AWS changes without ``--execute``, a policy with
``dryRun: false``, and (for real runs) the identity of the person running it.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cloudsweep import domain
from cloudsweep.cli import output
from cloudsweep.cli import scan as scan_cli
from cloudsweep.cli.findings import _money_option

# The commands import the engine themselves: `cloudsweep --help` stays light.
if TYPE_CHECKING:
    from cloudsweep import cleaning, policies
    from cloudsweep.store import Store

FormatOption = Annotated[output.OutputFormat, typer.Option("--output", "-o", help="table or json")]
OrgOption = Annotated[str, typer.Option("--org", help="The organization (tenant).")]
PLAN_ROWS_SHOWN = 50


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise domain.InvalidInput(f"{question} Pass --yes to confirm when not at a terminal.")
    if not typer.confirm(question, default=False):
        raise typer.Exit(1)


def _plan_rows(plan: policies.Plan) -> list[dict[str, Any]]:
    return [
        {
            "id": str(d.candidate.id),
            "resource_type": d.candidate.resource_type,
            "resource_id": d.candidate.resource_id,
            "region": d.candidate.region,
            "account_id": d.candidate.account_id,
            "monthly_cost": d.candidate.monthly_cost,
            "policy": d.policy.name,
            "decision": "deferred" if d.deferred else d.kind.value,
            "reason": d.reason,
        }
        for d in plan.decisions
    ]


def _show_plan(plan: policies.Plan, fmt: output.OutputFormat, dry_run: bool) -> None:
    rows = _plan_rows(plan)
    counts = plan.counts()
    if fmt is output.OutputFormat.JSON:
        return
    shown = rows[:PLAN_ROWS_SHOWN]
    title = "Cleanup plan (dry run)" if dry_run else "Cleanup plan"
    output.render(
        shown,
        columns=[
            "monthly_cost",
            "resource_type",
            "resource_id",
            "region",
            "policy",
            "decision",
            "reason",
        ],
        fmt=fmt,
        title=title,
        right_aligned=["monthly_cost"],
        wrap=["reason"],
    )
    if len(rows) > len(shown):
        output.console.print(
            f"... and {len(rows) - len(shown)} more items (-o json lists them all)"
        )
    to_act = sum(d.candidate.monthly_cost for d in plan.actionable)
    output.console.print(
        "decisions: "
        + ", ".join(f"{count} {kind}" for kind, count in counts.items() if count)
        + f"; {len(plan.actionable)} items worth {to_act:,.2f} USD/month may be acted on"
    )


# With --demo and no --policy: what a team would start with, acting only when --execute is given.
DEMO_POLICIES: list[dict[str, Any]] = [
    {
        "name": "idle-elastic-ips",
        "resourceType": "elastic-ip",
        "action": "release",
        "rules": {"minAgeDays": 0, "minConfidence": 80},
        "dryRun": False,
    },
    {
        "name": "old-unattached-volumes",
        "resourceType": "ebs-volume",
        "action": "snapshot-and-delete",
        "rules": {"minAgeDays": 30, "minConfidence": 80, "maxRiskLevel": "medium"},
        "requireApprovalAbove": "100.00",
        "maxCostPerRun": "1000.00",
        "dryRun": False,
    },
    {
        "name": "idle-load-balancers",
        "resourceType": "load-balancer",
        "action": "delete",
        "rules": {"minAgeDays": 30, "minConfidence": 85},
        "dryRun": False,
    },
]


def cleanup(
    policy_file: Annotated[
        Path | None, typer.Option("--policy", help="YAML file with one or more policies.")
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Seed and scan a local emulated AWS first, then clean it up (default policies "
            "unless --policy is given).",
        ),
    ] = False,
    execute: Annotated[bool, typer.Option("--execute", help="Act (default: dry run).")] = False,
    actor: Annotated[
        str | None,
        typer.Option("--as", help="Your e-mail: recorded as who ran it (needed with --execute)."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before acting.")] = False,
    organization: OrgOption = "default",
    fmt: FormatOption = output.OutputFormat.TABLE,
) -> None:
    """Show the plan for the policies, then dry-run it (or act on it with --execute)."""
    from cloudsweep import cleaning, policies
    from cloudsweep.settings import get_settings
    from cloudsweep.store import Store, database

    if policy_file is not None:
        loaded = policies.load_policies(policy_file)
    elif demo:
        loaded = [policies.parse_policy(d, source="the demo policies") for d in DEMO_POLICIES]
    else:
        raise domain.InvalidInput("name a policy file with --policy FILE (or try --demo)")
    if execute and not actor:
        raise domain.InvalidInput(
            "--execute needs --as EMAIL: every real cleanup records who ran it"
        )
    settings = get_settings()
    session_factory: Any = None
    handle = database.open_database()
    stack = contextlib.ExitStack()
    try:
        store = Store(handle.url)
        if demo:
            # The same engine against a seeded emulated AWS: scanned first, cleaned up next.
            target = stack.enter_context(scan_cli._demo_target(settings, None))
            scan_cli._scan_target(
                store, target, domain.ScanType.MANUAL, None, output.OutputFormat.TABLE
            )
            organization, settings, session_factory = (
                target.organization,
                target.settings,
                target.session_factory,
            )
        org = store.organization(organization)
        if org is None:
            raise domain.InvalidInput(
                f"organization {organization!r} has no findings; run `cloudsweep scan` first"
            )
        plan = cleaning.plan_cleanup(
            store, org.id, loaded, mode=policies.RunMode.MANUAL, now=domain.utcnow()
        )
        _show_plan(plan, fmt, dry_run=not execute)
        dry_policies = [p.name for p in loaded if p.dry_run]
        if execute and dry_policies:
            output.errors.print(
                f"[yellow]note:[/yellow] policies {', '.join(dry_policies)} have dryRun: true; their "
                "items are only dry-run. Set dryRun: false in the policy to act.",
                markup=True,
            )
        if execute and plan.actionable:
            total = sum(d.candidate.monthly_cost for d in plan.actionable)
            _confirm(f"Act on {len(plan.actionable)} items worth {total:,.2f} USD/month?", yes)
        options = cleaning.CleanupOptions(dry_run=not execute, actor_email=actor, settings=settings)
        if session_factory is not None:
            options.session_factory = session_factory
        with output.errors.status("cleaning up..." if execute else "dry-running...") as status:
            options.progress = lambda r: status.update(
                f"{r.outcome}: {r.resource_type} {r.resource_id}"
            )
            report = cleaning.run_cleanup(store, organization, loaded, options)
    finally:
        stack.close()
        handle.close()
    rows = [
        {
            "action_id": str(r.action_id) if r.action_id else None,
            "resource_type": r.resource_type,
            "resource_id": r.resource_id,
            "region": r.region,
            "monthly_cost": r.monthly_cost,
            "policy": r.policy,
            "action": r.action,
            "outcome": r.outcome,
            "message": r.message,
        }
        for r in report.results
    ]
    if fmt is output.OutputFormat.JSON:
        output.print_json(
            {
                "run_id": str(report.run_id),
                "dry_run": report.dry_run,
                "plan": _plan_rows(report.plan),
                "counts": report.plan.counts(),
                "results": rows,
            }
        )
    elif rows:
        output.render(
            rows,
            columns=[
                "outcome",
                "monthly_cost",
                "resource_type",
                "resource_id",
                "action",
                "message",
            ],
            fmt=fmt,
            title=f"Run {report.run_id}" + (" (dry run)" if report.dry_run else ""),
            right_aligned=["monthly_cost"],
            wrap=["message"],
        )
    summary = (
        ", ".join(f"{count} {outcome}" for outcome, count in _outcomes(report).items())
        or "nothing to do"
    )
    output.errors.print(f"run {report.run_id}: {summary}")
    if report.interrupted_found and report.dry_run:
        output.errors.print(
            f"[yellow]note:[/yellow] {report.interrupted_found} interrupted attempts wait for a real "
            "run to reconcile them",
            markup=True,
        )
    if any(r.outcome in ("failed", "dry-run-fail", "interrupted") for r in report.results):
        raise typer.Exit(1)


def _outcomes(report: cleaning.RunReport) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in report.results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    return counts


def _select_items(
    store: Store,
    organization: str,
    refs: list[str],
    *,
    resource_type: str | None,
    region: str | None,
    account: str | None,
    max_cost: Decimal | None,
) -> list[uuid.UUID]:
    """Items by ID or resource ID, or every open item matching the filter."""
    from cloudsweep.store import FindingFilter

    if not refs and not any((resource_type, region, account, max_cost is not None)):
        raise domain.InvalidInput(
            "name items (ID or resource ID), or select them with --type/--region/--account/--max-cost"
        )
    items = store.findings(
        FindingFilter(organization, account_id=account, resource_type=resource_type, region=region)
    )
    if max_cost is not None:
        items = [i for i in items if i.monthly_cost <= max_cost]
    if not refs:
        return [i.id for i in items]
    by_ref: dict[str, list[uuid.UUID]] = {}
    for item in items:
        by_ref.setdefault(str(item.id), []).append(item.id)
        by_ref.setdefault(item.resource_id, []).append(item.id)
    chosen = []
    for ref in refs:
        found = by_ref.get(ref)
        if not found:
            raise domain.InvalidInput(f"no open finding {ref!r} in organization {organization!r}")
        if len(found) > 1:
            raise domain.InvalidInput(
                f"{ref!r} names {len(found)} findings (several regions); use their IDs"
            )
        chosen.extend(found)
    return chosen


def _decide(
    approve: bool, refs: list[str], actor: str, organization: str, ttl_days: int, **filters: Any
) -> None:
    from cloudsweep.store import Store, database

    handle = database.open_database()
    try:
        store = Store(handle.url)
        org = store.organization(organization)
        if org is None:
            raise domain.InvalidInput(f"organization {organization!r} has no findings")
        ids = _select_items(store, organization, refs, **filters)
        changed = store.decide_items(
            org.id,
            ids,
            approve=approve,
            approver_email=actor,
            now=domain.utcnow(),
            ttl=timedelta(days=ttl_days),
        )
    finally:
        handle.close()
    verb = "approved" if approve else "rejected"
    output.console.print(
        f"{verb} {len(changed)} of {len(ids)} selected items as {actor.strip().lower()}"
    )
    if len(changed) < len(ids):
        output.errors.print("items being cleaned, already cleaned or gone were left as they are")


_ref_argument = typer.Argument(help="Finding IDs or resource IDs.", show_default=False)


def approve(
    refs: Annotated[list[str] | None, _ref_argument] = None,
    actor: Annotated[str, typer.Option("--as", help="Your e-mail, recorded as the approver.")] = "",
    organization: OrgOption = "default",
    resource_type: Annotated[str | None, typer.Option("--type")] = None,
    region: Annotated[str | None, typer.Option("--region")] = None,
    account: Annotated[str | None, typer.Option("--account")] = None,
    max_cost: Annotated[
        str | None, typer.Option("--max-cost", help="Only items costing at most this.")
    ] = None,
    ttl_days: Annotated[int, typer.Option("--valid-days", min=1, max=90)] = 14,
) -> None:
    """Approve findings for cleanup at their current cost and state (lapses if either changes)."""
    if "@" not in actor:
        raise domain.InvalidInput("approve needs --as EMAIL: approvals record who gave them")
    _decide(
        True,
        refs or [],
        actor,
        organization,
        ttl_days,
        resource_type=resource_type,
        region=region,
        account=account,
        max_cost=_money_option(max_cost, "--max-cost"),
    )


def reject(
    refs: Annotated[list[str] | None, _ref_argument] = None,
    actor: Annotated[str, typer.Option("--as", help="Your e-mail, recorded as who rejected.")] = "",
    organization: OrgOption = "default",
    resource_type: Annotated[str | None, typer.Option("--type")] = None,
    region: Annotated[str | None, typer.Option("--region")] = None,
    account: Annotated[str | None, typer.Option("--account")] = None,
    max_cost: Annotated[str | None, typer.Option("--max-cost")] = None,
) -> None:
    """Reject findings: no policy will act on them until someone approves them."""
    if "@" not in actor:
        raise domain.InvalidInput("reject needs --as EMAIL")
    _decide(
        False,
        refs or [],
        actor,
        organization,
        14,
        resource_type=resource_type,
        region=region,
        account=account,
        max_cost=_money_option(max_cost, "--max-cost"),
    )


def actions(
    organization: OrgOption = "default",
    run: Annotated[str | None, typer.Option("--run", help="Only this cleanup run.")] = None,
    real_only: Annotated[bool, typer.Option("--real", help="Leave out dry runs.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 200,
    fmt: Annotated[output.OutputFormat, typer.Option("--output", "-o")] = output.OutputFormat.TABLE,
) -> None:
    """The audit trail: every cleanup attempt, dry run or real, newest first."""
    from cloudsweep.store import Store, database

    try:
        run_id = uuid.UUID(run) if run else None
    except ValueError:
        raise domain.InvalidInput(
            f"--run: {run!r} is not a cleanup run ID (a UUID, as `cloudsweep cleanup` prints it)"
        ) from None
    handle = database.open_database()
    try:
        records = Store(handle.url).actions(
            organization, run_id=run_id, include_dry_runs=not real_only, limit=limit
        )
    finally:
        handle.close()
    rows = [
        {
            "id": str(r.id),
            "executed_at": r.executed_at,
            "action": r.action,
            "resource_type": r.resource_type,
            "resource_id": r.resource_id,
            "region": r.region,
            "mode": "dry run" if r.dry_run else "real",
            "status": f"{r.status} (dry run)" if r.dry_run else r.status,
            "by": r.executed_by or r.execution_method,
            "savings": r.estimated_monthly_savings,
            "rollback": ("done" if r.rollback_executed else "possible")
            if r.rollback_possible
            else "no",
            "error": r.error_message,
            "policy": r.policy_name,
            "rollback_data": r.rollback_data,
            "aws_response": r.aws_response,
        }
        for r in records
    ]
    output.render(
        rows,
        columns=[
            "executed_at",
            "id",
            "action",
            "resource_id",
            "status",
            "by",
            "savings",
            "rollback",
            "error",
        ],
        fmt=fmt,
        title=f"Cleanup actions of {organization}",
        right_aligned=["savings"],
        wrap=["error"],
    )


def rollback(
    action_id: Annotated[str, typer.Argument(help="The ID of the cleanup action to undo.")],
    execute: Annotated[
        bool, typer.Option("--execute", help="Undo it (default: show what would happen).")
    ] = False,
    actor: Annotated[
        str | None, typer.Option("--as", help="Your e-mail (needed with --execute).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes")] = False,
    organization: OrgOption = "default",
) -> None:
    """Undo a cleanup action from the rollback data it recorded before acting."""
    from cloudsweep import cleaning
    from cloudsweep.settings import get_settings
    from cloudsweep.store import Store, database

    try:
        target = uuid.UUID(action_id)
    except ValueError:
        raise domain.InvalidInput(
            f"{action_id!r} is not an action ID (see `cloudsweep actions`)"
        ) from None
    if execute and not actor:
        raise domain.InvalidInput("--execute needs --as EMAIL: rollbacks record who ran them")
    handle = database.open_database()
    try:
        store = Store(handle.url)
        options = cleaning.CleanupOptions(dry_run=True, actor_email=actor, settings=get_settings())
        preview = cleaning.rollback(store, organization, target, options)
        output.console.print(f"{preview.message}")
        if not execute:
            output.console.print("(dry run: pass --execute --as EMAIL to undo it)")
            return
        _confirm(f"Undo action {target}?", yes)
        options.dry_run = False
        result = cleaning.rollback(store, organization, target, options)
    finally:
        handle.close()
    output.console.print(f"rollback {result.rollback_id}: {result.outcome}: {result.message}")
    if result.response:
        output.print_json(dict(result.response))
    if result.outcome != "succeeded":
        raise typer.Exit(1)
