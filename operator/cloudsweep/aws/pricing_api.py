"""Page the AWS Price List Query API (``pricing:GetProducts``).

Called by the ``cloudsweep pricing refresh`` command, which gives each yielded ``PriceList`` JSON
string to ``pricing.refresh.refresh_catalog``. The caller builds the boto3 ``pricing`` client (via
``aws.session``); the API has endpoints in only a few regions, ``us-east-1`` among them, and
answers for every region from there.

``REFRESH_QUERIES`` lists the service codes and filters that cover what the catalog holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, cast

from cloudsweep.aws import errors

if TYPE_CHECKING:
    from mypy_boto3_pricing.client import PricingClient
    from mypy_boto3_pricing.literals import FilterTypeType
    from mypy_boto3_pricing.type_defs import FilterTypeDef, GetProductsRequestTypeDef

PRICING_REGION = "us-east-1"
_MAX_RESULTS = 100  # the API's maximum page size
_FILTER_TYPES = frozenset({"TERM_MATCH", "EQUALS", "CONTAINS", "ANY_OF", "NONE_OF"})

# (service code, filters) pairs whose products are what ``pricing.build`` keeps. Filters narrow
# the download from hundreds of thousands of EC2 products (mostly instances) to a few thousand.
REFRESH_QUERIES: tuple[tuple[str, tuple[Mapping[str, str], ...]], ...] = (
    ("AmazonEC2", ({"Type": "TERM_MATCH", "Field": "productFamily", "Value": "Storage"},)),
    ("AmazonEC2", ({"Type": "TERM_MATCH", "Field": "productFamily", "Value": "Storage Snapshot"},)),
    ("AmazonEC2", ({"Type": "TERM_MATCH", "Field": "productFamily", "Value": "System Operation"},)),
    (
        "AmazonEC2",
        ({"Type": "TERM_MATCH", "Field": "productFamily", "Value": "Provisioned Throughput"},),
    ),
    # Public IPv4 addresses have been billed under Amazon VPC since February 2024; the offer is
    # small, and fetching it whole does not depend on how its product family is spelled.
    ("AmazonVPC", ()),
    ("AWSELB", ()),
    (
        "AmazonRDS",
        ({"Type": "TERM_MATCH", "Field": "productFamily", "Value": "Database Instance"},),
    ),
    ("AmazonRDS", ({"Type": "TERM_MATCH", "Field": "productFamily", "Value": "Database Storage"},)),
    ("AmazonRDS", ({"Type": "TERM_MATCH", "Field": "productFamily", "Value": "Provisioned IOPS"},)),
    (
        "AmazonRDS",
        ({"Type": "TERM_MATCH", "Field": "productFamily", "Value": "Provisioned Throughput"},),
    ),
    # DB snapshot (backup) storage: what a final snapshot kept after a cleanup costs.
    ("AmazonRDS", ({"Type": "TERM_MATCH", "Field": "productFamily", "Value": "Storage Snapshot"},)),
    # EC2 instance hours: Linux, shared tenancy, no pre-installed software, used capacity. The
    # filters keep the download to one product per instance type and region.
    (
        "AmazonEC2",
        (
            {"Type": "TERM_MATCH", "Field": "productFamily", "Value": "Compute Instance"},
            {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
            {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
            {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
            {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
        ),
    ),
    ("AmazonEC2", ({"Type": "TERM_MATCH", "Field": "productFamily", "Value": "NAT Gateway"},)),
    # CloudWatch Logs data at rest and S3 Standard storage (both TimedStorage-ByteHrs).
    # CloudWatch Logs stored data: matched on the usage type (any region prefix), not on a
    # product family, which the builder does not rely on either.
    (
        "AmazonCloudWatch",
        ({"Type": "CONTAINS", "Field": "usagetype", "Value": "TimedStorage-ByteHrs"},),
    ),
    (
        "AmazonS3",
        (
            {"Type": "TERM_MATCH", "Field": "productFamily", "Value": "Storage"},
            {"Type": "TERM_MATCH", "Field": "volumeType", "Value": "Standard"},
        ),
    ),
)

Page = tuple[Sequence[str], str | None]


def iter_pages(get_page: Callable[[str | None], Page]) -> Iterator[str]:
    """Yield every item of a token-paged API; ``get_page(token)`` returns (items, next token).

    Stops when a page has no next token. A token seen twice means the service is looping, which
    would otherwise page forever, so it raises instead.
    """
    seen: set[str] = set()
    token: str | None = None
    while True:
        items, token = get_page(token)
        yield from items
        if not token:
            return
        if token in seen:
            raise RuntimeError(f"the Price List API returned next token {token!r} twice")
        seen.add(token)


def _filters(filters: Sequence[Mapping[str, str]]) -> list[FilterTypeDef]:
    result: list[FilterTypeDef] = []
    for f in filters:
        kind = f.get("Type", "TERM_MATCH")
        if kind not in _FILTER_TYPES or "Field" not in f or "Value" not in f:
            raise ValueError(
                f"price list filter {dict(f)!r} needs Field, Value and a Type among "
                f"{', '.join(sorted(_FILTER_TYPES))}"
            )
        result.append(
            {"Type": cast("FilterTypeType", kind), "Field": f["Field"], "Value": f["Value"]}
        )
    return result


def iter_price_lists(
    client: PricingClient, service_code: str, filters: Sequence[Mapping[str, str]]
) -> Iterator[str]:
    """Yield the ``PriceList`` JSON strings of every product of ``service_code`` that matches.

    ``filters`` are GetProducts filters, e.g. ``{"Type": "TERM_MATCH", "Field": "regionCode",
    "Value": "eu-west-1"}`` (``Type`` defaults to ``TERM_MATCH``). Failures raise
    ``aws.errors.AwsError``.
    """
    request_filters = _filters(filters)

    def get_page(token: str | None) -> Page:
        request: GetProductsRequestTypeDef = {
            "ServiceCode": service_code,
            "Filters": request_filters,
            "FormatVersion": "aws_v1",
            "MaxResults": _MAX_RESULTS,
        }
        if token:
            request["NextToken"] = token
        with errors.translated("pricing", "GetProducts", PRICING_REGION):
            response = client.get_products(**request)
        return response.get("PriceList", []), response.get("NextToken")

    return iter_pages(get_page)
