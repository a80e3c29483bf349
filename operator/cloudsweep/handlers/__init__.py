"""The kopf handlers: the operator's front door over the engine. The only package importing kopf.

Importing this package registers every handler: ``config`` (start-up, login), ``common``
(the namespaces index), ``awsaccounts``, ``scanschedules``, ``cleanuppolicies`` and
``cleanupapprovals``.
"""

import logging

from cloudsweep import redaction
from cloudsweep.handlers import (
    awsaccounts,
    cleanupapprovals,
    cleanuppolicies,
    common,
    config,
    scanschedules,
)

__all__ = [
    "awsaccounts",
    "cleanupapprovals",
    "cleanuppolicies",
    "common",
    "config",
    "scanschedules",
]


def configure_logging(log_format: str, *, debug: bool = False) -> None:
    """kopf's log lines (INFO: each handler's outcome per object) in the chosen format, alone.

    The CLI's own WARNING-level handler is removed, so no line is printed twice.
    """
    import kopf

    redaction.install()  # botocore's DEBUG bodies carry credentials; see cloudsweep.redaction
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formats = {"full": kopf.LogFormat.FULL, "plain": kopf.LogFormat.PLAIN}
    kopf.configure(
        debug=debug,
        log_format=formats.get(log_format, kopf.LogFormat.JSON),
        log_prefix=log_format != "json",
        log_refkey="k8s" if log_format == "json" else None,
    )
    if debug:
        # The command line quiets these unless asked at its own level (`cloudsweep --debug`);
        # `cloudsweep operator --debug` asks too.
        for name in ("botocore", "urllib3"):
            logging.getLogger(name).setLevel(logging.DEBUG)
    else:
        # Every object's timers succeed every few seconds: one line each would bury the rest.
        logging.getLogger("kopf.objects").addFilter(_drop_routine_successes)
        # One "Found credentials in environment variables" per AWS session.
        logging.getLogger("botocore.credentials").setLevel(logging.WARNING)


def _drop_routine_successes(record: logging.LogRecord) -> bool:
    """Drop the routine INFO lines: timers' successes, and the namespace watcher's (one per
    namespace of the cluster at start-up and at every namespace change)."""
    if record.levelno != logging.INFO:
        return True
    message = record.getMessage()
    routine = message.startswith("Timer ") or message.startswith("Handler 'namespace-")
    return not (routine and message.endswith(" succeeded."))


def run(*, namespaces: list[str] | None, peering: str | None, health_port: int) -> None:
    """Run the operator until it is stopped (``cloudsweep operator``).

    ``peering=None`` is standalone. kopf treats any ``peering_name`` as mandatory peering, even
    beside ``standalone=True``: without its peering CRDs every watch then stays paused, silently.
    """
    import asyncio

    import kopf

    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces or [],
            standalone=peering is None,
            peering_name=peering,
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz" if health_port else None,
        )
    )
