"""What a detector may see of one account and region: clients, the shared inventory, prices, now.

Built by the scan run (one per account and region, shared by every detector of that region) and
by the detector tests, which inject ``now`` to test age thresholds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from cloudsweep.detectors.inventory import Inventory
from cloudsweep.domain import utcnow

if TYPE_CHECKING:
    from cloudsweep.aws.session import ScanSession


class Prices(Protocol):
    """The part of ``cloudsweep.pricing.PriceCatalog`` the detectors use."""

    def ebs_volume_monthly(
        self,
        region: str,
        volume_type: str,
        size_gib: int,
        iops: int | None = None,
        throughput_mibps: int | None = None,
    ) -> Decimal: ...

    def ebs_snapshot_monthly(
        self, region: str, size_gib: int, tier: str = "standard"
    ) -> Decimal: ...

    def public_ipv4_monthly(self, region: str) -> Decimal: ...

    def load_balancer_monthly(self, region: str, lb_type: str) -> Decimal: ...

    def rds_instance_monthly(
        self, region: str, instance_class: str, engine: str, multi_az: bool
    ) -> Decimal: ...

    def rds_storage_monthly(
        self,
        region: str,
        storage_type: str,
        size_gib: int,
        iops: int | None = None,
        throughput_mibps: int | None = None,
        multi_az: bool = False,
        engine: str | None = None,
    ) -> Decimal: ...

    def ec2_instance_monthly(self, region: str, instance_type: str) -> Decimal: ...

    def nat_gateway_monthly(
        self, region: str, gb_processed_per_month: int | Decimal = 0
    ) -> Decimal: ...

    def cloudwatch_logs_storage_monthly(self, region: str, stored_bytes: int) -> Decimal: ...

    def s3_standard_storage_monthly(self, region: str, stored_bytes: int) -> Decimal: ...


@dataclass(frozen=True)
class RegionContext:
    account_id: str
    region: str
    partition: str
    client: Callable[[str], Any]  # service name -> boto3 client of this account and region
    inventory: Inventory
    prices: Prices
    now: datetime = field(default_factory=utcnow)

    @classmethod
    def for_session(
        cls,
        session: ScanSession,
        region: str,
        prices: Prices,
        *,
        now: datetime | None = None,
        page_size: int | None = None,
    ) -> RegionContext:
        """The usual way in: a context over an ``aws.AccountSession`` with a fresh inventory."""

        def client(service: str) -> Any:
            return session.client(service, region)

        return cls(
            account_id=session.account_id,
            region=region,
            partition=session.partition,
            client=client,
            inventory=Inventory(client, region=region, page_size=page_size),
            prices=prices,
            now=now or utcnow(),
        )

    def arn(self, service: str, resource: str, *, with_account: bool = True) -> str:
        account = self.account_id if with_account else ""
        return f"arn:{self.partition}:{service}:{self.region}:{account}:{resource}"
