"""Which regions an account has enabled: ``regions: [all]`` and ``--regions all``.

Called by the scan run when an account's regions are ``all``, with the scan's own session (so the
call is made, and recorded, with the scanned account's read-only credentials).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloudsweep.aws import errors

# Where to ask in each partition; DescribeRegions answers for the whole partition from any region.
_HOME_REGION = {"aws": "us-east-1", "aws-cn": "cn-north-1", "aws-us-gov": "us-gov-west-1"}
DESCRIBE_REGIONS_PERMISSION = "ec2:DescribeRegions"


@dataclass(frozen=True, slots=True)
class AccountRegions:
    enabled: tuple[str, ...]
    skipped: dict[str, str]  # region -> why it is not scanned


def account_regions(session: Any) -> AccountRegions:
    """The regions the account may use, and the others with the reason they are skipped."""
    home = _HOME_REGION.get(getattr(session, "partition", "aws"), "us-east-1")
    client = session.client("ec2", home)
    with errors.translated("ec2", "DescribeRegions", home):
        response = client.describe_regions(AllRegions=True)
    enabled: list[str] = []
    skipped: dict[str, str] = {}
    for region in response.get("Regions", []):
        name = str(region["RegionName"])
        status = region.get("OptInStatus", "opt-in-not-required")
        if status in ("opt-in-not-required", "opted-in"):
            enabled.append(name)
        else:
            skipped[name] = f"not enabled for the account (opt-in status: {status})"
    return AccountRegions(enabled=tuple(sorted(enabled)), skipped=dict(sorted(skipped.items())))
