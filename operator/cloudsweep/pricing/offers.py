"""Parse AWS Price List offers into products with on-demand USD prices.

Called by ``pricing.refresh`` (which feeds ``pricing:GetProducts`` items from ``aws.pricing_api``)
and by tests with a recorded bulk offer file. Two input shapes are accepted and give the same
result, because each GetProducts ``PriceList`` item is one product of the bulk file with its terms:

- a bulk offer file: ``{"products": {sku: product}, "terms": {"OnDemand": {sku: {code: term}}}}``
- a GetProducts item: ``{"product": product, "terms": {"OnDemand": {code: term}}}``

Only on-demand terms are read; reserved and savings-plan terms are not what a wasted resource costs.
Prices stay ``Decimal`` from the JSON text onwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypedDict


class RawPricePerUnit(TypedDict, total=False):
    USD: str


class RawPriceDimension(TypedDict, total=False):
    rateCode: str
    description: str
    beginRange: str
    endRange: str
    unit: str
    pricePerUnit: RawPricePerUnit
    appliesTo: list[str]


class RawTerm(TypedDict, total=False):
    offerTermCode: str
    sku: str
    effectiveDate: str
    priceDimensions: dict[str, RawPriceDimension]
    termAttributes: dict[str, str]


class RawProduct(TypedDict, total=False):
    sku: str
    productFamily: str
    attributes: dict[str, str]


class RawTerms(TypedDict, total=False):
    OnDemand: dict[str, Any]  # bulk file: sku -> code -> term; GetProducts item: code -> term
    Reserved: dict[str, Any]


class RawOfferFile(TypedDict, total=False):
    formatVersion: str
    offerCode: str
    version: str
    publicationDate: str
    products: dict[str, RawProduct]
    terms: RawTerms


class RawPriceListItem(TypedDict, total=False):
    product: RawProduct
    serviceCode: str
    terms: RawTerms
    version: str
    publicationDate: str


class OfferFormatError(ValueError):
    """The offer JSON does not have the Price List shape; the message names the SKU or field."""


@dataclass(frozen=True, slots=True)
class PriceDimension:
    """One on-demand rate: ``usd`` per ``unit`` for usage in ``[begin_range, end_range)``."""

    unit: str
    usd: Decimal
    begin_range: Decimal = Decimal(0)
    end_range: Decimal | None = None  # None is the price list's "Inf"
    description: str = ""


@dataclass(frozen=True, slots=True)
class OfferProduct:
    """A product of an offer with its on-demand price dimensions, lowest range first."""

    sku: str
    service_code: str
    product_family: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    on_demand: tuple[PriceDimension, ...] = ()

    def attr(self, name: str, default: str = "") -> str:
        return self.attributes.get(name, default)

    @property
    def usagetype(self) -> str:
        return self.attr("usagetype")

    @property
    def usage_kind(self) -> str:
        """The usage type without its region prefix (``USE2-EBS:VolumeUsage.gp3`` -> ``EBS:...``).

        Regions other than us-east-1 prefix an upper-case code and a dash (``EU-``, ``APN1-``);
        ``Multi-AZUsage`` or ``RDS:Multi-AZ-...`` are not such a code. us-east-1 usage types
        carry no prefix (rarely ``USE1-``), so there an upper-case head such as ``TS-`` or
        ``Outposts-`` is part of the kind, not a region, and must stay to keep those products
        apart from the region's own.
        """
        usagetype = self.usagetype
        prefix, dash, rest = usagetype.partition("-")
        if not (dash and prefix.isalnum() and prefix.isupper()):
            return usagetype
        if self.region_code == "us-east-1" and prefix != "USE1":
            return usagetype
        return rest

    def price_in(self, *units: str) -> PriceDimension | None:
        """The first (lowest range) on-demand dimension billed in one of ``units``, or None.

        Units are compared without case: the offers spell the same unit ``GiBps-mo`` and
        ``GiBps-Mo``, ``GB-Mo`` and ``GB-month`` across services and years.
        """
        wanted = {unit.lower() for unit in units}
        for dimension in self.on_demand:
            if dimension.unit.lower() in wanted:
                return dimension
        return None

    @property
    def region_code(self) -> str | None:
        """The region code, from ``regionCode`` when present, else from the ``location`` name."""
        code = self.attributes.get("regionCode")
        if code:
            return code
        return LOCATION_TO_REGION.get(self.attr("location"))

    @property
    def first_usd(self) -> Decimal | None:
        return self.on_demand[0].usd if self.on_demand else None


# Older offers lack ``regionCode``; their ``location`` is the console's display name.
LOCATION_TO_REGION: Mapping[str, str] = {
    "US East (N. Virginia)": "us-east-1",
    "US East (Ohio)": "us-east-2",
    "US West (N. California)": "us-west-1",
    "US West (Oregon)": "us-west-2",
    "Africa (Cape Town)": "af-south-1",
    "Asia Pacific (Hong Kong)": "ap-east-1",
    "Asia Pacific (Taipei)": "ap-east-2",
    "Asia Pacific (Mumbai)": "ap-south-1",
    "Asia Pacific (Hyderabad)": "ap-south-2",
    "Asia Pacific (Singapore)": "ap-southeast-1",
    "Asia Pacific (Sydney)": "ap-southeast-2",
    "Asia Pacific (Jakarta)": "ap-southeast-3",
    "Asia Pacific (Melbourne)": "ap-southeast-4",
    "Asia Pacific (Malaysia)": "ap-southeast-5",
    "Asia Pacific (New Zealand)": "ap-southeast-6",
    "Asia Pacific (Thailand)": "ap-southeast-7",
    "Asia Pacific (Tokyo)": "ap-northeast-1",
    "Asia Pacific (Seoul)": "ap-northeast-2",
    "Asia Pacific (Osaka)": "ap-northeast-3",
    "Canada (Central)": "ca-central-1",
    "Canada West (Calgary)": "ca-west-1",
    "EU (Frankfurt)": "eu-central-1",
    "EU (Zurich)": "eu-central-2",
    "EU (Ireland)": "eu-west-1",
    "EU (London)": "eu-west-2",
    "EU (Paris)": "eu-west-3",
    "EU (Milan)": "eu-south-1",
    "EU (Spain)": "eu-south-2",
    "EU (Stockholm)": "eu-north-1",
    "Israel (Tel Aviv)": "il-central-1",
    "Middle East (Bahrain)": "me-south-1",
    "Middle East (UAE)": "me-central-1",
    "Mexico (Central)": "mx-central-1",
    "South America (Sao Paulo)": "sa-east-1",
}


def loads(text: str | bytes) -> Any:
    """Parse JSON with every number as ``Decimal``, so no price ever passes through a float."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def _decimal(value: object, what: str) -> Decimal:
    if isinstance(value, float):
        raise OfferFormatError(f"{what} is a float ({value!r}); prices must be exact")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise OfferFormatError(f"{what} is not a number: {value!r}") from None


# Term attributes that only a commitment (reserved instance, savings plan) carries: a term with
# them, even filed under ``OnDemand``, is no on-demand price.
_COMMITMENT_TERM_ATTRIBUTES = frozenset({"LeaseContractLength", "PurchaseOption", "OfferingClass"})
# A one-off charge (a reserved instance's "Upfront Fee") is billed per ``Quantity``, never per
# hour or month: it is not a rate that anything idle accrues.
_ONE_OFF_UNITS = frozenset({"quantity"})


def _dimensions(sku: str, terms: Mapping[str, Any]) -> tuple[PriceDimension, ...]:
    """The USD price dimensions of one SKU's on-demand terms (``offerTermCode -> term``).

    Terms that carry commitment attributes and one-off (``Quantity``) dimensions are dropped,
    so a reserved term or upfront fee misfiled under ``OnDemand`` is not taken for a rate.
    """
    dimensions: list[PriceDimension] = []
    for code, term in terms.items():
        if not isinstance(term, Mapping):
            raise OfferFormatError(f"on-demand term {code} of SKU {sku} is not an object")
        attributes = term.get("termAttributes") or {}
        if isinstance(attributes, Mapping) and _COMMITMENT_TERM_ATTRIBUTES & set(attributes):
            continue
        for rate_code, dim in term.get("priceDimensions", {}).items():
            usd = dim.get("pricePerUnit", {}).get("USD")
            if usd is None:
                continue  # a CNY-only dimension (China offers) is no USD price
            if str(dim.get("unit", "")).lower() in _ONE_OFF_UNITS:
                continue
            end = dim.get("endRange", "Inf")
            dimensions.append(
                PriceDimension(
                    unit=str(dim.get("unit", "")),
                    usd=_decimal(usd, f"price of {rate_code}"),
                    begin_range=_decimal(dim.get("beginRange", "0"), f"beginRange of {rate_code}"),
                    end_range=None if end == "Inf" else _decimal(end, f"endRange of {rate_code}"),
                    description=str(dim.get("description", "")),
                )
            )
    dimensions.sort(key=lambda d: d.begin_range)
    return tuple(dimensions)


def _product(raw: Mapping[str, Any], service_code: str, terms: Mapping[str, Any]) -> OfferProduct:
    sku = raw.get("sku")
    if not isinstance(sku, str) or not sku:
        raise OfferFormatError(f"a product has no SKU: {dict(raw)!r:.200}")
    attributes = raw.get("attributes", {})
    if not isinstance(attributes, Mapping):
        raise OfferFormatError(f"attributes of SKU {sku} are not an object")
    return OfferProduct(
        sku=sku,
        service_code=service_code or str(attributes.get("servicecode", "")),
        product_family=str(raw.get("productFamily", "")),
        attributes={str(k): str(v) for k, v in attributes.items()},
        on_demand=_dimensions(sku, terms),
    )


def parse_offer_file(offer: RawOfferFile | Mapping[str, Any] | str | bytes) -> list[OfferProduct]:
    """Parse a bulk offer file (``.../offers/v1.0/aws/AmazonEC2/current/us-east-1/index.json``)."""
    doc = loads(offer) if isinstance(offer, str | bytes) else offer
    products = doc.get("products")
    if not isinstance(products, Mapping):
        raise OfferFormatError("offer file has no 'products' object; is this a Price List offer?")
    on_demand = doc.get("terms", {}).get("OnDemand", {})
    service_code = str(doc.get("offerCode", ""))
    return [
        _product(raw, service_code, on_demand.get(sku, {}))
        for sku, raw in products.items()
        if isinstance(raw, Mapping)
    ]


def parse_price_list_item(item: RawPriceListItem | Mapping[str, Any] | str) -> OfferProduct:
    """Parse one ``PriceList`` entry of a ``pricing:GetProducts`` response (a JSON string)."""
    doc = loads(item) if isinstance(item, str) else item
    raw = doc.get("product")
    if not isinstance(raw, Mapping):
        raise OfferFormatError("price list item has no 'product' object")
    on_demand = doc.get("terms", {}).get("OnDemand", {})
    return _product(raw, str(doc.get("serviceCode", "")), on_demand)


def parse_price_lists(items: Iterable[str]) -> Iterator[OfferProduct]:
    """Parse GetProducts ``PriceList`` strings lazily, as they are paged in."""
    for item in items:
        yield parse_price_list_item(item)
