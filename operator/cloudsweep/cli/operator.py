"""``cloudsweep operator``: run the Kubernetes operator (kopf) in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer


def operator(
    namespaces: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Only these namespaces (default: all)."),
    ] = None,
    standalone: Annotated[
        bool,
        typer.Option(
            "--standalone", help="No peering with other replicas: the default, kept for clarity."
        ),
    ] = False,
    peering: Annotated[
        str | None,
        typer.Option(
            "--peering",
            help="Pause surplus replicas through this kopf peering object (needs kopf's peering "
            "CRDs; docs/install.md). Default: standalone, one replica.",
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            help="full, plain or json (default: CLOUDSWEEP_LOG_FORMAT, else full).",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Log kopf's internals too.")] = False,
) -> None:
    """Run the operator: reconcile AwsAccount, ScanSchedule and CleanupPolicy objects."""
    from cloudsweep import handlers
    from cloudsweep.settings import get_settings

    if standalone and peering:
        raise typer.BadParameter(
            "--standalone and --peering exclude each other", param_hint="--peering"
        )
    settings = get_settings()
    chosen = log_format or settings.log_format
    if chosen not in ("full", "plain", "json"):
        raise typer.BadParameter(f"{chosen!r}: use full, plain or json", param_hint="--log-format")
    handlers.configure_logging(chosen, debug=debug)
    handlers.run(namespaces=namespaces, peering=peering, health_port=settings.health_port)
