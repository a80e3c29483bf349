"""One AWS call of any service in the item's account and region, with its errors classified.

Every action's calls go through it (``common.call`` for EC2, ``lb_common.call`` for the load
balancers); not an action itself. The operation names the call once: it labels the error, and
boto3's method is derived from it (``aws.method_name``).
"""

from __future__ import annotations

from typing import Any

from cloudsweep import aws
from cloudsweep.cleanup.base import ActionContext


def call(ctx: ActionContext, service: str, operation: str, **params: Any) -> dict[str, Any]:
    """``call(ctx, "logs", "PutRetentionPolicy", ...)``; failures raise ``aws.AwsError``."""
    with aws.translated(service, operation, ctx.region):
        return dict(getattr(ctx.client(service), aws.method_name(operation))(**params))
