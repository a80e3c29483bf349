"""The catalog against real AWS prices, each with its public source and date, within 1%.

The table is kept here, apart from ``pricing/data/sourced_prices.json``, on purpose: it is the
check a refreshed or hand-edited catalog must still pass. Each row prices something the way a
detector asks for it (a volume, an instance, a NAT gateway...) and compares it with what the
source's rate gives for the same thing. Sources are described in docs/pricing.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest

from cloudsweep.pricing import HOURS_PER_MONTH, PriceCatalog, load_catalog

GIB = 2**30
CONTINENT = {
    "us-east-1": "North America",
    "us-west-2": "North America",
    "us-east-2": "North America",
    "ca-central-1": "North America",
    "eu-west-1": "Europe",
    "eu-west-2": "Europe",
    "eu-central-1": "Europe",
    "ap-northeast-1": "Asia",
    "ap-northeast-2": "Asia",
    "ap-southeast-1": "Asia",
    "ap-south-1": "Asia",
    "ap-southeast-2": "Oceania",
}


@dataclass(frozen=True)
class Real:
    region: str
    what: str
    expected: Decimal  # what the source's rate gives for ``lookup``, per month
    lookup: Callable[[PriceCatalog, str], Decimal]
    source: str  # where the rate is published, and when

    @property
    def id(self) -> str:
        return f"{self.region}: {self.what}"


def hourly(rate: str) -> Decimal:
    return Decimal(rate) * HOURS_PER_MONTH


def ec2(kind: str) -> Callable[[PriceCatalog, str], Decimal]:
    return lambda p, r: p.ec2_instance_monthly(r, kind)


def volume(kind: str, gib: int = 100, iops: int | None = None, mibps: int | None = None):  # type: ignore[no-untyped-def]
    return lambda p, r: p.ebs_volume_monthly(r, kind, gib, iops, mibps)


def rds(cls: str, engine: str, multi_az: bool = False):  # type: ignore[no-untyped-def]
    return lambda p, r: p.rds_instance_monthly(r, cls, engine, multi_az)


def lb(kind: str = "application"):  # type: ignore[no-untyped-def]
    return lambda p, r: p.load_balancer_monthly(r, kind)


def ipv4(p: PriceCatalog, r: str) -> Decimal:
    return p.public_ipv4_monthly(r)


def nat(gb: int = 0):  # type: ignore[no-untyped-def]
    return lambda p, r: p.nat_gateway_monthly(r, gb)


def snapshot(tier: str = "standard"):  # type: ignore[no-untyped-def]
    return lambda p, r: p.ebs_snapshot_monthly(r, 100, tier)


KARPENTER = "aws/karpenter-provider-aws zz_generated.pricing_aws.go, generated 2026-01-19"
USE1_API = "AWS Pricing API items captured 2026-03-22 (AmazonRDS published 2026-03-18)"
USE1_ADR = "us-east-1 rate descriptions effective 2026-08-01 (search index file 67150634820)"
LYFT = "lyft/awspricing AmazonEC2 offer excerpt, version 20161213014831 (effective 2017-07-01)"
OREGON = "us-west-2 Price List files published 2026-09-17/18 (search index file 68404663098)"
IRELAND_2021 = "GetProducts for EU (Ireland), published 2021-01-15"
IRELAND_AUDIT = "EBS Price List results for eu-west-1, queried 2026-05-01"
SINGAPORE = "rahmat-ullah/DocParser sample AWS bill, May 2025"
TOKYO_EBS = "AmazonEC2 ap-northeast-1 Price List, published 2026-09-10 (SKUs in source)"
TOKYO = "ap-northeast-1 Price List CSVs of 2026-09-10/11 (search index file 71291640744)"
SEOUL = "ap-northeast-2 Price List rates quoted 2026-09-11 and 2026-10-01"
SPOT_CHECKS = "Price List snapshot spot-checked against AWS pricing pages, 2026-08-10"

REAL_PRICES = [
    # North America
    Real("us-east-1", "t3.micro", hourly("0.0104"), ec2("t3.micro"), KARPENTER),
    Real("us-east-1", "m6g.large", hourly("0.077"), ec2("m6g.large"), KARPENTER),
    Real("us-east-1", "r6i.large", hourly("0.126"), ec2("r6i.large"), KARPENTER),
    Real("us-east-1", "m5.large", hourly("0.096"), ec2("m5.large"), USE1_API),
    Real("us-east-1", "c4.large", hourly("0.1"), ec2("c4.large"), LYFT),
    Real("us-east-1", "RDS db.t3.micro PostgreSQL", hourly("0.018"), rds("db.t3.micro", "postgres"), USE1_API),
    Real("us-east-1", "RDS db.t3.micro MySQL", hourly("0.017"), rds("db.t3.micro", "mysql"), USE1_API),
    Real("us-east-1", "Aurora PostgreSQL db.r6g.large", hourly("0.26"), rds("db.r6g.large", "aurora-postgresql"), USE1_API),
    Real("us-east-1", "gp3 100 GiB", Decimal("8"), volume("gp3"), USE1_API),
    Real("us-east-2", "gp3 100 GiB", Decimal("8"), volume("gp3"), "OpenCost's cut of the AmazonEC2 offer of 2023-03-22"),
    Real("us-east-1", "snapshot 100 GiB", Decimal("5"), snapshot(), LYFT),
    Real("us-east-1", "NAT gateway, 100 GB", hourly("0.045") + Decimal("4.5"), nat(100), USE1_ADR),
    Real("us-east-1", "application load balancer", hourly("0.0225"), lb(), USE1_ADR),
    Real("us-west-2", "t4g.small", hourly("0.0168"), ec2("t4g.small"), OREGON),
    # gp3 throughput is published as 40.96 USD per GiBps-month: 125 MiB/s above the baseline.
    Real("us-west-2", "gp3 100 GiB, 4000 IOPS, 250 MiB/s", Decimal("8") + 1000 * Decimal("0.005") + 125 * Decimal("40.96") / 1024, volume("gp3", 100, 4000, 250), OREGON),
    Real("us-west-2", "S3 Standard 100 GiB", Decimal("2.3"), lambda p, r: p.s3_standard_storage_monthly(r, 100 * GIB), OREGON),
    Real("us-west-2", "CloudWatch Logs 100 GiB stored", Decimal("3"), lambda p, r: p.cloudwatch_logs_storage_monthly(r, 100 * GIB), OREGON),
    Real("us-west-2", "public IPv4 address", hourly("0.005"), ipv4, OREGON),
    Real("ca-central-1", "application load balancer", hourly("0.02475"), lb(), LYFT),
    # Europe
    Real("eu-west-1", "gp2 100 GiB", Decimal("11"), volume("gp2"), IRELAND_AUDIT),
    Real("eu-west-1", "gp3 100 GiB", Decimal("8.8"), volume("gp3"), IRELAND_AUDIT),
    Real("eu-west-1", "io1 1000 IOPS (no storage)", Decimal("72"), volume("io1", 0, 1000), IRELAND_AUDIT),
    Real("eu-west-1", "io2 100 GiB (1 IOPS)", Decimal("13.8"), volume("io2", 100, 0), IRELAND_2021),
    Real("eu-west-1", "t2.micro", hourly("0.0126"), ec2("t2.micro"), IRELAND_2021),
    Real("eu-west-1", "m5.large", hourly("0.107"), ec2("m5.large"), SPOT_CHECKS),
    Real("eu-west-1", "application load balancer", hourly("0.0252"), lb(), "Cost Explorer, eu-west-1, July 2026: 15.00 USD for 595 h"),
    Real("eu-west-1", "RDS db.t4g.micro PostgreSQL", hourly("0.017"), rds("db.t4g.micro", "postgres"), "Cost Explorer, eu-west-1, July 2026: 12.41 USD per 730 h"),
    Real("eu-central-1", "RDS db.t3.micro PostgreSQL", hourly("0.021"), rds("db.t3.micro", "postgres"), SPOT_CHECKS),
    Real("us-east-1", "S3 Standard 100 GiB", Decimal("2.3"), lambda p, r: p.s3_standard_storage_monthly(r, 100 * GIB), SPOT_CHECKS),
    Real("eu-west-1", "snapshot 100 GiB", Decimal("5"), snapshot(), "EBS snapshot Price List results for eu-west-1, queried 2026-05-01"),
    Real("eu-west-1", "archived snapshot 100 GiB", Decimal("1.25"), snapshot("archive"), "EBS snapshot Price List results for eu-west-1, queried 2026-05-01"),
    Real("eu-central-1", "snapshot 100 GiB", Decimal("5.4"), snapshot(), "EUC1-EBS:SnapshotUsage from the bulk price list, 2026-09-11"),
    Real("eu-west-1", "RDS backup storage 100 GiB", Decimal("9.5"), lambda p, r: p.rds_snapshot_monthly(r, 100), SINGAPORE),
    Real("eu-west-2", "io1 1000 IOPS (no storage)", Decimal("76"), volume("io1", 0, 1000), LYFT),
    Real("eu-west-2", "io1 100 GiB, 1000 IOPS", Decimal("14.5") + Decimal("76"), volume("io1", 100, 1000), "YugabyteDB's quote of the EU (London) offer, effective 2017-06-01"),
    Real("eu-central-1", "t4g.small", hourly("0.0192"), ec2("t4g.small"), "AWS Pricing API rates for eu-central-1, 2026-08-26"),
    Real("eu-central-1", "gp3 100 GiB", Decimal("9.52"), volume("gp3"), "AWS Pricing API rates for eu-central-1, 2026-08-26"),
    Real("eu-central-1", "application load balancer", hourly("0.027"), lb(), "FOCUS billing line, EU (Frankfurt), 2024-09-17"),
    # Asia
    Real("ap-northeast-1", "gp3 500 GiB at 250 MiB/s", Decimal("48") + 125 * Decimal("49.152") / 1024, volume("gp3", 500, 3000, 250), TOKYO_EBS),
    Real("ap-northeast-1", "gp2 100 GiB", Decimal("12"), volume("gp2"), TOKYO_EBS),
    Real("ap-northeast-1", "io2 100 GiB, 40000 IOPS", Decimal("14.2") + 32000 * Decimal("0.074") + 8000 * Decimal("0.0518"), volume("io2", 100, 40000), TOKYO_EBS),
    Real("ap-northeast-1", "st1 1000 GiB", Decimal("54"), volume("st1", 1000), TOKYO_EBS),
    Real("ap-northeast-1", "sc1 1000 GiB", Decimal("18"), volume("sc1", 1000), TOKYO_EBS),
    Real("ap-northeast-1", "t4g.small", hourly("0.0216"), ec2("t4g.small"), TOKYO),
    Real("ap-northeast-1", "RDS db.t4g.micro MySQL", hourly("0.025"), rds("db.t4g.micro", "mysql"), TOKYO),
    Real("ap-northeast-1", "RDS gp3 100 GiB", Decimal("13.8"), lambda p, r: p.rds_storage_monthly(r, "gp3", 100), TOKYO),
    Real("ap-northeast-1", "snapshot 100 GiB", Decimal("5"), snapshot(), "AWS bill quoted in a blog post, 2017-05-04"),
    Real("ap-northeast-2", "application load balancer", hourly("0.0225"), lb(), SEOUL),
    Real("ap-northeast-2", "NAT gateway, 100 GB", hourly("0.059") + Decimal("5.9"), nat(100), SEOUL),
    Real("ap-northeast-2", "snapshot 100 GiB", Decimal("5"), snapshot(), "AWS bill quoted in a blog post, 2019-10-14"),
    Real("ap-southeast-1", "NAT gateway, 100 GB", hourly("0.059") + Decimal("5.9"), nat(100), SINGAPORE),
    Real("ap-southeast-1", "t3.small", hourly("0.0264"), ec2("t3.small"), SINGAPORE),
    Real("ap-southeast-1", "c5.xlarge", hourly("0.196"), ec2("c5.xlarge"), SINGAPORE),
    Real("ap-southeast-1", "gp3 100 GiB", Decimal("9.6"), volume("gp3"), SINGAPORE),
    Real("ap-southeast-1", "RDS db.t3.small PostgreSQL", hourly("0.056"), rds("db.t3.small", "postgres"), SINGAPORE),
    Real("ap-southeast-1", "RDS db.t3.small PostgreSQL Multi-AZ", hourly("0.112"), rds("db.t3.small", "postgres", True), SINGAPORE),
    Real("ap-southeast-1", "RDS gp2 100 GiB Multi-AZ", Decimal("27.6"), lambda p, r: p.rds_storage_monthly(r, "gp2", 100, multi_az=True), SINGAPORE),
    Real("ap-southeast-1", "application load balancer", hourly("0.0252"), lb(), SINGAPORE),
    Real("ap-southeast-1", "public IPv4 address", hourly("0.005"), ipv4, SINGAPORE),
    Real("ap-south-1", "gp2 100 GiB", Decimal("11.4"), volume("gp2"), LYFT),
    # Oceania
    Real("ap-southeast-2", "snapshot 100 GiB", Decimal("5.5"), snapshot(), "Pricing API via the EBS Snapshot Tiering Evaluator sample, 2022"),
    Real("ap-southeast-2", "archived snapshot 100 GiB", Decimal("1.375"), snapshot("archive"), "Pricing API via the EBS Snapshot Tiering Evaluator sample, 2022"),
]  # fmt: skip


@pytest.fixture(scope="module")
def prices() -> PriceCatalog:
    return load_catalog()


def test_the_table_covers_seven_regions_on_three_continents() -> None:
    regions = {row.region for row in REAL_PRICES}
    assert len(regions) >= 7
    assert len({CONTINENT[region] for region in regions}) >= 3


@pytest.mark.parametrize("row", REAL_PRICES, ids=lambda row: row.id)
def test_the_catalog_matches_real_prices_within_one_percent(
    prices: PriceCatalog, row: Real
) -> None:
    got = row.lookup(prices, row.region)
    assert abs(got - row.expected) <= row.expected * Decimal("0.01"), (
        f"{row.id}: catalog {got}, real {row.expected} ({row.source})"
    )
