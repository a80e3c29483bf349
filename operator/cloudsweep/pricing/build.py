"""Turn parsed Price List products into a catalog document, and write it.

Called by ``pricing.refresh`` (``cloudsweep pricing refresh``) and by tests that build a catalog
from the recorded offer file. The document has exactly the shape ``pricing.catalog`` loads, so a
refreshed catalog replaces the bundled one without a conversion step.

Products are recognised by their product family and attributes (``volumeApiName``,
``instanceType``, ``databaseEngine``, ``operation``...) together with the exact usage type
without the region prefix (``EBS:VolumeUsage.gp3``, ``RDS:Multi-AZ-GP3-Storage``), never by a
suffix, so ``TS-``, ``Outposts-`` or Local Zone variants of a usage type are not taken for the
region's own. Each price is read in the unit the catalog expects (``GB-Mo``, ``IOPS-Mo``,
``Hrs``, ``GiBps-mo``...): a product billed in another unit is skipped rather than misread, and
gp3 throughput published per GiBps-month is converted to the catalog's per MiB/s-month.
Anything not recognised (data transfer, reserved-only products, Outposts, Local Zones) is skipped.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from cloudsweep.pricing import catalog
from cloudsweep.pricing.offers import LOCATION_TO_REGION, OfferProduct, PriceDimension

# The Price List bills only gp3 performance above what the volume includes; the included part is
# documented on the EBS pricing page, not in the offer, so it is added here.
EBS_GP3_FREE_IOPS = 3000
EBS_GP3_FREE_THROUGHPUT_MIBPS = 125

# io2 provisioned IOPS are three usage types, one per marginal tier.
_IO2_TIERS: Mapping[str, int | None] = {
    "EBS:VolumeP-IOPS.io2": 32000,
    "EBS:VolumeP-IOPS.io2.tier2": 64000,
    "EBS:VolumeP-IOPS.io2.tier3": None,
}
_EBS_IOPS: Mapping[str, str] = {"EBS:VolumeP-IOPS.gp3": "gp3", "EBS:VolumeP-IOPS.piops": "io1"}
_VOLUME_USAGE_TYPES: Mapping[str, str] = {
    "EBS:VolumeUsage": "standard",
    "EBS:VolumeUsage.gp2": "gp2",
    "EBS:VolumeUsage.gp3": "gp3",
    "EBS:VolumeUsage.piops": "io1",
    "EBS:VolumeUsage.io2": "io2",
    "EBS:VolumeUsage.st1": "st1",
    "EBS:VolumeUsage.sc1": "sc1",
}
_EBS_THROUGHPUT: Mapping[str, str] = {"EBS:VolumeP-Throughput.gp3": "gp3"}
_SNAPSHOTS: Mapping[str, str] = {
    "EBS:SnapshotUsage": "standard",
    "EBS:SnapshotArchiveStorage": "archive",
}
# RDS snapshot (backup) storage beyond the free amount, all non-Aurora engines ("Any"); Aurora's
# is ``Aurora:BackupUsage``, another price, and not kept.
_RDS_BACKUP = "RDS:ChargedBackupUsage"
# Idle and in-use public IPv4 addresses cost the same; in-use wins if both are present.
_PUBLIC_IPV4 = ("PublicIPv4:InUseAddress", "PublicIPv4:IdleAddress")
# Product family -> (catalog type, the ``operation`` attribute of its hourly product).
_LOAD_BALANCERS: Mapping[str, tuple[str, str]] = {
    "Load Balancer-Application": ("application", "LoadBalancing:Application"),
    "Load Balancer-Network": ("network", "LoadBalancing:Network"),
    "Load Balancer-Gateway": ("gateway", "LoadBalancing:Gateway"),
    "Load Balancer": ("classic", "LoadBalancing"),
}
_LB_HOURS = "LoadBalancerUsage"
# Capacity units: LCU (application), NLCU (network), GLCU (gateway); classic has none.
_LB_CAPACITY_UNITS = "LCUUsage"
# RDS usage types abbreviate the class (``InstanceUsage:db.t3.xl``, ``Multi-AZUsage:db.r5.2xl``):
# the usage type says only which deployment; the class comes from ``instanceType``.
_RDS_INSTANCE_USAGE = re.compile(r"^(?P<usage>InstanceUsage|Multi-AZUsage):db\.[\w.]+$")
_RDS_CLASS = re.compile(r"^db\.[a-z0-9-]+\.[a-z0-9]+$")
_EC2_INSTANCE_USAGE = re.compile(r"^BoxUsage:[a-z0-9-]+\.[a-z0-9]+$")
_NAT_GATEWAY = {"NatGateway-Hours": "hourly", "NatGateway-Bytes": "gb_processed"}
# CloudWatch Logs archived storage and S3 Standard storage share this usage type.
_TIMED_STORAGE = "TimedStorage-ByteHrs"

# The units each kind of price is published in (compared without case).
_GB_MONTH = ("GB-Mo", "GB-month")
_IOPS_MONTH = ("IOPS-Mo",)
_HOURS = ("Hrs", "Hours")
_GB = ("GB",)
_LCU_HOURS = ("LCU-Hrs", "NLCU-Hrs", "GLCU-Hrs")
# gp3 throughput: EBS publishes per GiBps-month (40.96 USD in us-east-1), RDS per MiBps-month.
_THROUGHPUT = ("GiBps-mo", "MiBps-Mo")
MIB_PER_GIB = Decimal(1024)
_RDS_DEPLOYMENTS: Mapping[str, str] = {
    "Single-AZ": catalog.SINGLE_AZ,
    "Multi-AZ": catalog.MULTI_AZ,
}
_RDS_STORAGE_USAGE = re.compile(r"^RDS:(?P<multi>Multi-AZ-)?(?P<kind>[\w-]+)$")
# RDS storage usage kinds -> (StorageType, which rate).
_RDS_STORAGE_FAMILIES = frozenset(
    {"Database Storage", "Provisioned IOPS", "Provisioned Throughput"}
)
_RDS_STORAGE_KINDS: Mapping[str, tuple[str, str]] = {
    "GP2-Storage": ("gp2", "gb_month"),
    "GP3-Storage": ("gp3", "gb_month"),
    "GP3-PIOPS": ("gp3", "iops_month"),
    "GP3-Throughput": ("gp3", "throughput_mibps_month"),
    "PIOPS-Storage": ("io1", "gb_month"),
    "PIOPS": ("io1", "iops_month"),
    "PIOPS-Storage-IO2": ("io2", "gb_month"),
    "PIOPS-IO2": ("io2", "iops_month"),
    "StorageUsage": ("standard", "gb_month"),
}
# Storage types that bill every provisioned IOPS: kept only with their IOPS rate.
_IOPS_BILLED = frozenset({"io1", "io2"})
_REGION_NAMES = {code: name for name, code in LOCATION_TO_REGION.items()}

DEFAULT_SOURCE = (
    "AWS Price List API, on-demand USD list prices, built by `cloudsweep pricing refresh` "
    "(pricing.build) on {version}"
)


def decimal_text(value: Decimal) -> str:
    """A price as the catalog stores it: plain notation, no trailing zeros (``0.0800`` -> ``0.08``)."""
    return format(value.normalize(), "f")


def per_mibps_month(dimension: PriceDimension) -> Decimal:
    """A throughput rate per MiB/s-month, whether published per GiBps-month or per MiBps-month."""
    if dimension.unit.lower() == "gibps-mo":
        return dimension.usd / MIB_PER_GIB
    return dimension.usd


class _RegionAccumulator:
    """The prices seen for one region, before they are checked for completeness."""

    def __init__(self, code: str, location: str) -> None:
        self.code = code
        self.location = location
        self.volume_gb: dict[str, Decimal] = {}
        self.volume_iops: dict[str, dict[int | None, Decimal]] = {}
        self.volume_throughput: dict[str, Decimal] = {}
        self.snapshots: dict[str, Decimal] = {}
        self.public_ipv4: dict[str, Decimal] = {}
        self.load_balancers: dict[str, Decimal] = {}
        self.load_balancer_capacity_units: dict[str, Decimal] = {}
        self.rds_instances: dict[str, dict[str, dict[str, Decimal]]] = {}
        self.rds_storage: dict[str, dict[str, dict[str, Decimal]]] = {}
        self.rds_snapshot: Decimal | None = None
        self.ec2_instances: dict[str, Decimal] = {}
        self.nat_gateway: dict[str, Decimal] = {}
        self.cloudwatch_logs: Decimal | None = None
        self.s3_standard: Decimal | None = None

    def add(self, product: OfferProduct) -> bool:
        """Record the product's price if it is one the catalog keeps; say whether it was."""
        kind = product.usage_kind
        family = product.product_family
        service = product.service_code or product.attr("servicecode")
        if family == "Storage" and kind.startswith("EBS:VolumeUsage"):
            # Offers before 2020 carry no volumeApiName; their usage type names the type.
            volume_type = product.attr("volumeApiName") or _VOLUME_USAGE_TYPES.get(kind, "")
            price = product.price_in(*_GB_MONTH)
            if not volume_type or price is None:
                return False
            self.volume_gb[volume_type] = price.usd
        elif family == "System Operation" and kind in _EBS_IOPS:
            return self._put(
                product, _IOPS_MONTH, self.volume_iops.setdefault(_EBS_IOPS[kind], {}), None
            )
        elif family == "System Operation" and kind in _IO2_TIERS:
            return self._put(
                product, _IOPS_MONTH, self.volume_iops.setdefault("io2", {}), _IO2_TIERS[kind]
            )
        elif family == "Provisioned Throughput" and kind in _EBS_THROUGHPUT:
            price = product.price_in(*_THROUGHPUT)
            if price is None:
                return False
            self.volume_throughput[_EBS_THROUGHPUT[kind]] = per_mibps_month(price)
        elif family == "Storage Snapshot" and kind in _SNAPSHOTS:
            return self._put(product, _GB_MONTH, self.snapshots, _SNAPSHOTS[kind])
        elif kind == _RDS_BACKUP:
            price = product.price_in(*_GB_MONTH)
            if price is None:
                return False
            self.rds_snapshot = price.usd
        elif kind in _PUBLIC_IPV4:
            return self._put(product, _HOURS, self.public_ipv4, kind)
        elif family in _LOAD_BALANCERS:
            return self._add_load_balancer(product, kind)
        elif family == "Database Instance":
            return self._add_rds_instance(product, kind)
        elif family in _RDS_STORAGE_FAMILIES and service != "AmazonEC2":
            return self._add_rds_storage(product, kind)
        elif family == "Compute Instance" and _EC2_INSTANCE_USAGE.match(kind):
            return self._add_ec2_instance(product)
        elif family == "NAT Gateway" and kind in _NAT_GATEWAY:
            units = _HOURS if _NAT_GATEWAY[kind] == "hourly" else _GB
            return self._put(product, units, self.nat_gateway, _NAT_GATEWAY[kind])
        elif kind == _TIMED_STORAGE and service == "AmazonCloudWatch":
            price = product.price_in(*_GB_MONTH)
            if price is None:
                return False
            self.cloudwatch_logs = price.usd
        elif kind == _TIMED_STORAGE and service == "AmazonS3" and family == "Storage":
            # The first (up to 50 TB) tier of S3 Standard; other storage classes have their own
            # usage types (TimedStorage-SIA-ByteHrs...), but the volumeType says it outright.
            price = product.price_in(*_GB_MONTH)
            if product.attr("volumeType") != "Standard" or price is None:
                return False
            self.s3_standard = price.usd
        else:
            return False
        return True

    @staticmethod
    def _put(
        product: OfferProduct, units: tuple[str, ...], into: dict[Any, Decimal], key: Any
    ) -> bool:
        price = product.price_in(*units)
        if price is None:
            return False
        into[key] = price.usd
        return True

    def _add_load_balancer(self, product: OfferProduct, kind: str) -> bool:
        lb_type, operation = _LOAD_BALANCERS[product.product_family]
        if product.attr("operation", operation) != operation:
            return False
        if kind == _LB_HOURS:
            return self._put(product, _HOURS, self.load_balancers, lb_type)
        if kind == _LB_CAPACITY_UNITS:
            return self._put(product, _LCU_HOURS, self.load_balancer_capacity_units, lb_type)
        return False

    def _add_ec2_instance(self, product: OfferProduct) -> bool:
        # Linux, shared tenancy, no pre-installed software, capacity actually used (not the
        # unused part of a capacity reservation): what a running on-demand instance costs.
        wanted = {
            "operatingSystem": "Linux",
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
        }
        if any(product.attr(name, value) != value for name, value in wanted.items()):
            return False
        instance_type = product.attr("instanceType")
        if not instance_type:
            return False
        return self._put(product, _HOURS, self.ec2_instances, instance_type)

    def _add_rds_instance(self, product: OfferProduct, kind: str) -> bool:
        engine = product.attr("databaseEngine")
        deployment = _RDS_DEPLOYMENTS.get(product.attr("deploymentOption"))
        license_model = product.attr("licenseModel", "No license required")
        instance_class = product.attr("instanceType")
        price = product.price_in(*_HOURS)
        # Licensed engines are skipped: their price depends on edition and license model.
        if (
            _RDS_INSTANCE_USAGE.match(kind) is None
            or not _RDS_CLASS.match(instance_class)
            or deployment is None
            or engine not in catalog.RDS_ENGINES.values()
            or license_model != "No license required"
            or price is None
        ):
            return False
        by_class = self.rds_instances.setdefault(engine, {})
        by_class.setdefault(instance_class, {})[deployment] = price.usd
        return True

    def _add_rds_storage(self, product: OfferProduct, kind: str) -> bool:
        match = _RDS_STORAGE_USAGE.match(kind)
        if match is None or match.group("kind") not in _RDS_STORAGE_KINDS:
            return False
        storage_type, rate = _RDS_STORAGE_KINDS[match.group("kind")]
        if rate == "gb_month":
            price = product.price_in(*_GB_MONTH)
            usd = None if price is None else price.usd
        elif rate == "iops_month":
            price = product.price_in(*_IOPS_MONTH)
            usd = None if price is None else price.usd
        else:
            price = product.price_in(*_THROUGHPUT)
            usd = None if price is None else per_mibps_month(price)
        if usd is None:
            return False
        deployment = catalog.MULTI_AZ if match.group("multi") else catalog.SINGLE_AZ
        self.rds_storage.setdefault(storage_type, {}).setdefault(deployment, {})[rate] = usd
        return True

    def document(self, basis: str) -> catalog.RegionDoc:
        volumes: dict[str, catalog.VolumePriceDoc] = {}
        for volume_type, gb_month in sorted(self.volume_gb.items()):
            volume: catalog.VolumePriceDoc = {"gb_month": decimal_text(gb_month)}
            tiers = self.volume_iops.get(volume_type)
            if volume_type in _IOPS_BILLED and not tiers:
                continue  # the storage price alone would under-state it: better unknown
            if tiers:
                # Open-ended last: sorted by bound with None (no bound) at the end.
                ordered = sorted(tiers.items(), key=lambda t: (t[0] is None, t[0] or 0))
                volume["iops_tiers"] = [
                    {"up_to": up_to, "usd": decimal_text(usd)} for up_to, usd in ordered
                ]
            if volume_type == "gp3":
                volume["free_iops"] = EBS_GP3_FREE_IOPS
            if volume_type in self.volume_throughput:
                volume["throughput_mibps_month"] = decimal_text(self.volume_throughput[volume_type])
                volume["free_throughput_mibps"] = EBS_GP3_FREE_THROUGHPUT_MIBPS
            volumes[volume_type] = volume
        region: catalog.RegionDoc = {
            "location": self.location,
            "basis": basis,
            "ebs_volumes": volumes,
            "ebs_snapshots": {t: decimal_text(p) for t, p in sorted(self.snapshots.items())},
            "load_balancers_hourly": {
                lb: decimal_text(p) for lb, p in sorted(self.load_balancers.items())
            },
            "rds_instances": {
                engine: {
                    cls: {dep: decimal_text(p) for dep, p in sorted(deps.items())}
                    for cls, deps in sorted(classes.items(), key=lambda c: _class_order(c[0]))
                }
                for engine, classes in sorted(self.rds_instances.items())
            },
            "rds_storage": {
                storage: {
                    dep: _rds_volume(rates)
                    for dep, rates in sorted(deps.items())
                    if "gb_month" in rates
                    and (storage not in _IOPS_BILLED or "iops_month" in rates)
                }
                for storage, deps in sorted(self.rds_storage.items())
            },
        }
        if self.rds_snapshot is not None:
            region["rds_snapshot_gb_month"] = decimal_text(self.rds_snapshot)
        if self.load_balancer_capacity_units:
            region["load_balancer_capacity_units_hourly"] = {
                lb: decimal_text(p) for lb, p in sorted(self.load_balancer_capacity_units.items())
            }
        if self.ec2_instances:
            region["ec2_instances_hourly"] = {
                kind: decimal_text(p)
                for kind, p in sorted(self.ec2_instances.items(), key=lambda c: _class_order(c[0]))
            }
        if {"hourly", "gb_processed"} <= set(self.nat_gateway):
            region["nat_gateway"] = {
                "hourly": decimal_text(self.nat_gateway["hourly"]),
                "gb_processed": decimal_text(self.nat_gateway["gb_processed"]),
            }
        if self.cloudwatch_logs is not None:
            region["cloudwatch_logs_gb_month"] = decimal_text(self.cloudwatch_logs)
        if self.s3_standard is not None:
            region["s3_standard_gb_month"] = decimal_text(self.s3_standard)
        for usage in _PUBLIC_IPV4:
            if usage in self.public_ipv4:
                region["public_ipv4_hourly"] = decimal_text(self.public_ipv4[usage])
                break
        return region


def _rds_volume(rates: Mapping[str, Decimal]) -> catalog.VolumePriceDoc:
    volume: catalog.VolumePriceDoc = {"gb_month": decimal_text(rates["gb_month"])}
    if "iops_month" in rates:
        volume["iops_tiers"] = [{"up_to": None, "usd": decimal_text(rates["iops_month"])}]
    if "throughput_mibps_month" in rates:
        volume["throughput_mibps_month"] = decimal_text(rates["throughput_mibps_month"])
    return volume


_SIZE_ORDER = ["micro", "small", "medium", "large", "xlarge"]


def _class_order(instance_class: str) -> tuple[str, int, str]:
    """Sort ``db.m5.large`` before ``db.m5.2xlarge`` so the file reads like the pricing page."""
    family, _, size = instance_class.rpartition(".")
    if size in _SIZE_ORDER:
        return (family, _SIZE_ORDER.index(size), size)
    multiple = re.match(r"^(\d+)xlarge$", size)
    return (family, 100 + int(multiple.group(1)) if multiple else 10_000, size)


def build_catalog(
    products: Iterable[OfferProduct],
    *,
    version: str,
    source: str | None = None,
    basis: str = "published",
) -> catalog.CatalogDoc:
    """Build a catalog document from Price List products (any mix of services and regions).

    Only on-demand, per-region products with a USD price are kept. A region appears when at least
    one of its prices was recognised; lookups of what is missing raise ``UnknownPrice``.
    """
    regions: dict[str, _RegionAccumulator] = {}
    for product in products:
        code = product.region_code
        # Outposts, Local Zones and Wavelength share region codes but not region prices.
        location_type = product.attr("locationType", "AWS Region")
        if code is None or not product.on_demand or location_type != "AWS Region":
            continue
        location = product.attr("location") or _REGION_NAMES.get(code, code)
        accumulator = regions.get(code) or _RegionAccumulator(code, location)
        if accumulator.add(product):
            regions[code] = accumulator
    return {
        "schema_version": catalog.SCHEMA_VERSION,
        "version": version,
        "source": source or DEFAULT_SOURCE.format(version=version),
        "currency": "USD",
        "hours_per_month": decimal_text(catalog.HOURS_PER_MONTH),
        "regions": {
            code: document
            for code in sorted(regions)
            if _has_figures(document := regions[code].document(basis))
        },
    }


def _has_figures(region: catalog.RegionDoc) -> bool:
    """Whether a region holds a price (an IOPS rate without its storage rate gives none)."""
    skip = {"location", "basis", "notes"}
    return any(value for key, value in region.items() if key not in skip)


def dumps_catalog(doc: catalog.CatalogDoc | Mapping[str, object]) -> str:
    """Serialise a catalog document; one region per top-level block keeps diffs reviewable."""
    return json.dumps(doc, indent=1, ensure_ascii=False, default=_no_floats) + "\n"


def _no_floats(value: object) -> str:
    if isinstance(value, Decimal):
        return decimal_text(value)
    raise TypeError(f"catalog values must be strings, ints or Decimals, not {type(value).__name__}")


def write_catalog(doc: catalog.CatalogDoc | Mapping[str, object], path: str | Path) -> Path:
    """Validate ``doc`` and write it to ``path`` atomically (a reader never sees half a file)."""
    target = Path(path)
    text = dumps_catalog(doc)
    # Refuse to write what load_catalog would refuse to read.
    catalog.catalog_from_document(json.loads(text, parse_float=Decimal), origin=str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file owner-only; a catalog is package data that every user reads.
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        Path(temporary).chmod(mode)
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    catalog.load_catalog.cache_clear()
    return target
