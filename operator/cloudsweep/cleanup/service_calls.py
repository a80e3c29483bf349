"""One AWS call of any service in the item's account and region, with its errors classified.

Imported by the action modules whose service is not EC2 (``common.call`` is EC2's); not an
action itself.
"""

from __future__ import annotations

from typing import Any

from cloudsweep import aws
from cloudsweep.cleanup.base import ActionContext


def call(ctx: ActionContext, service: str, operation: str, **params: Any) -> dict[str, Any]:
    """``call(ctx, "logs", "PutRetentionPolicy", ...)``; failures raise ``aws.AwsError``."""
    with aws.translated(service, operation, ctx.region):
        return dict(getattr(ctx.client(service), aws.method_name(operation))(**params))
