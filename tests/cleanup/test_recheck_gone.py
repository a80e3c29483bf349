"""Every action's re-check says "gone" when its resource no longer exists (moto over HTTP).

The reconciliation of an interrupted attempt depends on it: an absent resource after a recorded
intent is recorded as done, once. A re-check that only said "no longer exists" would make such a
removal look refused, and lose it from the audit trail and from rollback.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from cloudsweep import aws, cleanup, domain
from cloudsweep.cleanup import ActionContext, CleanupItem
from cloudsweep.settings import Settings

ACCOUNT = "123456789012"
REGION = "us-east-1"
MISSING: dict[str, tuple[str, str | None, dict[str, Any]]] = {
    "ebs-volume": ("vol-0123456789abcdef0", None, {"volume_type": "gp3", "size_gib": 10}),
    "ebs-snapshot": ("snap-0123456789abcdef0", None, {}),
    "elastic-ip": ("eipalloc-0123456789abcdef0", None, {}),
    "load-balancer": (
        "app/missing/0123456789abcdef",
        f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/app/missing/0123456789abcdef",
        {"lb_type": "application"},
    ),
    "rds-instance": ("missing-db", None, {}),
    "ebs-gp3-candidate": ("vol-0123456789abcdef0", None, {"volume_type": "gp2"}),
    "ami": ("ami-0123456789abcdef0", None, {}),
    "cloudwatch-log-group": ("/missing/log-group", None, {}),
    "s3-incomplete-multipart": ("cloudsweep-missing-bucket", None, {}),
    "ec2-instance": ("i-0123456789abcdef0", None, {"instance_type": "t3.micro"}),
    "ec2-stopped-instance": ("i-0123456789abcdef1", None, {"instance_type": "t3.micro"}),
    "nat-gateway": ("nat-0123456789abcdef0", None, {}),
}


@pytest.mark.parametrize(
    "action", cleanup.all_actions(), ids=lambda a: f"{a.resource_type}/{a.action}"
)
def test_a_missing_resource_is_reported_gone(
    action: type[cleanup.CleanupAction], moto_endpoint: str
) -> None:
    resource_id, arn, details = MISSING[action.resource_type]
    session = aws.AccountSession(
        ACCOUNT,
        f"arn:aws:iam::{ACCOUNT}:role/cleanup",
        external_id="cs-recheck-gone",
        purpose=aws.Purpose.CLEANUP,
        settings=Settings(aws_endpoint_url=moto_endpoint, aws_max_attempts=2),
    )
    ctx = ActionContext(
        account_id=ACCOUNT,
        region=REGION,
        partition="aws",
        action_id=uuid.uuid4(),
        client=lambda service: session.client(service, REGION),
        now=domain.utcnow,
        checkpoint=lambda _: None,
    )
    item = CleanupItem(
        waste_item_id=uuid.uuid4(),
        account_id=ACCOUNT,
        region=REGION,
        resource_type=action.resource_type,
        resource_id=resource_id,
        resource_arn=arn,
        availability_zone=f"{REGION}a",
        monthly_cost=Decimal("1.00"),
        resource_details={"tags": {}, **details},
    )
    recheck = action().recheck(ctx, item)
    assert not recheck.still_waste
    assert recheck.facts.get("gone") is True, recheck
