"""The ``cloudsweep`` command line: a thin front door over the engine, like the kopf handlers.

Exit codes: 0 success (for scans: no waste found), 3 a scan found waste, 1 an error with a message
saying what to fix, 2 a usage error.

Start-up is kept light: the command modules import the engine (boto3, SQLAlchemy, kopf, the
detectors) inside the commands that use it, so ``cloudsweep --help`` and usage errors answer at
once (``tests/cli/test_startup.py`` holds this; ``python -m bench startup`` times it).
"""

from __future__ import annotations

import logging
import sys

import typer

from cloudsweep import __version__, redaction
from cloudsweep.cli import (
    accounts,
    cleanup,
    db,
    findings,
    notify,
    operator,
    output,
    pricing,
    report,
    scan,
)

EXIT_ERROR = scan.EXIT_ERROR
log = logging.getLogger(__name__)

app = typer.Typer(
    name="cloudsweep",
    help="Find, price and safely remove AWS waste.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(pricing.app, name="pricing")
app.add_typer(accounts.app, name="accounts")
app.command()(scan.scan)
app.command()(findings.findings)
app.command()(operator.operator)
app.command()(report.report)
app.command("send-reports")(notify.send_reports)
for _command in (
    cleanup.cleanup,
    cleanup.approve,
    cleanup.reject,
    cleanup.actions,
    cleanup.rollback,
):
    app.command()(_command)


def _version(value: bool) -> None:
    if value:
        output.console.print(f"cloudsweep {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens."),
    debug: bool = typer.Option(
        False, "--debug", help="Log everything, AWS requests and responses too (secrets redacted)."
    ),
) -> None:
    # Before any handler exists: every record of every logger is redacted (cloudsweep.redaction).
    redaction.install()
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not (debug or verbose):
        # botocore warns, with a traceback, about a failed credential refresh that the command
        # then reports itself in one line.
        for name in _QUIET_UNLESS_ASKED:
            logging.getLogger(name).setLevel(logging.ERROR)


_QUIET_UNLESS_ASKED = ("botocore", "urllib3")


def _expected() -> tuple[type[Exception], ...]:
    """Errors that are the user's to fix: print the message, not a traceback.

    Imported only once an error is being reported, so that start-up does not pay for the engine
    (an error of a module that was never imported cannot have been raised anyway).
    """
    from cloudsweep import aws, cleaning, domain, policies, scanning
    from cloudsweep.store import database

    return (
        domain.InvalidInput,
        database.SchemaOutOfDate,
        database.DatabaseUnavailable,
        aws.AwsError,
        scanning.ScanRefused,
        cleaning.CleanupRefused,
        policies.PolicyError,
    )


def _one_line(error: BaseException) -> str:
    """The error's message on one line, secrets redacted (it may quote a URL or a request)."""
    return redaction.redact(" ".join(str(error).split()))


def main() -> None:
    """The console script, and the command line's one error boundary: whatever goes wrong, the
    user gets one line on stderr and exit code 1 (2 for usage errors, which typer reports)."""
    try:
        app()
    except KeyboardInterrupt:
        output.errors.print("interrupted")
        sys.exit(130)
    except Exception as error:
        if isinstance(error, _expected()):
            output.errors.print(
                f"[red]error:[/red] {output.literal(_one_line(error))}", markup=True
            )
            sys.exit(EXIT_ERROR)
        # unforeseen: still one line; the traceback only with --debug
        log.debug("unexpected error", exc_info=True)
        output.errors.print(
            f"[red]error:[/red] {output.literal(type(error).__name__)}: "
            f"{output.literal(_one_line(error))} (unexpected: rerun with --debug for details, "
            "and please report it)",
            markup=True,
        )
        sys.exit(EXIT_ERROR)
