"""``cloudsweep scan``: scan one AWS account once (or the emulated demo account) and show the waste."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cloudsweep import domain, names
from cloudsweep.cli import output

# The engine is imported inside the functions that use it: `cloudsweep --help` stays light.
if TYPE_CHECKING:
    from cloudsweep import scanning
    from cloudsweep.settings import Settings
    from cloudsweep.store import Store

EXIT_ERROR = 1
EXIT_WASTE_FOUND = 3
DEMO_ORGANIZATION = "demo"


@dataclass(frozen=True)
class Target:
    """The account to scan and how to reach it."""

    organization: str
    account_id: str
    role_arn: str | None  # None: the user's own credentials (read-only, never cleaned)
    external_id: str | None
    regions: tuple[str, ...]
    session_factory: scanning.SessionFactory
    settings: Settings


@contextlib.contextmanager
def _demo_target(settings: Settings, regions: Sequence[str] | None) -> Iterator[Target]:
    """A local moto server seeded with sample waste; stopped when the scan is done."""
    from cloudsweep import aws
    from cloudsweep.aws import emulator
    from cloudsweep.aws.base import static_session
    from cloudsweep.demo import world as demo_world

    with output.errors.status("starting the local emulated AWS and seeding sample waste..."):
        local = emulator.LocalAws()
        local.start()
        world = demo_world.seed_demo_world(
            local.endpoint_url, regions=tuple(regions or ("us-east-1", "eu-west-1"))
        )
    output.errors.print(
        f"demo: emulated AWS at {local.endpoint_url}, account {world.account_id}, "
        f"{len(world.resources)} resources in {', '.join(world.regions)} "
        f"(seeded in {world.seconds:.1f} s)"
    )
    try:
        yield Target(
            organization=DEMO_ORGANIZATION,
            account_id=world.account_id,
            role_arn=world.scanner_role_arn,
            external_id=world.external_id,
            regions=tuple(world.regions),
            session_factory=functools.partial(
                aws.AccountSession,
                base_session=static_session(emulator.ACCESS_KEY_ID, emulator.SECRET_ACCESS_KEY),
            ),
            # The emulated AWS does not check ExternalIds, so its roles cannot enforce theirs:
            # the demo is a single-team install by nature.
            settings=settings.model_copy(
                update={"aws_endpoint_url": local.endpoint_url, "allow_shared_accounts": True}
            ),
        )
    finally:
        local.stop()


def _real_target(
    settings: Settings,
    *,
    organization: str,
    role_arn: str | None,
    external_id: str | None,
    regions: Sequence[str] | None,
    profile: str | None,
) -> Target:
    from cloudsweep import aws
    from cloudsweep.aws.base import base_session

    if not role_arn:
        return _ambient_target(
            settings, organization=organization, regions=regions, profile=profile
        )
    account_id = domain.role_arn_account(role_arn)
    return Target(
        organization=organization,
        account_id=account_id,
        role_arn=role_arn,
        external_id=external_id,
        regions=tuple(regions or ("us-east-1", "us-west-2")),
        session_factory=functools.partial(aws.AccountSession, base_session=base_session(profile)),
        settings=settings,
    )


def _ambient_target(
    settings: Settings,
    *,
    organization: str,
    regions: Sequence[str] | None,
    profile: str | None,
) -> Target:
    """The account the user's own credentials belong to, scanned read-only (no role)."""
    from cloudsweep import aws
    from cloudsweep.aws import ambient
    from cloudsweep.aws.base import base_session

    base = base_session(profile)
    try:
        identity = ambient.caller_identity(base, settings)
    except aws.AwsError as error:
        if error.kind.retryable:  # the network or STS, not the credentials
            raise domain.InvalidInput(
                f"cannot use your own AWS credentials: could not reach STS ({error}); check the "
                "network (and AWS_ENDPOINT_URL), or try CloudSweep with --demo"
            ) from None
        raise domain.InvalidInput(
            f"cannot use your own AWS credentials ({error}); fix them (--profile, `aws sso "
            "login`), scan another account with --role-arn, or try CloudSweep with --demo"
        ) from None
    output.errors.print(
        f"scanning account {identity.account} as {output.literal(identity.arn)} "
        "(your own credentials, read-only; use --role-arn for another account)"
    )

    def session_factory(*args: Any, **kwargs: Any) -> ambient.AmbientSession:
        session = ambient.AmbientSession(*args, base_session=base, **kwargs)
        session.verify()
        output.errors.print(f"read-only: {session.read_only_reason}")
        return session

    return Target(
        organization=organization,
        account_id=identity.account,
        role_arn=None,
        external_id=None,
        regions=tuple(regions or ("us-east-1", "us-west-2")),
        session_factory=session_factory,
        settings=settings,
    )


def scan(
    demo: Annotated[
        bool, typer.Option("--demo", help="Scan a local emulated AWS seeded with sample waste.")
    ] = False,
    role_arn: Annotated[
        str | None,
        typer.Option(
            "--role-arn",
            help="The scanned account's IAM role (cross-account). Without it: your own "
            "credentials' account, read-only.",
        ),
    ] = None,
    external_id: Annotated[
        str | None,
        typer.Option("--external-id", help="The ExternalId the role's trust policy requires."),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="AWS profile for CloudSweep's own credentials.")
    ] = None,
    regions: Annotated[
        str | None,
        typer.Option(
            "--regions",
            help="Comma-separated regions, or 'all' for every region enabled for the account "
            "(default: us-east-1,us-west-2).",
        ),
    ] = None,
    organization: Annotated[
        str, typer.Option("--org", help="The organization (tenant) the account belongs to.")
    ] = "default",
    scan_type: Annotated[
        domain.ScanType,
        typer.Option("--type", help="full, incremental (closes nothing) or manual."),
    ] = domain.ScanType.MANUAL,
    only: Annotated[
        str | None,
        typer.Option(
            "--detectors",
            help=f"Comma-separated resource types ({', '.join(names.DETECTOR_NAMES)}).",
        ),
    ] = None,
    fmt: Annotated[
        output.OutputFormat, typer.Option("--output", "-o", help="table, json or csv")
    ] = (output.OutputFormat.TABLE),
    wide: Annotated[
        bool, typer.Option("--wide", help="More columns: why, safety checks, account.")
    ] = False,
    account_id: Annotated[
        str | None,
        typer.Option(
            "--account-id",
            help="Scan this account as registered for --org (by an AwsAccount or `cloudsweep "
            "accounts add`), with its stored role and ExternalId; prints a summary, not the "
            "findings. What the operator's scan Jobs run.",
        ),
    ] = None,
    scan_id: Annotated[
        str | None,
        typer.Option("--scan-id", help="With --account-id: record into this open scan run."),
    ] = None,
    parameters: Annotated[
        str | None,
        typer.Option(
            "--parameters",
            help="With --account-id: detectors' parameters, a JSON object of resource type -> "
            "parameters (a ScanSchedule's spec.parameters).",
        ),
    ] = None,
) -> None:
    """Scan an AWS account for waste, store the findings, and print them sorted by monthly cost.

    Exit status: 0 no waste, 3 waste found, 1 error (including a scan that failed in some region).
    """
    from cloudsweep import detectors
    from cloudsweep.settings import get_settings
    from cloudsweep.store import Store, database

    settings = get_settings()
    region_list = [r.strip() for r in regions.split(",") if r.strip()] if regions else None
    detector_list = [d.strip() for d in only.split(",") if d.strip()] if only else None
    for name in detector_list or []:
        detectors.get(name)  # an unknown name is refused before anything starts
    if account_id is not None:
        from cloudsweep.cli import registered

        if demo or role_arn or external_id or profile:
            raise domain.InvalidInput(
                "--account-id scans a registered account with its stored role: "
                "--demo, --role-arn, --external-id and --profile do not apply"
            )
        raise typer.Exit(
            registered.scan_registered(
                settings,
                organization=organization,
                account_id=account_id,
                scan_id=scan_id,
                scan_type=scan_type,
                regions=region_list,
                detector_names=detector_list,
                parameters=registered.parse_parameters(parameters),
            )
        )
    if scan_id is not None or parameters is not None:
        raise domain.InvalidInput("--scan-id and --parameters go with --account-id")
    handle = database.open_database(settings)
    try:
        with contextlib.ExitStack() as stack:
            if demo:
                target = stack.enter_context(_demo_target(settings, region_list))
            else:
                target = _real_target(
                    settings,
                    organization=organization,
                    role_arn=role_arn,
                    external_id=external_id,
                    regions=region_list,
                    profile=profile,
                )
            code = _scan_target(Store(handle.url), target, scan_type, detector_list, fmt, wide=wide)
    finally:
        handle.close()
    raise typer.Exit(code)


def _scan_target(
    store: Store,
    target: Target,
    scan_type: domain.ScanType,
    detector_list: list[str] | None,
    fmt: output.OutputFormat,
    *,
    wide: bool = False,
) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cloudsweep import scanning
    from cloudsweep.cli import finding_table
    from cloudsweep.store import FindingFilter

    org = store.ensure_organization(target.organization)
    account = store.register_account(
        org.id,
        account_id=target.account_id,
        role_arn=target.role_arn,
        external_id=target.external_id,
        regions=target.regions,
        allow_shared=target.settings.allow_shared_accounts,
    )
    options = scanning.ScanOptions(scan_type=scan_type, detectors=detector_list)
    with Progress(
        TextColumn("[bold]scanning[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=output.errors,
        transient=True,
    ) as bar:
        task = bar.add_task(
            f"account {account.account_id} in {', '.join(account.regions)}", total=None
        )

        def on_progress(event: scanning.ScanProgress) -> None:
            bar.update(task, completed=event.done, total=event.total)

        outcome = scanning.run_scan(
            store,
            account,
            options,
            settings=target.settings,
            session_factory=target.session_factory,
            progress=on_progress,
        )
    store.refresh_views()
    run = outcome.scan
    if outcome.error:
        output.errors.print(
            f"[red]error:[/red] scan of account {account.account_id} failed: "
            f"{output.literal(outcome.error)}",
            markup=True,
        )
        return EXIT_ERROR
    items = store.findings(FindingFilter(target.organization, account_id=account.account_id))
    finding_table.show(items, fmt, wide=wide)
    output.errors.print(
        f"scan {run.id} {run.status} in {run.duration_seconds} s: {run.total_resources_scanned} "
        f"resources listed, {outcome.api_calls} AWS calls, {run.total_waste_items_found} waste items"
    )
    for region, why in outcome.skipped_regions.items():
        output.errors.print(f"skipped {region}: {output.literal(why)}")
    for failed in outcome.failed_tasks:
        output.errors.print(
            f"[yellow]warning:[/yellow] {failed.detector} in {failed.region} failed ({failed.error_kind}): "
            f"{output.literal(failed.error)}; its items were neither found nor closed",
            markup=True,
        )
    if outcome.failed_tasks:
        return EXIT_ERROR
    return EXIT_WASTE_FOUND if items else 0
