"""``cloudsweep scan --account-id ID``: scan an account already registered in the database.

This is what a scan Job runs (``cloudsweep.scan_jobs`` writes its arguments): the account's role
and ExternalId come from the database, where the operator's AwsAccount handler put them, never
from the command line; AWS credentials are the process's own (the operator's service account, or
the Secret references copied from the operator's Deployment). The run is written exactly as the
operator's in-process scan writes it (``scanning.run_scan``), into the run the operator opened
(``--scan-id``), so everything downstream is the same. Exit status: 0 the run was recorded
(completed or partial), 1 it failed (the reason on stderr, and in the run).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from cloudsweep import aws, domain, scanning
from cloudsweep.cli import output
from cloudsweep.settings import Settings
from cloudsweep.store import Store, database

EXIT_RECORDED = 0
EXIT_FAILED = 1


def parse_parameters(text: str | None) -> dict[str, Mapping[str, Any]]:
    """``--parameters``: a JSON object of resource type -> that detector's parameters."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as error:
        raise domain.InvalidInput(f"--parameters is not JSON: {error}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise domain.InvalidInput(
            "--parameters must be a JSON object of resource type -> parameters object"
        )
    return value


def scan_registered(
    settings: Settings,
    *,
    organization: str,
    account_id: str,
    scan_id: str | None,
    scan_type: domain.ScanType,
    regions: Sequence[str] | None,
    detector_names: Sequence[str] | None,
    parameters: Mapping[str, Mapping[str, Any]],
) -> int:
    account_id = domain.validate_account_id(account_id)
    run_id: uuid.UUID | None = None
    if scan_id is not None:
        try:
            run_id = uuid.UUID(scan_id)
        except ValueError:
            raise domain.InvalidInput(f"--scan-id is not a UUID: {scan_id!r}") from None
    handle = database.open_database(settings)
    try:
        store = Store(handle.url)
        org = store.organization(organization)
        account = store.account(org.id, account_id) if org is not None else None
        if account is None or account.deleted:
            raise domain.InvalidInput(
                f"account {account_id} is not registered for organization {organization} "
                "(register it with an AwsAccount, or `cloudsweep accounts add`)"
            )
        if not account.scan_enabled:
            raise domain.InvalidInput(f"account {account_id} has scanning disabled")
        run = store.scan(run_id) if run_id is not None else None
        if run_id is not None and run is None:
            raise domain.InvalidInput(f"scan {run_id} does not exist")
        outcome = scanning.run_scan(
            store,
            account,
            scanning.ScanOptions(
                scan_type=scan_type,
                regions=regions,
                detectors=detector_names,
                parameters=parameters,
            ),
            settings=settings,
            session_factory=aws.AccountSession,
            recorder=aws.CallRecorder(),
            scan=run,
        )
    finally:
        handle.close()
    closed = outcome.scan
    summary = (
        f"scan {closed.id} of account {account_id} {closed.status}: "
        f"{closed.total_resources_scanned} resources listed, {outcome.api_calls} AWS calls, "
        f"{closed.total_waste_items_found} waste items, "
        f"{closed.total_monthly_waste_cost} USD/month"
    )
    if closed.status in (domain.ScanStatus.COMPLETED.value, domain.ScanStatus.PARTIAL.value):
        output.errors.print(
            summary + (f"; failed: {closed.error_message}" if closed.error_message else "")
        )
        return EXIT_RECORDED
    output.errors.print(
        f"[red]error:[/red] {output.literal(summary)}: "
        f"{output.literal(outcome.error or closed.error_message or 'no reason recorded')}",
        markup=True,
    )
    return EXIT_FAILED
