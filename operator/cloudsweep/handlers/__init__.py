"""The kopf handlers: the operator's front door over the engine. The only package importing kopf.

Importing this package registers every handler: ``config`` (start-up, login), ``common``
(the namespaces index), ``awsaccounts``, ``scanschedules`` and ``cleanuppolicies``.
"""

from cloudsweep.handlers import awsaccounts, cleanuppolicies, common, config, scanschedules

__all__ = ["awsaccounts", "cleanuppolicies", "common", "config", "scanschedules"]


def run(*, namespaces: list[str] | None, standalone: bool, peering: str, health_port: int) -> None:
    """Run the operator until it is stopped (``cloudsweep operator``)."""
    import asyncio

    import kopf

    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces or [],
            standalone=standalone,
            peering_name=peering,
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz" if health_port else None,
        )
    )
