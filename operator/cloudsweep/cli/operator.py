"""``cloudsweep operator``: run the Kubernetes operator (kopf) in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer

from cloudsweep.settings import get_settings


def operator(
    namespaces: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Only these namespaces (default: all)."),
    ] = None,
    standalone: Annotated[
        bool,
        typer.Option("--standalone", help="No peering with other replicas (one replica only)."),
    ] = False,
    peering: Annotated[
        str, typer.Option("--peering", help="kopf peering object name.")
    ] = "cloudsweep",
) -> None:
    """Run the operator: reconcile AwsAccount, ScanSchedule and CleanupPolicy objects."""
    from cloudsweep import handlers

    handlers.run(
        namespaces=namespaces,
        standalone=standalone,
        peering=peering,
        health_port=get_settings().health_port,
    )
