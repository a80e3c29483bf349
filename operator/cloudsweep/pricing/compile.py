"""Compile the bundled catalog from dated public prices, estimating only what was not found.

Called by maintainers (``python -m cloudsweep.pricing.compile``) after adding prices to
``pricing/data/sourced_prices.json``, and by the test that keeps the bundled catalog in step with
it. Every region gets the figures us-east-1 has. For each figure:

1. a price read from a dated public source (a Price List excerpt, a bill, a pricing page) is
   taken as it is, and the figure is ``published`` with that source;
2. otherwise it is us-east-1's figure times the median ratio of the region's sourced prices of
   the same kind (EBS volumes, RDS instances, NAT gateway...), since AWS prices a kind in a
   region at a near-constant premium over us-east-1;
3. otherwise, where every region in which the kind was sourced charges the us-east-1 price
   (public IPv4), that price;
4. otherwise us-east-1's figure times the region's general multiplier (the catalog's former
   estimate), said as such.

Cases 2 to 4 are ``estimated`` with how, per kind of figure, in the region's ``estimates``.
"""

from __future__ import annotations

import copy
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict

from cloudsweep.pricing import catalog
from cloudsweep.pricing.build import decimal_text, write_catalog

BASE_REGION = "us-east-1"
SOURCED_PRICES_FILE = "sourced_prices.json"
# A figure's kind is its first path segment; these kinds share one premium.
_KINDS: Mapping[str, str] = {
    "ebs_volumes": "EBS volume",
    "ebs_snapshots": "EBS snapshot",
    "public_ipv4_hourly": "public IPv4",
    "load_balancers_hourly": "load balancer",
    "load_balancer_capacity_units_hourly": "load balancer",
    "rds_instances": "RDS instance",
    "rds_storage": "RDS storage",
    "rds_snapshot_gb_month": "RDS backup storage",
    "ec2_instances_hourly": "EC2 instance",
    "nat_gateway": "NAT gateway",
    "cloudwatch_logs_gb_month": "CloudWatch Logs storage",
    "s3_standard_gb_month": "S3 Standard storage",
}
_META_KEYS = frozenset({"location", "basis", "notes", "figure_sources", "estimates"})
_RATIO_PLACES = Decimal("0.0001")
# AWS states prices to four or five significant digits; an estimate claims no more than four.
_SIGNIFICANT_DIGITS = 4
# Below this many regions, "every region charges the us-east-1 price" is not evidence enough.
_UNIFORM_MIN_REGIONS = 3


class SourcedPriceDoc(TypedDict):
    region: str
    path: str
    usd: str
    source: str


class SourcedDoc(TypedDict):
    sources: dict[str, catalog.SourceDoc]
    # The regional multipliers of the former, all-estimated catalog: the last resort.
    regional_multipliers: dict[str, str]
    # How us-east-1's own unsourced figures were obtained.
    base_estimate: str
    catalog_version: str
    catalog_source: str
    prices: list[SourcedPriceDoc]


@dataclass(frozen=True, slots=True)
class _Sourced:
    usd: Decimal
    source: str


def _flatten(region: catalog.RegionDoc) -> dict[str, Decimal]:
    prices = catalog.catalog_from_document(
        {
            "schema_version": catalog.SCHEMA_VERSION,
            "version": "compile",
            "source": "compile",
            "currency": "USD",
            "regions": {"x": {**region, "figure_sources": {}, "estimates": {}}},
        },
        origin="base region",
    )
    return {path: usd for path, usd, _ in prices.region("x").values()}


def _set(doc: dict[str, Any], path: str, usd: Decimal) -> None:
    """Set the figure at ``path`` in a region document, creating mapping levels as needed."""
    parts = path.split("/")
    node: Any = doc
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[int(part)]
        else:
            nxt = parts[i + 1]
            node = node.setdefault(part, [] if nxt.isdigit() else {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)]["usd"] = decimal_text(usd)
    else:
        node[last] = decimal_text(usd)


def significant(value: Decimal, digits: int = _SIGNIFICANT_DIGITS) -> Decimal:
    """``value`` rounded to ``digits`` significant digits (an estimate's honest precision)."""
    if not value:
        return value
    return value.quantize(Decimal(1).scaleb(value.adjusted() - digits + 1))


def kind_of(path: str) -> str:
    return _KINDS[path.split("/", 1)[0]]


def _prefixes(kind: str) -> list[str]:
    return [prefix for prefix, name in _KINDS.items() if name == kind]


def compile_catalog(
    base: Mapping[str, Any], sourced: SourcedDoc, *, version: str, source: str
) -> catalog.CatalogDoc:
    """The catalog document: ``base``'s regions and us-east-1 figures, priced as the module says."""
    by_region: dict[str, dict[str, _Sourced]] = {}
    for row in sourced["prices"]:
        if row["source"] not in sourced["sources"]:
            raise catalog.InvalidCatalog(f"sourced price {row} names an unknown source")
        by_region.setdefault(row["region"], {})[row["path"]] = _Sourced(
            Decimal(row["usd"]), row["source"]
        )
    base_regions: Mapping[str, catalog.RegionDoc] = base["regions"]
    template = _flatten(base_regions[BASE_REGION])
    for path, found in by_region.get(BASE_REGION, {}).items():
        template.setdefault(path, found.usd)
    template_base = {
        path: by_region.get(BASE_REGION, {}).get(path, _Sourced(usd, "")).usd
        for path, usd in template.items()
    }
    uniform = _uniform_kinds(by_region, template_base)

    shape = {
        key: value for key, value in base_regions[BASE_REGION].items() if key not in _META_KEYS
    }
    regions: dict[str, catalog.RegionDoc] = {}
    for code in sorted(base_regions):
        regions[code] = _region(
            code,
            base_regions[code],
            shape,
            template_base,
            by_region.get(code, {}),
            uniform,
            sourced,
        )
    return {
        "schema_version": catalog.SCHEMA_VERSION,
        "version": version,
        "source": source,
        "currency": "USD",
        "hours_per_month": decimal_text(catalog.HOURS_PER_MONTH),
        "sources": dict(sorted(sourced["sources"].items())),
        "regions": regions,
    }


def _uniform_kinds(
    by_region: Mapping[str, Mapping[str, _Sourced]], base: Mapping[str, Decimal]
) -> dict[str, list[str]]:
    """Kinds whose every sourced price, in enough regions, equals us-east-1's: kind -> regions."""
    seen: dict[str, set[str]] = {}
    broken: set[str] = set()
    for code, rows in by_region.items():
        for path, found in rows.items():
            kind = kind_of(path)
            if path not in base:
                continue
            if found.usd != base[path]:
                broken.add(kind)
            seen.setdefault(kind, set()).add(code)
    return {
        kind: sorted(codes)
        for kind, codes in seen.items()
        if kind not in broken and len(codes) >= _UNIFORM_MIN_REGIONS
    }


def _region(
    code: str,
    base_doc: catalog.RegionDoc,
    shape: Mapping[str, Any],
    template: Mapping[str, Decimal],
    found: Mapping[str, _Sourced],
    uniform: Mapping[str, Sequence[str]],
    sourced: SourcedDoc,
) -> catalog.RegionDoc:
    # us-east-1's document gives the shape (IOPS tier bounds, included baselines) of every region.
    doc: dict[str, Any] = copy.deepcopy(dict(shape))
    ratios: dict[str, list[Decimal]] = {}
    for path, row in found.items():
        base_usd = template.get(path)
        if base_usd:
            ratios.setdefault(kind_of(path), []).append(row.usd / base_usd)
    estimates: dict[str, str] = {}
    for kind in sorted(set(_KINDS.values())):
        if code == BASE_REGION:
            factor, how = Decimal(1), sourced["base_estimate"]
        elif kind in ratios:
            factor = Decimal(statistics.median(ratios[kind])).quantize(_RATIO_PLACES)
            factor = factor.normalize()
            how = (
                f"estimated: us-east-1 x {factor}, the median ratio of the "
                f"{len(ratios[kind])} {kind} price(s) sourced in this region to us-east-1's"
            )
        elif kind in uniform:
            factor = Decimal(1)
            how = (
                f"estimated: the us-east-1 price, which every region where a {kind} price was "
                f"sourced ({', '.join(uniform[kind])}) charges"
            )
        else:
            factor = Decimal(sourced["regional_multipliers"][code])
            how = (
                f"estimated: us-east-1 x {factor}, the region's general multiplier "
                f"(no {kind} price was sourced for this region)"
            )
        prefixes = [p for p in _prefixes(kind) if any(t.split("/", 1)[0] == p for t in template)]
        for prefix in prefixes:
            estimates[prefix] = how
        for path, usd in template.items():
            if kind_of(path) == kind:
                _set(doc, path, usd if factor == 1 else significant(usd * factor))
    for path, row in found.items():
        _set(doc, path, row.usd)
    _keep_multi_az_double(doc, template, found)
    figure_sources = {path: row.source for path, row in sorted(found.items())}
    total = len(template) + len(set(found) - set(template))
    region: dict[str, Any] = {
        "location": base_doc["location"],
        "basis": (
            f"mixed: {len(found)} of {total} figures published from dated sources, the rest "
            f"estimated (each figure's basis: `cloudsweep pricing show --region {code}`)"
        ),
        **doc,
        "figure_sources": figure_sources,
        "estimates": estimates,
    }
    return region  # type: ignore[return-value]


def _get(doc: Mapping[str, Any], path: str) -> Decimal:
    node: Any = doc
    for part in path.split("/"):
        node = node[int(part)]["usd"] if isinstance(node, list) else node[part]
    return Decimal(node)


def _keep_multi_az_double(
    doc: dict[str, Any], template: Mapping[str, Decimal], found: Mapping[str, _Sourced]
) -> None:
    """Multi-AZ RDS bills a standby: where us-east-1's Multi-AZ is twice Single-AZ, so is ours.

    Rounding each estimate on its own could break that by a cent's fraction; a sourced Multi-AZ
    figure is left as published.
    """
    for path, usd in template.items():
        if not path.startswith("rds_") or catalog.MULTI_AZ not in path.split("/"):
            continue
        single = path.replace(catalog.MULTI_AZ, catalog.SINGLE_AZ)
        if path in found or template.get(single, Decimal(-1)) * 2 != usd:
            continue
        _set(doc, path, _get(doc, single) * 2)


def load_sourced(path: Path) -> SourcedDoc:
    doc: SourcedDoc = json.loads(path.read_text(encoding="utf-8"))
    return doc


def main() -> None:  # pragma: no cover - a maintainer's tool, exercised by the test suite
    target = catalog.bundled_catalog_path()
    base = json.loads(target.read_text(encoding="utf-8"))
    sourced = load_sourced(target.parent / SOURCED_PRICES_FILE)
    doc = compile_catalog(
        base, sourced, version=sourced["catalog_version"], source=sourced["catalog_source"]
    )
    write_catalog(doc, target)
    print(f"wrote {target}")


if __name__ == "__main__":  # pragma: no cover
    main()
