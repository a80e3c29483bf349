"""The price catalog: what a resource costs per month, looked up by region.

Called by the detectors (each prices its findings) and by the ``cloudsweep pricing`` commands.
``load_catalog()`` reads the catalog bundled as package data (``pricing/data/catalog.json``);
``cloudsweep pricing refresh`` writes a new one from the AWS Price List API (``pricing.refresh``).

Every figure is a ``Decimal`` in USD, on-demand, list price: no free tier, no discounts, no tax.
Monthly means ``HOURS_PER_MONTH`` (730) hours, as AWS's own calculator assumes. Results are not
rounded: callers round to cents (``domain.money``) once, after adding costs up.

The catalog says where its figures come from (``source``) and on what basis, per region
(``basis(region)``) and per figure (``figure_basis(region, path)``): a figure is ``published``
when it was read from a dated public source (``sources``: a Price List excerpt, a bill, a
pricing page), otherwise ``estimated`` with how (for example ``us-east-1 x 1.2, the ratio of this
region's sourced EBS prices``). ``figures(region)`` lists every figure of a region with its
unit and basis, which ``cloudsweep pricing show --region`` prints. Anything the catalog does not
know raises ``UnknownPrice`` rather than guessing: a wrong price is worse than a missing one.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict

HOURS_PER_MONTH = Decimal(730)
# AWS bills storage per GB of 2^30 bytes (S3 and CloudWatch Logs "GB" are binary gigabytes).
BYTES_PER_GB = Decimal(2**30)
SCHEMA_VERSION = 1

# Deployment keys of RDS prices in the catalog document.
SINGLE_AZ = "single_az"
MULTI_AZ = "multi_az"

LoadBalancerType = Literal["application", "network", "gateway", "classic"]
LOAD_BALANCER_TYPES: tuple[str, ...] = ("application", "network", "gateway", "classic")
SNAPSHOT_TIERS: tuple[str, ...] = ("standard", "archive")
RDS_STORAGE_TYPES: tuple[str, ...] = ("gp2", "gp3", "io1", "io2", "standard")

# RDS API engine names -> the Price List ``databaseEngine`` attribute, which keys the catalog.
RDS_ENGINES: Mapping[str, str] = {
    "mysql": "MySQL",
    "mariadb": "MariaDB",
    "postgres": "PostgreSQL",
    "aurora": "Aurora MySQL",  # the engine name of Aurora MySQL 1 (MySQL 5.6 compatible)
    "aurora-mysql": "Aurora MySQL",
    "aurora-postgresql": "Aurora PostgreSQL",
}
# Aurora has no hidden standby: every instance of a cluster, writer or reader, is its own DB
# instance with its own (single) price, so "Multi-AZ" never doubles an Aurora instance.
_PER_INSTANCE_ENGINES = frozenset({"Aurora MySQL", "Aurora PostgreSQL"})
# Their price depends on edition and license model (license included or BYOL), which the lookup
# is not given; an honest "unknown" beats the price of another edition.
_LICENSED_ENGINE_PREFIXES = ("oracle", "sqlserver", "db2", "custom-")

# RDS gp3 includes a baseline that grows with the volume (RDS User Guide, "gp3 storage"): MySQL,
# MariaDB, PostgreSQL and Db2 get 12,000 IOPS and 500 MiB/s from 400 GiB, Oracle from 200 GiB,
# SQL Server never. The Price List carries only the rate above the baseline, so it lives here.
_RDS_GP3_SMALL_BASELINE = (3000, 125)
_RDS_GP3_LARGE_BASELINE = (12000, 500)


class UnknownPrice(LookupError):
    """The catalog has no price for this item in this region; the message says which and why."""


class InvalidCatalog(ValueError):
    """A catalog document is malformed; the message names the file and the field."""


# --- the JSON document (written by ``pricing.build``, read here) ----------------------------------


class IopsTierDoc(TypedDict):
    up_to: int | None  # provisioned IOPS up to and including this many; None: no upper bound
    usd: str  # per IOPS-month


class VolumePriceDoc(TypedDict):
    gb_month: str
    iops_tiers: NotRequired[list[IopsTierDoc]]
    free_iops: NotRequired[int]
    throughput_mibps_month: NotRequired[str]
    free_throughput_mibps: NotRequired[int]


class SourceDoc(TypedDict):
    title: str  # what it is: "AmazonEC2 ap-northeast-1 Price List, as quoted in ..."
    where: str  # URL, or repository and path, where it can be read
    date: str  # publication (or capture) date, YYYY-MM-DD


class RegionDoc(TypedDict):
    location: str
    # How the figures without a more specific basis were obtained: "published ..." or
    # "estimated: ..." (a refreshed catalog: "published", every figure from the Price List).
    basis: str
    notes: NotRequired[str]
    # Figure path ("ebs_volumes/gp3/gb_month") -> the id of the source it was read from.
    figure_sources: NotRequired[dict[str, str]]
    # Figure path or path prefix ("rds_instances") -> how the figures under it were estimated.
    estimates: NotRequired[dict[str, str]]
    ebs_volumes: dict[str, VolumePriceDoc]  # volume type (gp3, io2, ...) -> prices
    ebs_snapshots: dict[str, str]  # tier (standard, archive) -> per GB-month
    public_ipv4_hourly: NotRequired[str]
    load_balancers_hourly: dict[str, str]  # application, network, gateway, classic
    # Capacity units per hour: LCU (application), NLCU (network), GLCU (gateway).
    load_balancer_capacity_units_hourly: NotRequired[dict[str, str]]
    rds_instances: dict[str, dict[str, dict[str, str]]]  # engine -> class -> deployment -> hourly
    rds_storage: dict[str, dict[str, VolumePriceDoc]]  # storage type -> deployment -> prices
    rds_snapshot_gb_month: NotRequired[str]  # DB snapshot (backup) storage beyond the free amount
    # EC2 on-demand, Linux, shared tenancy: instance type -> hourly.
    ec2_instances_hourly: NotRequired[dict[str, str]]
    nat_gateway: NotRequired[NatGatewayDoc]
    cloudwatch_logs_gb_month: NotRequired[str]  # stored (archived) log data
    s3_standard_gb_month: NotRequired[str]  # S3 Standard, first 50 TB tier


class NatGatewayDoc(TypedDict):
    hourly: str
    gb_processed: str


class CatalogDoc(TypedDict):
    schema_version: int
    version: str
    source: str
    currency: str
    hours_per_month: str
    sources: NotRequired[dict[str, SourceDoc]]  # id -> a dated public source of prices
    regions: dict[str, RegionDoc]


# --- the parsed model -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IopsTier:
    up_to: int | None
    usd: Decimal


@dataclass(frozen=True, slots=True)
class VolumePrice:
    """Monthly rates of a block-storage type: per GB, per provisioned IOPS and MiB/s above free."""

    gb_month: Decimal
    iops_tiers: tuple[IopsTier, ...] = ()
    free_iops: int = 0
    throughput_mibps_month: Decimal | None = None
    free_throughput_mibps: int = 0

    def monthly(
        self,
        size_gib: int | Decimal,
        iops: int | None,
        throughput_mibps: int | None,
        *,
        free_iops: int | None = None,
        free_throughput_mibps: int | None = None,
    ) -> Decimal:
        total = self.gb_month * Decimal(size_gib)
        if self.iops_tiers:
            free = self.free_iops if free_iops is None else free_iops
            total += _tiered(self.iops_tiers, max(0, (iops or 0) - free))
        if self.throughput_mibps_month is not None:
            free = (
                self.free_throughput_mibps
                if free_throughput_mibps is None
                else free_throughput_mibps
            )
            total += self.throughput_mibps_month * max(0, (throughput_mibps or 0) - free)
        return total


def _tiered(tiers: tuple[IopsTier, ...], quantity: int) -> Decimal:
    """Charge ``quantity`` across marginal tiers (io2: first 32,000 at one rate, next 32,000...)."""
    total = Decimal(0)
    floor = 0
    for tier in tiers:
        ceiling = quantity if tier.up_to is None else min(quantity, tier.up_to)
        if ceiling > floor:
            total += tier.usd * (ceiling - floor)
        if tier.up_to is None or quantity <= tier.up_to:
            break
        floor = tier.up_to
    return total


@dataclass(frozen=True, slots=True)
class Source:
    """A dated public source of prices (a Price List excerpt, a bill, a pricing page)."""

    id: str
    title: str
    where: str
    date: str


PUBLISHED = "published"
ESTIMATED = "estimated"


@dataclass(frozen=True, slots=True)
class FigureBasis:
    """How one figure was obtained: ``published`` from ``source``, or ``estimated`` (``how``)."""

    kind: str  # PUBLISHED or ESTIMATED
    how: str
    source: Source | None = None

    def __str__(self) -> str:
        if self.source is not None:
            return f"published: {self.source.title} ({self.source.date})"
        return self.how if self.how.startswith(self.kind) else f"{self.kind}: {self.how}"


@dataclass(frozen=True, slots=True)
class Figure:
    """One price of a region: its path in the catalog document, value, unit and basis."""

    path: str
    usd: Decimal
    unit: str
    basis: FigureBasis


@dataclass(frozen=True, slots=True)
class RegionPrices:
    code: str
    location: str
    basis: str
    ebs_volumes: Mapping[str, VolumePrice]
    ebs_snapshots: Mapping[str, Decimal]
    public_ipv4_hourly: Decimal | None
    load_balancers_hourly: Mapping[str, Decimal]
    rds_instances: Mapping[str, Mapping[str, Mapping[str, Decimal]]]
    rds_storage: Mapping[str, Mapping[str, VolumePrice]]
    rds_snapshot_gb_month: Decimal | None = None
    ec2_instances_hourly: Mapping[str, Decimal] = field(default_factory=dict)
    nat_gateway_hourly: Decimal | None = None
    nat_gateway_gb_processed: Decimal | None = None
    cloudwatch_logs_gb_month: Decimal | None = None
    s3_standard_gb_month: Decimal | None = None
    load_balancer_capacity_units_hourly: Mapping[str, Decimal] = field(default_factory=dict)
    notes: str = ""
    figure_sources: Mapping[str, str] = field(default_factory=dict)
    estimates: Mapping[str, str] = field(default_factory=dict)

    def values(self) -> Iterator[tuple[str, Decimal, str]]:
        """Every figure of the region as (path, USD, unit), in document order."""
        for name, volume in self.ebs_volumes.items():
            yield from _volume_values(f"ebs_volumes/{name}", volume)
        for tier, usd in self.ebs_snapshots.items():
            yield f"ebs_snapshots/{tier}", usd, "GB-month"
        if self.public_ipv4_hourly is not None:
            yield "public_ipv4_hourly", self.public_ipv4_hourly, "hour"
        for lb, usd in self.load_balancers_hourly.items():
            yield f"load_balancers_hourly/{lb}", usd, "hour"
        for lb, usd in self.load_balancer_capacity_units_hourly.items():
            yield f"load_balancer_capacity_units_hourly/{lb}", usd, "capacity-unit-hour"
        for engine, classes in self.rds_instances.items():
            for cls, deployments in classes.items():
                for deployment, usd in deployments.items():
                    yield f"rds_instances/{engine}/{cls}/{deployment}", usd, "hour"
        for storage, by_deployment in self.rds_storage.items():
            for deployment, rates in by_deployment.items():
                yield from _volume_values(f"rds_storage/{storage}/{deployment}", rates)
        if self.rds_snapshot_gb_month is not None:
            yield "rds_snapshot_gb_month", self.rds_snapshot_gb_month, "GB-month"
        for kind, usd in self.ec2_instances_hourly.items():
            yield f"ec2_instances_hourly/{kind}", usd, "hour"
        if self.nat_gateway_hourly is not None:
            yield "nat_gateway/hourly", self.nat_gateway_hourly, "hour"
        if self.nat_gateway_gb_processed is not None:
            yield "nat_gateway/gb_processed", self.nat_gateway_gb_processed, "GB"
        if self.cloudwatch_logs_gb_month is not None:
            yield "cloudwatch_logs_gb_month", self.cloudwatch_logs_gb_month, "GB-month"
        if self.s3_standard_gb_month is not None:
            yield "s3_standard_gb_month", self.s3_standard_gb_month, "GB-month"


def _volume_values(prefix: str, volume: VolumePrice) -> Iterator[tuple[str, Decimal, str]]:
    yield f"{prefix}/gb_month", volume.gb_month, "GB-month"
    for i, tier in enumerate(volume.iops_tiers):
        yield f"{prefix}/iops_tiers/{i}", tier.usd, "IOPS-month"
    if volume.throughput_mibps_month is not None:
        yield f"{prefix}/throughput_mibps_month", volume.throughput_mibps_month, "MiBps-month"


def _longest_prefix(path: str, table: Mapping[str, str]) -> str | None:
    """The entry of ``table`` for ``path`` or its nearest ``/``-separated ancestor."""
    parts = path.split("/")
    for end in range(len(parts), 0, -1):
        entry = table.get("/".join(parts[:end]))
        if entry is not None:
            return entry
    return None


@dataclass(frozen=True, slots=True, eq=False)
class PriceCatalog:
    """On-demand USD prices by region; every method returns an unrounded monthly ``Decimal``."""

    version: str
    source: str
    currency: str
    schema_version: int
    by_region: Mapping[str, RegionPrices] = field(repr=False)
    sources: Mapping[str, Source] = field(default_factory=dict, repr=False)
    regions: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", frozenset(self.by_region))

    # --- helpers ---------------------------------------------------------------------------------

    def _unknown(self, item: str, region: str, why: str = "") -> UnknownPrice:
        reason = f" ({why})" if why else ""
        return UnknownPrice(
            f"no price for {item} in {region} in catalog {self.version}{reason}; "
            "run `cloudsweep pricing refresh`"
        )

    def region(self, region: str) -> RegionPrices:
        """The prices of one region, or ``UnknownPrice`` naming the region."""
        try:
            return self.by_region[region]
        except KeyError:
            raise self._unknown(
                "anything",
                region,
                f"the catalog covers {len(self.by_region)} regions, not this one",
            ) from None

    def basis(self, region: str) -> str:
        """How the region's figures were obtained, in one line (each figure's: ``figures``)."""
        return self.region(region).basis

    def figure_basis(self, region: str, path: str) -> FigureBasis:
        """How one figure (``ebs_volumes/gp3/gb_month``) was obtained: its source, or how."""
        prices = self.region(region)
        source_id = prices.figure_sources.get(path)
        if source_id is not None:
            source = self.sources[source_id]
            return FigureBasis(PUBLISHED, source.title, source)
        how = _longest_prefix(path, prices.estimates)
        if how is not None:
            return FigureBasis(ESTIMATED, how)
        kind = PUBLISHED if prices.basis.startswith(PUBLISHED) else ESTIMATED
        return FigureBasis(kind, prices.basis)

    def figures(self, region: str) -> list[Figure]:
        """Every figure of a region with its unit and basis (``cloudsweep pricing show``)."""
        return [
            Figure(path, usd, unit, self.figure_basis(region, path))
            for path, usd, unit in self.region(region).values()
        ]

    # --- lookups ---------------------------------------------------------------------------------

    def ebs_volume_monthly(
        self,
        region: str,
        volume_type: str,
        size_gib: int,
        iops: int | None = None,
        throughput_mibps: int | None = None,
    ) -> Decimal:
        """Monthly price of an EBS volume of ``size_gib`` GiB.

        gp3: 3,000 IOPS and 125 MiB/s are included; only ``iops`` and ``throughput_mibps`` above
        them are billed (None means the included baseline). io1/io2: every provisioned IOPS is
        billed, io2 in marginal tiers (up to 32,000; 32,001-64,000; above), so without ``iops``
        they raise ``UnknownPrice``. gp2, st1, sc1 and standard (magnetic): per GB only; ``iops`` and throughput are
        ignored (gp2 reports IOPS it does not bill). Magnetic volumes' I/O requests are excluded.
        """
        _non_negative(size_gib=size_gib, iops=iops, throughput_mibps=throughput_mibps)
        volumes = self.region(region).ebs_volumes
        price = volumes.get(volume_type)
        if price is None:
            raise self._unknown(
                f"EBS {volume_type} volumes", region, f"known types: {', '.join(sorted(volumes))}"
            )
        if price.iops_tiers and price.free_iops == 0 and iops is None:
            # A LookupError, not a ValueError: a volume whose Iops the API left out is unpriced,
            # and callers treat it like any other gap instead of failing the whole scan.
            raise self._unknown(
                f"EBS {volume_type} volumes without their provisioned IOPS",
                region,
                "they are billed per provisioned IOPS; pass iops=",
            )
        return price.monthly(size_gib, iops, throughput_mibps)

    def ebs_snapshot_monthly(
        self, region: str, size_gib: int | Decimal, tier: str = "standard"
    ) -> Decimal:
        """Monthly price of ``size_gib`` GiB of snapshot data in the ``standard`` or ``archive`` tier.

        Snapshots are incremental: pass the data the snapshot holds (for a lone snapshot at most
        its volume size, which over-estimates). Archive retrieval fees are excluded.
        """
        _non_negative(size_gib=size_gib)
        snapshots = self.region(region).ebs_snapshots
        price = snapshots.get(tier)
        if price is None:
            raise self._unknown(
                f"EBS snapshots in the {tier!r} tier",
                region,
                f"tiers: {', '.join(SNAPSHOT_TIERS)}",
            )
        return price * Decimal(size_gib)

    def public_ipv4_monthly(self, region: str) -> Decimal:
        """Monthly price of one public IPv4 address (in use or idle, Elastic or not)."""
        hourly = self.region(region).public_ipv4_hourly
        if hourly is None:
            raise self._unknown("public IPv4 addresses", region)
        return hourly * HOURS_PER_MONTH

    def load_balancer_monthly(self, region: str, lb_type: str) -> Decimal:
        """Monthly base price of a load balancer: its hourly charge x 730.

        ``lb_type`` is ``application``, ``network``, ``gateway`` (ELBv2 ``Type``) or ``classic``.
        Capacity units (LCU, NLCU, GLCU) and Classic's per-GB data charge are excluded: an idle
        load balancer uses next to none, so the base charge is what removing it saves.
        """
        hourly = self.region(region).load_balancers_hourly.get(lb_type)
        if hourly is None:
            why = (
                "" if lb_type in LOAD_BALANCER_TYPES else f"types: {', '.join(LOAD_BALANCER_TYPES)}"
            )
            raise self._unknown(f"{lb_type} load balancers", region, why)
        return hourly * HOURS_PER_MONTH

    def rds_instance_monthly(
        self, region: str, instance_class: str, engine: str, multi_az: bool
    ) -> Decimal:
        """Monthly on-demand compute price of an RDS DB instance (storage is priced separately).

        ``engine`` is the RDS API name (``postgres``, ``mysql``, ``mariadb``, ``aurora-mysql``,
        ``aurora-postgresql``). Multi-AZ (one standby) bills the standby too, twice the price.
        Aurora instances are each billed on their own, so ``multi_az`` does not change theirs.
        Oracle, SQL Server and Db2 (edition- and license-dependent) raise ``UnknownPrice``.
        """
        item = f"RDS {instance_class} ({engine}{', Multi-AZ' if multi_az else ''})"
        price_engine = RDS_ENGINES.get(engine)
        if price_engine is None:
            if engine.startswith(_LICENSED_ENGINE_PREFIXES):
                why = "prices of licensed engines depend on edition and license model"
            else:
                why = f"known engines: {', '.join(sorted(RDS_ENGINES))}"
            raise self._unknown(item, region, why)
        deployments = self.region(region).rds_instances.get(price_engine, {}).get(instance_class)
        if deployments is None:
            raise self._unknown(item, region)
        wanted = MULTI_AZ if multi_az else SINGLE_AZ
        hourly = deployments.get(wanted)
        if hourly is None and price_engine in _PER_INSTANCE_ENGINES:
            hourly = deployments.get(SINGLE_AZ)
        if hourly is None:
            raise self._unknown(item, region)
        return hourly * HOURS_PER_MONTH

    def rds_storage_monthly(
        self,
        region: str,
        storage_type: str,
        size_gib: int,
        iops: int | None = None,
        throughput_mibps: int | None = None,
        multi_az: bool = False,
        engine: str | None = None,
    ) -> Decimal:
        """Monthly price of an RDS instance's allocated storage (not Aurora cluster storage).

        ``storage_type`` is the RDS ``StorageType``: gp2, gp3, io1, io2 or standard (magnetic,
        whose I/O requests are excluded). gp3 includes 3,000 IOPS and 125 MiB/s, or 12,000 IOPS
        and 500 MiB/s from 400 GiB (from 200 GiB for Oracle, never for SQL Server: pass
        ``engine`` for those); only provisioned values above are billed. io1/io2 bill every
        provisioned IOPS. Multi-AZ stores everything twice and bills it so.
        """
        _non_negative(size_gib=size_gib, iops=iops, throughput_mibps=throughput_mibps)
        deployment = MULTI_AZ if multi_az else SINGLE_AZ
        item = f"RDS {storage_type} storage{' (Multi-AZ)' if multi_az else ''}"
        by_deployment = self.region(region).rds_storage.get(storage_type)
        if by_deployment is None:
            why = (
                ""
                if storage_type in RDS_STORAGE_TYPES
                else f"types: {', '.join(RDS_STORAGE_TYPES)}"
            )
            raise self._unknown(item, region, why)
        price = by_deployment.get(deployment)
        if price is None:
            raise self._unknown(item, region)
        if storage_type in ("io1", "io2") and iops is None:
            raise self._unknown(
                f"{item} without its provisioned IOPS",
                region,
                "it is billed per provisioned IOPS; pass iops=",
            )
        if storage_type == "gp3":
            free_iops, free_throughput = _rds_gp3_baseline(size_gib, engine)
            return price.monthly(
                size_gib,
                iops,
                throughput_mibps,
                free_iops=free_iops,
                free_throughput_mibps=free_throughput,
            )
        return price.monthly(size_gib, iops, throughput_mibps)

    def rds_snapshot_monthly(self, region: str, size_gib: int | Decimal) -> Decimal:
        """Monthly price of ``size_gib`` GiB of RDS DB snapshot (backup) storage, not Aurora's.

        RDS bills the snapshots and automated backups of a region beyond a free amount equal to
        the storage provisioned there; a snapshot kept after its instance is deleted is no longer
        covered by that instance's share. A snapshot holds the data written, so pricing the
        allocated storage over-estimates it. Multi-AZ does not store snapshots twice.
        """
        _non_negative(size_gib=size_gib)
        price = self.region(region).rds_snapshot_gb_month
        if price is None:
            raise self._unknown("RDS snapshot storage", region)
        return price * Decimal(size_gib)

    def ec2_instance_monthly(self, region: str, instance_type: str) -> Decimal:
        """Monthly on-demand price of a running EC2 instance: Linux, shared tenancy, x 730 hours.

        Its EBS volumes, public IPv4 addresses and data transfer are priced separately. Other
        operating systems (Windows, RHEL, SUSE) carry license charges the lookup is not given.
        """
        hourly = self.region(region).ec2_instances_hourly.get(instance_type)
        if hourly is None:
            raise self._unknown(f"EC2 {instance_type} instances (Linux, on-demand)", region)
        return hourly * HOURS_PER_MONTH

    def nat_gateway_monthly(
        self, region: str, gb_processed_per_month: int | Decimal = 0
    ) -> Decimal:
        """Monthly price of one NAT gateway: its hourly charge x 730 plus the data it processes."""
        _non_negative(gb_processed_per_month=gb_processed_per_month)
        prices = self.region(region)
        if prices.nat_gateway_hourly is None or prices.nat_gateway_gb_processed is None:
            raise self._unknown("NAT gateways", region)
        return (
            prices.nat_gateway_hourly * HOURS_PER_MONTH
            + prices.nat_gateway_gb_processed * Decimal(gb_processed_per_month)
        )

    def cloudwatch_logs_storage_monthly(self, region: str, stored_bytes: int) -> Decimal:
        """Monthly price of CloudWatch Logs data at rest (``storedBytes`` of a log group)."""
        _non_negative(stored_bytes=stored_bytes)
        price = self.region(region).cloudwatch_logs_gb_month
        if price is None:
            raise self._unknown("CloudWatch Logs storage", region)
        return price * Decimal(stored_bytes) / BYTES_PER_GB

    def s3_standard_storage_monthly(self, region: str, stored_bytes: int) -> Decimal:
        """Monthly price of ``stored_bytes`` in S3 Standard at the first (50 TB) tier's rate."""
        _non_negative(stored_bytes=stored_bytes)
        price = self.region(region).s3_standard_gb_month
        if price is None:
            raise self._unknown("S3 Standard storage", region)
        return price * Decimal(stored_bytes) / BYTES_PER_GB


def _rds_gp3_baseline(size_gib: int, engine: str | None) -> tuple[int, int]:
    engine = engine or ""
    if engine.startswith("sqlserver"):
        return _RDS_GP3_SMALL_BASELINE
    threshold = 200 if engine.startswith("oracle") else 400
    return _RDS_GP3_LARGE_BASELINE if size_gib >= threshold else _RDS_GP3_SMALL_BASELINE


def _non_negative(**values: int | Decimal | None) -> None:
    for name, value in values.items():
        if isinstance(value, float):
            raise TypeError(f"{name} must be an int or a Decimal, not a float ({value!r})")
        if value is not None and value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")


# --- loading --------------------------------------------------------------------------------------


def _money(value: object, where: str) -> Decimal:
    # JSON numbers are read as Decimal already; refusing floats and booleans keeps it that way.
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise InvalidCatalog(f'{where} must be a price string like "0.08", got {value!r}')
    try:
        result = Decimal(value)
    except ArithmeticError:
        raise InvalidCatalog(f"{where} is not a number: {value!r}") from None
    if not result.is_finite() or result < 0:
        raise InvalidCatalog(f"{where} must be a finite, non-negative price, got {value!r}")
    return result


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal) or value != int(value):
        raise InvalidCatalog(f"{where} must be a whole number, got {value!r}")
    return int(value)


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidCatalog(f"{where} must be an object, got {type(value).__name__}")
    return value


def _volume(doc: object, where: str) -> VolumePrice:
    raw = _object(doc, where)
    tiers: list[IopsTier] = []
    for i, tier in enumerate(raw.get("iops_tiers", [])):
        tier_doc = _object(tier, f"{where}.iops_tiers[{i}]")
        up_to = tier_doc.get("up_to")
        tiers.append(
            IopsTier(
                up_to=None if up_to is None else _int(up_to, f"{where}.iops_tiers[{i}].up_to"),
                usd=_money(tier_doc.get("usd"), f"{where}.iops_tiers[{i}].usd"),
            )
        )
    floor = 0
    for i, tier in enumerate(tiers):
        open_before_last = tier.up_to is None and i != len(tiers) - 1
        if open_before_last or (tier.up_to is not None and tier.up_to <= floor):
            raise InvalidCatalog(f"{where}.iops_tiers must ascend and only the last may be open")
        floor = tier.up_to or floor
    throughput = raw.get("throughput_mibps_month")
    return VolumePrice(
        gb_month=_money(raw.get("gb_month"), f"{where}.gb_month"),
        iops_tiers=tuple(tiers),
        free_iops=_int(raw.get("free_iops", 0), f"{where}.free_iops"),
        throughput_mibps_month=None
        if throughput is None
        else _money(throughput, f"{where}.throughput_mibps_month"),
        free_throughput_mibps=_int(
            raw.get("free_throughput_mibps", 0), f"{where}.free_throughput_mibps"
        ),
    )


def _region(code: str, doc: object, where: str) -> RegionPrices:
    raw = _object(doc, where)
    basis = raw.get("basis")
    if not isinstance(basis, str) or not basis:
        raise InvalidCatalog(f"{where}.basis must say how the figures were obtained")
    ipv4 = raw.get("public_ipv4_hourly")
    rds_snapshot = raw.get("rds_snapshot_gb_month")
    nat = _object(raw.get("nat_gateway", {}), f"{where}.nat_gateway")
    logs = raw.get("cloudwatch_logs_gb_month")
    s3 = raw.get("s3_standard_gb_month")
    return RegionPrices(
        code=code,
        location=str(raw.get("location", code)),
        basis=basis,
        notes=str(raw.get("notes", "")),
        figure_sources=_strings(raw.get("figure_sources", {}), f"{where}.figure_sources"),
        estimates=_strings(raw.get("estimates", {}), f"{where}.estimates"),
        load_balancer_capacity_units_hourly={
            lb: _money(v, f"{where}.load_balancer_capacity_units_hourly.{lb}")
            for lb, v in _object(
                raw.get("load_balancer_capacity_units_hourly", {}),
                f"{where}.load_balancer_capacity_units_hourly",
            ).items()
        },
        ebs_volumes={
            name: _volume(v, f"{where}.ebs_volumes.{name}")
            for name, v in _object(raw.get("ebs_volumes", {}), f"{where}.ebs_volumes").items()
        },
        ebs_snapshots={
            tier: _money(v, f"{where}.ebs_snapshots.{tier}")
            for tier, v in _object(raw.get("ebs_snapshots", {}), f"{where}.ebs_snapshots").items()
        },
        public_ipv4_hourly=None if ipv4 is None else _money(ipv4, f"{where}.public_ipv4_hourly"),
        load_balancers_hourly={
            lb: _money(v, f"{where}.load_balancers_hourly.{lb}")
            for lb, v in _object(
                raw.get("load_balancers_hourly", {}), f"{where}.load_balancers_hourly"
            ).items()
        },
        rds_instances={
            engine: {
                cls: {
                    dep: _money(price, f"{where}.rds_instances.{engine}.{cls}.{dep}")
                    for dep, price in _object(deps, f"{where}.rds_instances.{engine}.{cls}").items()
                }
                for cls, deps in _object(classes, f"{where}.rds_instances.{engine}").items()
            }
            for engine, classes in _object(
                raw.get("rds_instances", {}), f"{where}.rds_instances"
            ).items()
        },
        rds_storage={
            storage: {
                dep: _volume(v, f"{where}.rds_storage.{storage}.{dep}")
                for dep, v in _object(deps, f"{where}.rds_storage.{storage}").items()
            }
            for storage, deps in _object(raw.get("rds_storage", {}), f"{where}.rds_storage").items()
        },
        rds_snapshot_gb_month=None
        if rds_snapshot is None
        else _money(rds_snapshot, f"{where}.rds_snapshot_gb_month"),
        ec2_instances_hourly={
            kind: _money(v, f"{where}.ec2_instances_hourly.{kind}")
            for kind, v in _object(
                raw.get("ec2_instances_hourly", {}), f"{where}.ec2_instances_hourly"
            ).items()
        },
        nat_gateway_hourly=_optional_money(nat.get("hourly"), f"{where}.nat_gateway.hourly"),
        nat_gateway_gb_processed=_optional_money(
            nat.get("gb_processed"), f"{where}.nat_gateway.gb_processed"
        ),
        cloudwatch_logs_gb_month=_optional_money(logs, f"{where}.cloudwatch_logs_gb_month"),
        s3_standard_gb_month=_optional_money(s3, f"{where}.s3_standard_gb_month"),
    )


def _optional_money(value: object, where: str) -> Decimal | None:
    return None if value is None else _money(value, where)


def _strings(value: object, where: str) -> dict[str, str]:
    table = _object(value, where)
    for key, text in table.items():
        if not isinstance(text, str) or not text:
            raise InvalidCatalog(f"{where}.{key} must be a non-empty string, got {text!r}")
    return {str(k): str(v) for k, v in table.items()}


def _sources(value: object, where: str) -> dict[str, Source]:
    sources: dict[str, Source] = {}
    for source_id, doc in _object(value, where).items():
        raw = _object(doc, f"{where}.{source_id}")
        fields = {}
        for key in ("title", "where", "date"):
            text = raw.get(key)
            if not isinstance(text, str) or not text:
                raise InvalidCatalog(f"{where}.{source_id}.{key} must be a non-empty string")
            fields[key] = text
        sources[str(source_id)] = Source(str(source_id), **fields)
    return sources


def _check_bases(region: RegionPrices, sources: Mapping[str, Source], where: str) -> None:
    """Every per-figure basis names a figure the region has, and a source the catalog has."""
    paths = [path for path, _, _ in region.values()]
    known = set(paths)
    for path, source_id in region.figure_sources.items():
        if path not in known:
            raise InvalidCatalog(f"{where}.figure_sources names no figure: {path!r}")
        if source_id not in sources:
            raise InvalidCatalog(f"{where}.figure_sources.{path} names no source: {source_id!r}")
    for prefix in region.estimates:
        if not any(p == prefix or p.startswith(prefix + "/") for p in paths):
            raise InvalidCatalog(f"{where}.estimates names no figure: {prefix!r}")


def catalog_from_document(doc: Mapping[str, Any], *, origin: str = "catalog") -> PriceCatalog:
    """Build a ``PriceCatalog`` from a parsed catalog document, refusing malformed ones."""
    schema = doc.get("schema_version")
    if schema != SCHEMA_VERSION:
        raise InvalidCatalog(
            f"{origin}: schema_version {schema!r} is not {SCHEMA_VERSION}; rebuild it with "
            "`cloudsweep pricing refresh`"
        )
    if doc.get("currency") != "USD":
        raise InvalidCatalog(f"{origin}: currency must be USD, got {doc.get('currency')!r}")
    hours = doc.get("hours_per_month", str(HOURS_PER_MONTH))
    if _money(hours, f"{origin}: hours_per_month") != HOURS_PER_MONTH:
        raise InvalidCatalog(f"{origin}: hours_per_month must be {HOURS_PER_MONTH}, got {hours!r}")
    for key in ("version", "source"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise InvalidCatalog(f"{origin}: {key!r} must be a non-empty string")
    regions = _object(doc.get("regions"), f"{origin}: regions")
    if not regions:
        raise InvalidCatalog(f"{origin}: has no regions")
    sources = _sources(doc.get("sources", {}), f"{origin}: sources")
    by_region = {
        code: _region(code, region, f"{origin}: regions.{code}") for code, region in regions.items()
    }
    for code, prices in by_region.items():
        _check_bases(prices, sources, f"{origin}: regions.{code}")
    return PriceCatalog(
        version=doc["version"],
        source=doc["source"],
        currency="USD",
        schema_version=SCHEMA_VERSION,
        by_region=by_region,
        sources=sources,
    )


def bundled_catalog_path() -> Path:
    """Where the catalog shipped with the package is (package data, read-only when installed)."""
    return Path(str(importlib.resources.files("cloudsweep.pricing") / "data" / "catalog.json"))


@functools.lru_cache(maxsize=8)
def load_catalog(path: str | Path | None = None) -> PriceCatalog:
    """Load and validate a catalog: the bundled one by default. Parsed once per path (cached)."""
    source = Path(path) if path is not None else bundled_catalog_path()
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidCatalog(f"cannot read price catalog {source}: {exc.strerror}") from exc
    try:
        doc = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise InvalidCatalog(f"price catalog {source} is not valid JSON: {exc}") from exc
    return catalog_from_document(_object(doc, str(source)), origin=str(source))
