"""The refresh parser against the conventions of real offer files.

Each test first reproduced a defect of the parser (run against the code before the fix, it
fails): units, on-demand terms only, usage types told apart by product attributes, RDS classes
from ``instanceType``, gp3 throughput per GiBps-month. ``data/real/`` holds excerpts cut from
real offer files and GetProducts responses (their origin and publication date are in each
file's ``_excerpt``); the products built here by hand say so.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cloudsweep.pricing import build, catalog, offers, refresh
from cloudsweep.pricing.catalog import UnknownPrice

REAL = Path(__file__).parent / "data" / "real"


def _dimension(usd: str, unit: str, **extra: Any) -> dict[str, Any]:
    return {
        "unit": unit,
        "pricePerUnit": {"USD": usd},
        "beginRange": "0",
        "endRange": "Inf",
        **extra,
    }


def _item(
    family: str,
    attributes: dict[str, str],
    dimensions: dict[str, dict[str, Any]],
    *,
    service: str = "AmazonEC2",
    term_attributes: dict[str, str] | None = None,
) -> str:
    """A GetProducts item written by hand in the shape the API returns."""
    sku = "HAND" + str(abs(hash((family, tuple(sorted(attributes.items()))))))[:8]
    return json.dumps(
        {
            "product": {"productFamily": family, "attributes": attributes, "sku": sku},
            "serviceCode": service,
            "terms": {
                "OnDemand": {
                    f"{sku}.JRTCKXETXF": {
                        "priceDimensions": {
                            f"{sku}.JRTCKXETXF.{code}": dim for code, dim in dimensions.items()
                        },
                        "sku": sku,
                        "offerTermCode": "JRTCKXETXF",
                        "termAttributes": term_attributes or {},
                    }
                }
            },
        }
    )


def _region(items: list[str], region: str) -> dict[str, Any]:
    doc = build.build_catalog(offers.parse_price_lists(items), version="2026-12-04")
    regions: dict[str, Any] = dict(doc["regions"])
    return dict(regions.get(region, {}))


def _tokyo_gp3(throughput: dict[str, Any]) -> list[str]:
    region = {"regionCode": "ap-northeast-1", "location": "Asia Pacific (Tokyo)"}
    return [
        _item(
            "Storage",
            {**region, "usagetype": "APN1-EBS:VolumeUsage.gp3", "volumeApiName": "gp3"},
            {"6YS6EN2CT7": _dimension("0.0960000000", "GB-Mo")},
        ),
        _item(
            "System Operation",
            {**region, "usagetype": "APN1-EBS:VolumeP-IOPS.gp3", "volumeApiName": "gp3"},
            {"6YS6EN2CT7": _dimension("0.0060000000", "IOPS-Mo")},
        ),
        _item(
            "Provisioned Throughput",
            {**region, "usagetype": "APN1-EBS:VolumeP-Throughput.gp3", "volumeApiName": "gp3"},
            {"6YS6EN2CT7": throughput},
        ),
    ]


# --- gp3 throughput: published per GiBps-month -------------------------------------------------


def test_gp3_throughput_published_per_gibps_month_is_stored_per_mibps_month(
    tmp_path: Path,
) -> None:
    # Tokyo's rates as the Price List publishes them (SKU PCKHHBTPD7TEQ3K4, 2026-09-10):
    # 49.152 USD per GiBps-month, i.e. 0.048 per MiB/s-month.
    items = _tokyo_gp3(_dimension("49.1520000000", "GiBps-mo"))
    tokyo = _region(items, "ap-northeast-1")
    assert tokyo["ebs_volumes"]["gp3"]["throughput_mibps_month"] == "0.048"
    doc = refresh.refresh_catalog(items, version="2026-12-04")
    prices = catalog.load_catalog(refresh.write_catalog(doc, tmp_path / "catalog.json"))
    # 500 GiB at 250 MiB/s: 500 x 0.096 + 125 x 0.048 = 54 (6,192 when 49.152 was per MiB/s).
    assert prices.ebs_volume_monthly("ap-northeast-1", "gp3", 500, 3000, 250) == Decimal("54")


def test_throughput_published_per_mibps_month_is_kept_as_is() -> None:
    items = _tokyo_gp3(_dimension("0.0480000000", "MiBps-Mo"))
    assert _region(items, "ap-northeast-1")["ebs_volumes"]["gp3"]["throughput_mibps_month"] == (
        "0.048"
    )


# --- units -----------------------------------------------------------------------------------


def test_a_price_in_an_unexpected_unit_is_not_taken() -> None:
    # A gp3 storage product whose only rate is per hour is not a per GB-month price.
    items = _tokyo_gp3(_dimension("0.0480000000", "MiBps-Mo"))
    items[0] = _item(
        "Storage",
        {
            "regionCode": "ap-northeast-1",
            "usagetype": "APN1-EBS:VolumeUsage.gp3",
            "volumeApiName": "gp3",
        },
        {"6YS6EN2CT7": _dimension("0.0001300000", "Hrs")},
    )
    assert "gp3" not in _region(items, "ap-northeast-1").get("ebs_volumes", {})


def test_storage_billed_per_gb_month_spelled_either_way_is_read() -> None:
    # The real io2 item says "GB-month" where most storage says "GB-Mo".
    text = (REAL / "getproducts_eu_west_1_2021-01-15.json").read_text()
    io2 = [item for item in json.loads(text)["PriceList"] if "io2" in item]
    iops = _item(
        "System Operation",
        {"regionCode": "eu-west-1", "usagetype": "EU-EBS:VolumeP-IOPS.io2"},
        {"6YS6EN2CT7": _dimension("0.0720000000", "IOPS-Mo")},
    )
    ireland = _region([*io2, iops], "eu-west-1")
    assert ireland["ebs_volumes"]["io2"]["gb_month"] == "0.138"


# --- on-demand only --------------------------------------------------------------------------


def test_a_reserved_upfront_fee_is_never_an_hourly_price() -> None:
    # The real t2.micro item (EU (Ireland), 2021-01-15) carries reserved terms with upfront fees
    # of 43 and 72 USD beside its 0.0126 USD on-demand rate.
    text = (REAL / "getproducts_eu_west_1_2021-01-15.json").read_text()
    (t2,) = [offers.parse_price_list_item(i) for i in json.loads(text)["PriceList"] if "t2" in i]
    assert [(d.unit, d.usd) for d in t2.on_demand] == [("Hrs", Decimal("0.0126"))]
    # The same fee filed under OnDemand, as some responses do, is still no hourly price: a term
    # with a lease length is a commitment, and a per-Quantity charge is a one-off.
    misfiled = _item(
        "Compute Instance",
        {
            "regionCode": "eu-west-1",
            "usagetype": "EU-BoxUsage:t2.micro",
            "instanceType": "t2.micro",
            "operatingSystem": "Linux",
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
        },
        {
            "2TG2D8R56U": {
                "unit": "Quantity",
                "description": "Upfront Fee",
                "pricePerUnit": {"USD": "43"},
            },
            "6YS6EN2CT7": _dimension("0.0049000000", "Hrs"),
        },
        term_attributes={"LeaseContractLength": "1yr", "PurchaseOption": "Partial Upfront"},
    )
    assert offers.parse_price_list_item(misfiled).on_demand == ()
    upfront_only = _item(
        "Compute Instance",
        {
            "regionCode": "eu-west-1",
            "usagetype": "EU-BoxUsage:t2.micro",
            "instanceType": "t2.micro",
        },
        {
            "2TG2D8R56U": {
                "unit": "Quantity",
                "description": "Upfront Fee",
                "pricePerUnit": {"USD": "43"},
            }
        },
    )
    assert offers.parse_price_list_item(upfront_only).on_demand == ()
    doc = build.build_catalog(
        offers.parse_price_lists([misfiled, upfront_only, *json.loads(text)["PriceList"]]),
        version="2026-12-04",
    )
    assert doc["regions"]["eu-west-1"]["ec2_instances_hourly"] == {"t2.micro": "0.0126"}


def test_a_real_offer_with_an_upfront_fee_under_on_demand_gives_no_hourly_price() -> None:
    # OpenCost's cut of the 2023-03-22 US East (Ohio) offer files m5.large's 3-year reserved
    # term, with its 1,161 USD upfront fee, under OnDemand; Windows BYOL is not Linux.
    text = (REAL / "offer_ec2_us_east_2_opencost_20230322.json").read_text()
    products = {p.sku: p for p in offers.parse_offer_file(text)}
    assert products["8D49XP354UEYTHGM"].on_demand == ()
    ohio = build.build_catalog(products.values(), version="2026-12-04")["regions"]["us-east-2"]
    assert ohio["ebs_volumes"] == {
        "gp3": {"gb_month": "0.08", "free_iops": 3000},
    }
    assert "ec2_instances_hourly" not in ohio


# --- usage types by product attributes, not suffixes -------------------------------------------


def _lb(usagetype: str, usd: str, *, operation: str = "LoadBalancing:Application") -> str:
    return _item(
        "Load Balancer-Application",
        {"regionCode": "us-east-1", "usagetype": usagetype, "operation": operation},
        {"6YS6EN2CT7": _dimension(usd, "Hrs")},
        service="AWSELB",
    )


def test_load_balancer_hours_are_the_region_usage_type_alone() -> None:
    items = [
        _lb("LoadBalancerUsage", "0.0225000000"),
        # Written here, not recorded: usage types that end like the hourly one but bill
        # something else (a trust store, an Outposts rack) must not replace it, whatever order
        # the API returns them in.
        _lb("TS-LoadBalancerUsage", "0.0050000000"),
        _lb("Outposts-LoadBalancerUsage", "0.0000000000"),
        _lb("LoadBalancerUsage", "0.0300000000", operation="LoadBalancing:Outposts"),
    ]
    for ordering in (items, items[::-1]):
        virginia = _region(ordering, "us-east-1")
        assert virginia["load_balancers_hourly"] == {"application": "0.0225"}


def test_lcu_hours_are_kept_apart_from_load_balancer_hours() -> None:
    lcu = _item(
        "Load Balancer-Application",
        {
            "regionCode": "us-east-1",
            "usagetype": "LCUUsage",
            "operation": "LoadBalancing:Application",
        },
        {"6YS6EN2CT7": _dimension("0.0080000000", "LCU-Hrs")},
        service="AWSELB",
    )
    virginia = _region([_lb("LoadBalancerUsage", "0.0225000000"), lcu], "us-east-1")
    assert virginia["load_balancers_hourly"] == {"application": "0.0225"}
    assert virginia["load_balancer_capacity_units_hourly"] == {"application": "0.008"}


def test_nat_gateway_bytes_with_provisioned_bandwidth_are_not_the_data_processing_rate() -> None:
    offer = offers.parse_offer_file((REAL / "offer_ec2_lyft_awspricing_20161213.json").read_text())
    doc = build.build_catalog(offer, version="2026-12-04")
    assert "nat_gateway" not in doc["regions"].get("eu-west-1", {})


# --- RDS classes from instanceType -------------------------------------------------------------


def _rds(usagetype: str, instance_type: str, deployment: str, usd: str) -> str:
    return _item(
        "Database Instance",
        {
            "regionCode": "us-east-1",
            "usagetype": usagetype,
            "instanceType": instance_type,
            "databaseEngine": "PostgreSQL",
            "deploymentOption": deployment,
            "licenseModel": "No license required",
        },
        {"6YS6EN2CT7": _dimension(usd, "Hrs")},
        service="AmazonRDS",
    )


def test_rds_classes_come_from_instance_type_not_the_abbreviated_usage_type(
    tmp_path: Path,
) -> None:
    items = [
        _rds("InstanceUsage:db.t3.xl", "db.t3.xlarge", "Single-AZ", "0.2720000000"),
        _rds("Multi-AZUsage:db.t3.xl", "db.t3.xlarge", "Multi-AZ", "0.5440000000"),
        _rds("InstanceUsage:db.r5.2xl", "db.r5.2xlarge", "Single-AZ", "1.0000000000"),
    ]
    virginia = _region(items, "us-east-1")
    assert set(virginia["rds_instances"]["PostgreSQL"]) == {"db.t3.xlarge", "db.r5.2xlarge"}
    doc = refresh.refresh_catalog(items, version="2026-12-04")
    prices = catalog.load_catalog(refresh.write_catalog(doc, tmp_path / "catalog.json"))
    assert prices.rds_instance_monthly("us-east-1", "db.t3.xlarge", "postgres", False) == (
        Decimal("0.272") * 730
    )
    assert prices.rds_instance_monthly("us-east-1", "db.t3.xlarge", "postgres", True) == (
        Decimal("0.544") * 730
    )
    with pytest.raises(UnknownPrice):
        prices.rds_instance_monthly("us-east-1", "db.t3.xl", "postgres", False)


# --- the real excerpts end to end ----------------------------------------------------------------


def test_real_offer_excerpts_give_the_prices_they_publish() -> None:
    offer = offers.parse_offer_file((REAL / "offer_ec2_lyft_awspricing_20161213.json").read_text())
    doc = build.build_catalog(offer, version="2026-12-04")
    regions = doc["regions"]
    assert regions["us-east-1"]["ec2_instances_hourly"] == {"c4.large": "0.1"}
    assert regions["us-east-1"]["ebs_snapshots"] == {"standard": "0.05"}
    assert regions["ca-central-1"]["load_balancers_hourly"] == {"application": "0.02475"}
    assert regions["ap-south-1"]["ebs_volumes"] == {"gp2": {"gb_month": "0.114"}}
    # The per-GB data charge of a classic load balancer is not its hourly price, an Elastic IP
    # of 2017 is not today's public IPv4 charge, and London's IOPS rate has no storage rate
    # beside it in the excerpt: none of them makes a region.
    assert set(regions) == {"us-east-1", "ca-central-1", "ap-south-1"}
