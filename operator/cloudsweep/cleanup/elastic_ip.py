"""Cleanup action for Elastic IPs associated with nothing: release the address.

Registered in ``cleanup/__init__.py``; driven by ``cleanup.executor`` for approved ``elastic-ip``
findings of the ``elastic-ip`` detector, whose resource ID is the allocation ID and whose
``resource_details`` carry the public IP, domain, network border group and tags.

Example CleanupPolicy rule::

    rules:
      - resourceType: elastic-ip
        action: release

Step by step:

- recheck: ``DescribeAddresses`` by allocation ID; refused when the address is associated again
  (instance, network interface) or carries a protection tag; "gone" when it was released.
- dry run: ``ReleaseAddress`` with ``DryRun=True``.
- prepare: records ``allocation_id, public_ip, domain, network_border_group, public_ipv4_pool,
  tags``: there is no undo, but the audit trail says which address was given up (partners may
  have allow-listed it).
- execute: ``ReleaseAddress``; ``InvalidAllocationID.NotFound`` means an earlier attempt released
  it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from cloudsweep.cleanup import register
from cloudsweep.cleanup.base import (
    ActionContext,
    ActionParameters,
    CleanupAction,
    CleanupItem,
    DryRunResult,
    Outcome,
    Recheck,
)
from cloudsweep.cleanup.common import (
    call,
    describe_one,
    destroy,
    dry_run_calls,
    protected_by,
    tag_map,
)
from cloudsweep.domain import ActionType


def _selector(resource_id: str) -> dict[str, Any]:
    """VPC addresses are named by allocation ID; the detector falls back to the public IP for
    (retired) EC2-Classic addresses, which have none."""
    if resource_id.startswith("eipalloc-"):
        return {"AllocationId": resource_id}
    return {"PublicIp": resource_id}


def describe_address(ctx: ActionContext, resource_id: str) -> dict[str, Any] | None:
    selector = _selector(resource_id)
    query = (
        {"AllocationIds": [selector["AllocationId"]]}
        if "AllocationId" in selector
        else {"PublicIps": [selector["PublicIp"]]}
    )
    return describe_one(lambda: call(ctx, "DescribeAddresses", **query), "Addresses")


@register
class ReleaseAddress(CleanupAction):
    """Release the Elastic IP. There is no undo: AWS hands the address to someone else.

    Example CleanupPolicy rule::

        - resourceType: elastic-ip
          action: release

    Tag addresses that partners allow-list with a protection tag: a released address cannot be
    got back.
    """

    resource_type: ClassVar[str] = "elastic-ip"
    action: ClassVar[str] = "release"
    action_type: ClassVar[ActionType] = ActionType.RELEASE
    rollback_possible: ClassVar[bool] = False
    rollback_note: ClassVar[str] = (
        "AWS cannot give a released address back; the address is recorded"
    )
    permissions: ClassVar[tuple[str, ...]] = ("ec2:DescribeAddresses", "ec2:ReleaseAddress")

    def recheck(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        address = describe_address(ctx, item.resource_id)
        if address is None:
            return Recheck.gone("address no longer allocated")
        tags = tag_map(address.get("Tags"))
        facts: dict[str, Any] = {"public_ip": address.get("PublicIp"), "tags": tags}
        # moto reports "no association" as empty strings, AWS by leaving the keys out.
        holders = [
            f"{label} {address[key]}"
            for key, label in (
                ("InstanceId", "instance"),
                ("NetworkInterfaceId", "network interface"),
                ("AssociationId", "association"),
            )
            if address.get(key)
        ]
        if holders:
            facts["associated_with"] = holders
            return Recheck(False, f"address is associated again ({', '.join(holders)})", facts)
        protection = protected_by(tags, ctx.protection_tags)
        if protection is not None:
            return Recheck(False, f"address is now protected by tag {protection}", facts)
        return Recheck(True, "still associated with nothing and unprotected", facts)

    def dry_run(
        self, ctx: ActionContext, item: CleanupItem, params: ActionParameters
    ) -> DryRunResult:
        return dry_run_calls(ctx, [("ReleaseAddress", _selector(item.resource_id))])

    def prepare(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        recorded: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        if recorded.get("public_ip"):
            return dict(recorded)
        address = describe_address(ctx, item.resource_id) or {}
        details = item.resource_details
        # Fall back on the scan's view when the address is already gone (an earlier execute).
        return {
            "allocation_id": address.get("AllocationId") or item.resource_id,
            "public_ip": address.get("PublicIp") or details.get("public_ip"),
            "domain": address.get("Domain") or details.get("domain"),
            "network_border_group": address.get("NetworkBorderGroup")
            or details.get("network_border_group"),
            "public_ipv4_pool": address.get("PublicIpv4Pool"),
            "tags": tag_map(address.get("Tags")) if address else dict(item.tags),
        }

    def execute(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        rollback_data: Mapping[str, Any],
    ) -> Outcome:
        public_ip = rollback_data.get("public_ip") or "the address"
        # NetworkBorderGroup is left out on purpose: a wrong one makes AWS answer NotFound, which
        # would be taken for "already released".
        return destroy(
            ctx,
            "ReleaseAddress",
            item.resource_id,
            "released",
            id_key="AllocationId",
            note=f"released {public_ip} ({item.resource_id})",
            **_selector(item.resource_id),
        )


__all__ = ["ReleaseAddress"]
