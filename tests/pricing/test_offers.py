"""The Price List parser, the catalog builder and the GetProducts pager, on recorded offers.

``data/offer_ec2_ebs.json`` is a cut-down AmazonEC2 bulk offer file; ``data/get_products_pages.json``
holds three recorded ``pricing:GetProducts`` responses (AWSELB, AmazonVPC, AmazonRDS items).
Every expected figure below is read off those files by hand.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from cloudsweep.aws import errors, pricing_api
from cloudsweep.pricing import build, catalog, offers, refresh
from cloudsweep.pricing.catalog import UnknownPrice

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def ec2_offer_text() -> str:
    return (DATA / "offer_ec2_ebs.json").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def pages() -> list[dict[str, Any]]:
    recorded: list[dict[str, Any]] = json.loads((DATA / "get_products_pages.json").read_text())
    return recorded


@pytest.fixture(scope="module")
def price_list_items(pages: list[dict[str, Any]]) -> list[str]:
    return [item for page in pages for item in page["PriceList"]]


@pytest.fixture(scope="module")
def ec2_products(ec2_offer_text: str) -> list[offers.OfferProduct]:
    return offers.parse_offer_file(ec2_offer_text)


def _by_usage(products: list[offers.OfferProduct], usagetype: str) -> offers.OfferProduct:
    (match,) = [p for p in products if p.usagetype == usagetype]
    return match


# --- offers.py: the bulk offer file -----------------------------------------------------------


def test_bulk_offer_file_gives_every_product_with_its_on_demand_price(
    ec2_products: list[offers.OfferProduct],
) -> None:
    assert len(ec2_products) == 22
    gp3 = _by_usage(ec2_products, "EBS:VolumeUsage.gp3")
    assert gp3.service_code == "AmazonEC2"
    assert gp3.product_family == "Storage"
    assert gp3.region_code == "us-east-1"
    assert gp3.attr("volumeApiName") == "gp3"
    (dimension,) = gp3.on_demand
    assert dimension.usd == Decimal("0.08")
    assert dimension.unit == "GB-Mo"
    assert dimension.begin_range == 0
    assert dimension.end_range is None  # "Inf"
    assert isinstance(dimension.usd, Decimal)

    expected = {
        "EBS:VolumeP-IOPS.gp3": Decimal("0.005"),
        "EBS:VolumeP-Throughput.gp3": Decimal("0.04"),
        "EBS:VolumeUsage.gp2": Decimal("0.10"),
        "EBS:VolumeUsage.piops": Decimal("0.125"),
        "EBS:VolumeP-IOPS.piops": Decimal("0.065"),
        "EBS:VolumeP-IOPS.io2": Decimal("0.065"),
        "EBS:VolumeP-IOPS.io2.tier2": Decimal("0.0455"),
        "EBS:VolumeP-IOPS.io2.tier3": Decimal("0.032"),
        "EBS:VolumeUsage.st1": Decimal("0.045"),
        "EBS:VolumeUsage.sc1": Decimal("0.015"),
        "EBS:VolumeUsage": Decimal("0.05"),
        "EBS:SnapshotUsage": Decimal("0.05"),
        "EBS:SnapshotArchiveStorage": Decimal("0.0125"),
        "EU-EBS:VolumeUsage.gp3": Decimal("0.088"),
        "EU-EBS:VolumeP-IOPS.gp3": Decimal("0.0055"),
        "EU-EBS:VolumeP-Throughput.gp3": Decimal("0.044"),
        # Recorded with the reserved term beside it: only the on-demand price is read.
        "BoxUsage:m5.large": Decimal("0.096"),
    }
    for usagetype, usd in expected.items():
        assert _by_usage(ec2_products, usagetype).first_usd == usd, usagetype


def test_region_prefix_is_stripped_from_usage_types(
    ec2_products: list[offers.OfferProduct],
) -> None:
    eu = _by_usage(ec2_products, "EU-EBS:VolumeP-IOPS.gp3")
    assert eu.region_code == "eu-west-1"
    assert eu.usage_kind == "EBS:VolumeP-IOPS.gp3"
    assert _by_usage(ec2_products, "EBS:VolumeUsage.gp3").usage_kind == "EBS:VolumeUsage.gp3"


def test_offer_file_parses_the_same_from_text_and_from_a_mapping(ec2_offer_text: str) -> None:
    as_mapping = offers.loads(ec2_offer_text)
    assert offers.parse_offer_file(as_mapping) == offers.parse_offer_file(ec2_offer_text)


def test_region_falls_back_to_the_location_name_when_region_code_is_missing() -> None:
    product = offers.OfferProduct(
        sku="X", service_code="AmazonEC2", product_family="Storage",
        attributes={"location": "EU (Frankfurt)"},
    )  # fmt: skip
    assert product.region_code == "eu-central-1"


def test_a_file_that_is_no_offer_is_refused() -> None:
    with pytest.raises(offers.OfferFormatError, match="products"):
        offers.parse_offer_file('{"formatVersion": "v1.0"}')
    with pytest.raises(offers.OfferFormatError, match="product"):
        offers.parse_price_list_item('{"terms": {}}')


def test_numbers_are_read_as_decimals_never_floats() -> None:
    doc = offers.loads('{"price": 0.1, "n": 3}')
    assert doc == {"price": Decimal("0.1"), "n": Decimal(3)}
    assert isinstance(doc["price"], Decimal)


# --- offers.py: GetProducts items -------------------------------------------------------------


def test_price_list_items_give_product_and_on_demand_price(price_list_items: list[str]) -> None:
    products = [offers.parse_price_list_item(item) for item in price_list_items]
    assert len(products) == 18
    alb = products[0]
    assert alb.service_code == "AWSELB"
    assert alb.product_family == "Load Balancer-Application"
    assert alb.usagetype == "LoadBalancerUsage"
    assert alb.first_usd == Decimal("0.0225")
    postgres = [
        p
        for p in products
        if p.attr("databaseEngine") == "PostgreSQL" and p.attr("deploymentOption") == "Multi-AZ"
    ]
    assert [p.first_usd for p in postgres] == [Decimal("0.356")]
    assert all(isinstance(d.usd, Decimal) for p in products for d in p.on_demand)


# --- build.py and refresh.py ------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(ec2_products: list[offers.OfferProduct], price_list_items: list[str]) -> dict[str, Any]:
    products = [*ec2_products, *offers.parse_price_lists(price_list_items)]
    doc: dict[str, Any] = dict(build.build_catalog(products, version="2026-11-01"))
    return doc


def test_built_document_has_the_loader_shape(built: dict[str, Any]) -> None:
    assert built["schema_version"] == catalog.SCHEMA_VERSION
    assert built["version"] == "2026-11-01"
    assert built["currency"] == "USD"
    assert "Price List API" in built["source"]
    assert set(built["regions"]) == {"us-east-1", "eu-west-1"}
    us = built["regions"]["us-east-1"]
    assert us["basis"] == "published"
    assert us["location"] == "US East (N. Virginia)"
    assert us["ebs_volumes"]["gp3"] == {
        # The Local Zone's $0.096 gp3 shares the region code and must not replace this.
        "gb_month": "0.08",
        "iops_tiers": [{"up_to": None, "usd": "0.005"}],
        "free_iops": 3000,
        "throughput_mibps_month": "0.04",
        "free_throughput_mibps": 125,
    }
    assert us["ebs_volumes"]["io2"]["iops_tiers"] == [
        {"up_to": 32000, "usd": "0.065"},
        {"up_to": 64000, "usd": "0.0455"},
        {"up_to": None, "usd": "0.032"},
    ]
    assert us["ebs_volumes"]["io1"] == {
        "gb_month": "0.125",
        "iops_tiers": [{"up_to": None, "usd": "0.065"}],
    }
    assert us["ebs_snapshots"] == {"archive": "0.0125", "standard": "0.05"}
    assert us["public_ipv4_hourly"] == "0.005"
    # The LCU and the per-GB data charge are not the hourly price.
    assert us["load_balancers_hourly"] == {"application": "0.0225", "classic": "0.025"}
    assert us["rds_instances"] == {
        "Aurora PostgreSQL": {"db.r6g.large": {"single_az": "0.26"}},
        "PostgreSQL": {"db.m5.large": {"multi_az": "0.356", "single_az": "0.178"}},
    }
    assert us["rds_storage"]["gp3"] == {
        "multi_az": {"gb_month": "0.23"},
        "single_az": {
            "gb_month": "0.115",
            "iops_tiers": [{"up_to": None, "usd": "0.02"}],
            "throughput_mibps_month": "0.08",
        },
    }
    eu = built["regions"]["eu-west-1"]
    assert eu["location"] == "EU (Ireland)"
    assert eu["load_balancers_hourly"] == {"network": "0.0252"}
    assert eu["ebs_volumes"]["gp3"]["gb_month"] == "0.088"


def test_catalog_built_from_the_recorded_offers_loads_and_answers(
    built: dict[str, Any], tmp_path: Path
) -> None:
    path = build.write_catalog(built, tmp_path / "catalog.json")
    prices = catalog.load_catalog(path)
    assert prices.version == "2026-11-01"
    assert prices.regions == frozenset({"us-east-1", "eu-west-1"})
    # gp3, 100 GiB, 4000 IOPS, 250 MiB/s: 100 x 0.08 + 1000 x 0.005 + 125 x 0.04
    assert prices.ebs_volume_monthly("us-east-1", "gp3", 100, 4000, 250) == Decimal("18")
    # eu-west-1: 100 x 0.088 + 1000 x 0.0055 + 125 x 0.044
    assert prices.ebs_volume_monthly("eu-west-1", "gp3", 100, 4000, 250) == Decimal("19.8")
    # io2, 100 GiB, 70000 IOPS: 12.5 + 32000 x 0.065 + 32000 x 0.0455 + 6000 x 0.032 = 3740.5
    assert prices.ebs_volume_monthly("us-east-1", "io2", 100, 70000) == Decimal("3740.5")
    assert prices.ebs_volume_monthly("us-east-1", "standard", 10) == Decimal("0.5")
    assert prices.ebs_snapshot_monthly("us-east-1", 200, "archive") == Decimal("2.5")
    assert prices.public_ipv4_monthly("eu-west-1") == Decimal("3.65")
    assert prices.load_balancer_monthly("us-east-1", "application") == Decimal("16.425")
    assert prices.load_balancer_monthly("eu-west-1", "network") == Decimal("18.396")
    assert prices.rds_instance_monthly("us-east-1", "db.m5.large", "postgres", False) == Decimal(
        "129.94"
    )
    assert prices.rds_instance_monthly("us-east-1", "db.m5.large", "postgres", True) == Decimal(
        "259.88"
    )
    aurora = prices.rds_instance_monthly("us-east-1", "db.r6g.large", "aurora-postgresql", True)
    assert aurora == Decimal("189.8")  # Aurora: each instance on its own, no standby
    # gp3 600 GiB (baseline 12000 IOPS, 500 MiB/s), 15000 IOPS, 600 MiB/s:
    # 600 x 0.115 + 3000 x 0.02 + 100 x 0.08
    assert prices.rds_storage_monthly("us-east-1", "gp3", 600, 15000, 600) == Decimal("137")
    assert prices.rds_storage_monthly("us-east-1", "io1", 100, 1000) == Decimal("112.5")
    # License-included SQL Server was recorded but is not kept.
    with pytest.raises(UnknownPrice, match="sqlserver-se"):
        prices.rds_instance_monthly("us-east-1", "db.m5.large", "sqlserver-se", False)
    with pytest.raises(UnknownPrice, match=r"RDS db\.m5\.large \(mysql\) in us-east-1"):
        prices.rds_instance_monthly("us-east-1", "db.m5.large", "mysql", False)
    with pytest.raises(UnknownPrice, match="gateway load balancers in us-east-1"):
        prices.load_balancer_monthly("us-east-1", "gateway")


def test_iops_billed_storage_without_its_iops_rate_is_left_out(
    ec2_products: list[offers.OfferProduct],
) -> None:
    storage_only = [p for p in ec2_products if p.usage_kind.startswith("EBS:VolumeUsage")]
    doc = build.build_catalog(storage_only, version="2026-11-01")
    volumes = doc["regions"]["us-east-1"]["ebs_volumes"]
    assert "io1" not in volumes and "io2" not in volumes  # unknown beats under-stated
    assert volumes["gp2"] == {"gb_month": "0.1"}


def _backup_product(usagetype: str, region: str, usd: str) -> offers.OfferProduct:
    # Written here, not recorded: the recorded pages hold no backup-storage product.
    return offers.OfferProduct(
        sku=f"SKU-{usagetype}",
        service_code="AmazonRDS",
        product_family="Storage Snapshot",
        attributes={"usagetype": usagetype, "regionCode": region, "databaseEngine": "Any"},
        on_demand=(offers.PriceDimension(unit="GB-Mo", usd=Decimal(usd)),),
    )


def test_rds_backup_storage_is_kept_and_aurora_backup_storage_is_not(
    ec2_products: list[offers.OfferProduct], tmp_path: Path
) -> None:
    products = [
        *ec2_products,
        _backup_product("RDS:ChargedBackupUsage", "us-east-1", "0.095"),
        _backup_product("Aurora:BackupUsage", "us-east-1", "0.021"),
        _backup_product("EU-Aurora:BackupUsage", "eu-west-1", "0.021"),
    ]
    doc = build.build_catalog(products, version="2026-11-01")
    assert doc["regions"]["us-east-1"]["rds_snapshot_gb_month"] == "0.095"
    assert "rds_snapshot_gb_month" not in doc["regions"]["eu-west-1"]
    prices = catalog.load_catalog(build.write_catalog(doc, tmp_path / "catalog.json"))
    assert prices.rds_snapshot_monthly("us-east-1", 200) == Decimal("19")
    with pytest.raises(UnknownPrice, match="RDS snapshot storage in eu-west-1"):
        prices.rds_snapshot_monthly("eu-west-1", 200)


def test_refresh_turns_price_list_strings_into_a_valid_document(
    price_list_items: list[str], tmp_path: Path
) -> None:
    doc = refresh.refresh_catalog(iter(price_list_items), version="2026-11-02")
    assert doc["version"] == "2026-11-02"
    # Every figure of a refreshed catalog was read from the Price List, on that date.
    assert doc["regions"]["us-east-1"]["basis"] == (
        "published: AWS Price List API (pricing:GetProducts), read on 2026-11-02"
    )
    assert doc["regions"]["us-east-1"]["public_ipv4_hourly"] == "0.005"
    written = refresh.write_catalog(doc, tmp_path / "nested" / "catalog.json")
    assert written.stat().st_mode & 0o777 == 0o644
    text = written.read_text()
    assert json.loads(text) == json.loads(build.dumps_catalog(doc))
    assert catalog.load_catalog(written).public_ipv4_monthly("us-east-1") == Decimal("3.65")


def test_refresh_refuses_price_lists_with_nothing_the_catalog_keeps() -> None:
    with pytest.raises(catalog.InvalidCatalog, match="service codes and filters"):
        refresh.refresh_catalog([], version="2026-11-02")


def test_write_catalog_refuses_a_document_the_loader_would_refuse(tmp_path: Path) -> None:
    bad = {"schema_version": 1, "version": "x", "source": "y", "currency": "USD", "regions": {}}
    with pytest.raises(catalog.InvalidCatalog, match="no regions"):
        build.write_catalog(bad, tmp_path / "catalog.json")
    assert not (tmp_path / "catalog.json").exists()


# --- aws/pricing_api.py: paging ---------------------------------------------------------------


def test_iter_pages_follows_next_tokens_through_the_recorded_pages(
    pages: list[dict[str, Any]],
) -> None:
    by_token = {None: pages[0], pages[0]["NextToken"]: pages[1], pages[1]["NextToken"]: pages[2]}
    asked: list[str | None] = []

    def get_page(token: str | None) -> pricing_api.Page:
        asked.append(token)
        page = by_token[token]
        return page["PriceList"], page.get("NextToken")

    items = list(pricing_api.iter_pages(get_page))
    assert asked == [None, pages[0]["NextToken"], pages[1]["NextToken"]]
    assert items == [item for page in pages for item in page["PriceList"]]


def test_iter_pages_is_lazy_and_refuses_a_looping_token() -> None:
    asked: list[str | None] = []

    def get_page(token: str | None) -> pricing_api.Page:
        asked.append(token)
        return ["item"], "same-token"

    pager = pricing_api.iter_pages(get_page)
    assert asked == []
    with pytest.raises(RuntimeError, match="same-token"):
        list(pager)
    assert asked == [None, "same-token"]


class _RecordedPricingApi(BaseHTTPRequestHandler):
    """Answers GetProducts (JSON 1.1 over HTTP) with the recorded pages, by NextToken."""

    pages: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    error: tuple[int, str] | None = None

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"target": self.headers["X-Amz-Target"], **body})
        if self.error is not None:
            status, code = self.error
            self._reply(status, {"__type": code, "Message": f"recorded {code}"})
            return
        index = 0
        if "NextToken" in body:
            tokens = [page.get("NextToken") for page in self.pages]
            index = tokens.index(body["NextToken"]) + 1
        self._reply(200, self.pages[index])

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorded_pricing_endpoint(pages: list[dict[str, Any]]) -> Iterator[type[_RecordedPricingApi]]:
    """A local HTTP server replaying the recorded pages (moto 5.2.5 has no Pricing API)."""
    handler = type("Handler", (_RecordedPricingApi,), {"pages": pages, "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def _pricing_client(url: str) -> Any:
    return boto3.client(
        "pricing",
        region_name=pricing_api.PRICING_REGION,
        endpoint_url=url,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def test_iter_price_lists_pages_get_products_with_a_real_boto3_client(
    recorded_pricing_endpoint: Any, pages: list[dict[str, Any]]
) -> None:
    client = _pricing_client(recorded_pricing_endpoint.url)
    filters = [{"Field": "regionCode", "Value": "us-east-1"}]
    items = list(pricing_api.iter_price_lists(client, "AmazonRDS", filters))
    assert items == [item for page in pages for item in page["PriceList"]]
    requests = recorded_pricing_endpoint.requests
    assert [r["target"] for r in requests] == ["AWSPriceListService.GetProducts"] * 3
    assert requests[0]["ServiceCode"] == "AmazonRDS"
    assert requests[0]["Filters"] == [
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"}
    ]
    assert "NextToken" not in requests[0]
    assert [r.get("NextToken") for r in requests[1:]] == [p["NextToken"] for p in pages[:2]]
    # What the pager yields is what refresh_catalog takes.
    doc = refresh.refresh_catalog(items, version="2026-11-03")
    assert doc["regions"]["us-east-1"]["rds_instances"]["PostgreSQL"]["db.m5.large"] == {
        "multi_az": "0.356",
        "single_az": "0.178",
    }


def test_iter_price_lists_raises_classified_aws_errors(recorded_pricing_endpoint: Any) -> None:
    recorded_pricing_endpoint.error = (400, "AccessDeniedException")
    client = _pricing_client(recorded_pricing_endpoint.url)
    with pytest.raises(errors.AwsError) as caught:
        list(pricing_api.iter_price_lists(client, "AmazonEC2", []))
    assert caught.value.kind is errors.ErrorKind.ACCESS_DENIED
    assert "pricing:GetProducts" in str(caught.value)


def test_iter_price_lists_refuses_a_malformed_filter_before_calling_aws() -> None:
    with pytest.raises(ValueError, match="Field, Value"):
        pricing_api.iter_price_lists(None, "AmazonEC2", [{"Field": "regionCode"}])  # type: ignore[arg-type]


def test_refresh_queries_cover_the_services_the_builder_reads() -> None:
    services = {service for service, _ in pricing_api.REFRESH_QUERIES}
    assert services == {
        "AmazonEC2",
        "AmazonVPC",
        "AWSELB",
        "AmazonRDS",
        "AmazonCloudWatch",
        "AmazonS3",
    }
    # RDS backup storage (RDS:ChargedBackupUsage) is listed as a "Storage Snapshot" product.
    assert (
        "AmazonRDS",
        ({"Type": "TERM_MATCH", "Field": "productFamily", "Value": "Storage Snapshot"},),
    ) in pricing_api.REFRESH_QUERIES
    for _, filters in pricing_api.REFRESH_QUERIES:
        pricing_api._filters(filters)  # each is well-formed
