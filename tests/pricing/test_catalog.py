"""The bundled price catalog and the lookups every detector relies on.

Expected figures are computed by hand from the us-east-1 list prices the catalog declares.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cloudsweep.pricing import (
    HOURS_PER_MONTH,
    InvalidCatalog,
    PriceCatalog,
    UnknownPrice,
    bundled_catalog_path,
    load_catalog,
)
from cloudsweep.pricing import catalog as catalog_module

COMMERCIAL_REGIONS = frozenset(
    {
        "us-east-1", "us-east-2", "us-west-1", "us-west-2",
        "af-south-1",
        "ap-east-1", "ap-east-2", "ap-south-1", "ap-south-2",
        "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
        "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
        "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
        "ca-central-1", "ca-west-1",
        "eu-central-1", "eu-central-2", "eu-west-1", "eu-west-2", "eu-west-3",
        "eu-south-1", "eu-south-2", "eu-north-1",
        "il-central-1", "me-south-1", "me-central-1", "mx-central-1", "sa-east-1",
    }
)  # fmt: skip
RDS_FAMILIES = ("t3", "t4g", "m5", "m6g", "m6i", "m7g", "r5", "r6g", "r6i", "r7g")


@pytest.fixture(scope="module")
def prices() -> PriceCatalog:
    return load_catalog()


# --- the bundled document -------------------------------------------------------------------------


def test_bundled_catalog_is_versioned_and_says_where_its_figures_come_from(
    prices: PriceCatalog,
) -> None:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", prices.version)
    assert prices.currency == "USD"
    assert prices.schema_version == catalog_module.SCHEMA_VERSION
    assert "sourced_prices.json" in prices.source
    assert "cloudsweep pricing refresh" in prices.source
    assert Decimal(730) == HOURS_PER_MONTH
    for source in prices.sources.values():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", source.date), source
        assert source.title and source.where


def test_bundled_catalog_is_parsed_once(prices: PriceCatalog) -> None:
    assert load_catalog() is prices


def test_bundled_file_is_small_and_holds_no_floats() -> None:
    path = bundled_catalog_path()
    assert path.stat().st_size < 1_500_000

    def walk(value: Any, where: str) -> None:
        assert not isinstance(value, float), f"{where} is a float"
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")

    # Plain json.loads would turn any JSON number with a fraction into a float.
    walk(json.loads(path.read_text()), "catalog")


def test_every_commercial_region_is_present(prices: PriceCatalog) -> None:
    assert prices.regions >= COMMERCIAL_REGIONS
    assert isinstance(prices.regions, frozenset)


def test_every_figure_of_every_region_says_on_what_basis_it_is(prices: PriceCatalog) -> None:
    for region in prices.regions:
        assert prices.basis(region).startswith("mixed: "), region
        for figure in prices.figures(region):
            basis = figure.basis
            if basis.kind == catalog_module.PUBLISHED:
                # Published means read from a dated source, never "published" by default.
                assert basis.source is not None, (region, figure.path)
                assert prices.region(region).figure_sources[figure.path] == basis.source.id
            else:
                assert basis.kind == catalog_module.ESTIMATED, (region, figure.path)
                assert basis.how.startswith("estimated: "), (region, figure.path, basis.how)


_FACTOR = re.compile(r"us-east-1 x (?P<factor>\d+(\.\d+)?)")


@pytest.mark.parametrize("region", sorted(COMMERCIAL_REGIONS - {"us-east-1"}))
def test_each_estimate_is_what_its_basis_says(prices: PriceCatalog, region: str) -> None:
    """An estimated figure is us-east-1's times the factor its basis states (to 4 digits)."""
    base = {figure.path: figure.usd for figure in prices.figures("us-east-1")}
    checked = 0
    for figure in prices.figures(region):
        if figure.basis.kind != catalog_module.ESTIMATED or figure.path not in base:
            continue
        match = _FACTOR.search(figure.basis.how)
        factor = Decimal(match.group("factor")) if match else Decimal(1)
        expected = base[figure.path] * factor
        assert abs(figure.usd - expected) <= expected * Decimal("0.0015"), (
            region,
            figure.path,
            figure.usd,
            figure.basis.how,
        )
        checked += 1
    assert checked > 100
    # Public IPv4 costs the same in every region where it was sourced, so it is never scaled.
    assert prices.public_ipv4_monthly(region) == Decimal("3.65")


def test_sourced_figures_are_published_with_their_source(prices: PriceCatalog) -> None:
    tokyo = prices.figure_basis("ap-northeast-1", "ebs_volumes/gp3/throughput_mibps_month")
    assert tokyo.kind == catalog_module.PUBLISHED
    assert tokyo.source is not None and tokyo.source.date == "2026-09-10"
    assert "2026-09-10" in str(tokyo)
    rds = prices.figure_basis("ap-northeast-1", "rds_instances/PostgreSQL/db.m5.large/single_az")
    assert rds.kind == catalog_module.ESTIMATED
    assert "median ratio" in rds.how
    unknown_kind = prices.figure_basis("sa-east-1", "nat_gateway/hourly")
    assert "general multiplier" in unknown_kind.how


@pytest.mark.parametrize("region", sorted(COMMERCIAL_REGIONS))
def test_every_lookup_answers_with_a_decimal_in_every_region(
    prices: PriceCatalog, region: str
) -> None:
    answers: list[Decimal] = []
    for volume_type in ("gp2", "gp3", "st1", "sc1", "standard"):
        answers.append(prices.ebs_volume_monthly(region, volume_type, 500))
    answers.append(prices.ebs_volume_monthly(region, "gp3", 500, 6000, 500))
    answers.append(prices.ebs_volume_monthly(region, "io1", 500, 10000))
    answers.append(prices.ebs_volume_monthly(region, "io2", 500, 100000))
    for tier in ("standard", "archive"):
        answers.append(prices.ebs_snapshot_monthly(region, 100, tier))
    answers.append(prices.public_ipv4_monthly(region))
    for lb_type in ("application", "network", "gateway", "classic"):
        answers.append(prices.load_balancer_monthly(region, lb_type))
    for engine in ("postgres", "mysql", "mariadb"):
        for family in RDS_FAMILIES:
            for multi_az in (False, True):
                answers.append(
                    prices.rds_instance_monthly(region, f"db.{family}.large", engine, multi_az)
                )
    for engine in ("aurora-mysql", "aurora-postgresql"):
        answers.append(prices.rds_instance_monthly(region, "db.r6g.large", engine, False))
    for storage_type in ("gp2", "gp3", "standard"):
        for multi_az in (False, True):
            answers.append(prices.rds_storage_monthly(region, storage_type, 100, multi_az=multi_az))
    for storage_type in ("io1", "io2"):
        answers.append(prices.rds_storage_monthly(region, storage_type, 100, 3000))
    answers.append(prices.rds_snapshot_monthly(region, 100))
    assert all(isinstance(answer, Decimal) for answer in answers)
    assert all(answer > 0 for answer in answers)


# --- EBS -------------------------------------------------------------------------------------------


def test_gp3_includes_3000_iops_and_125_mibps(prices: PriceCatalog) -> None:
    # us-east-1 gp3: $0.08/GB-month, $0.005/IOPS-month and $0.04/MiBps-month above the baseline.
    assert prices.ebs_volume_monthly("us-east-1", "gp3", 100) == Decimal("8")
    assert prices.ebs_volume_monthly("us-east-1", "gp3", 100, 3000, 125) == Decimal("8")
    assert prices.ebs_volume_monthly("us-east-1", "gp3", 100, 1000, 100) == Decimal("8")
    # 6000 IOPS: 3000 billed x 0.005 = 15; 250 MiB/s: 125 billed x 0.04 = 5
    assert prices.ebs_volume_monthly("us-east-1", "gp3", 100, 6000, 250) == Decimal("28")
    assert prices.ebs_volume_monthly("us-east-1", "gp3", 100, 6000) == Decimal("23")
    assert prices.ebs_volume_monthly("us-east-1", "gp3", 100, None, 1000) == Decimal("43")


def test_io2_iops_are_billed_in_marginal_tiers(prices: PriceCatalog) -> None:
    # $0.125/GB-month; IOPS: $0.065 up to 32,000, $0.0455 to 64,000, $0.032 above.
    assert prices.ebs_volume_monthly("us-east-1", "io2", 500, 10000) == Decimal("712.5")
    assert prices.ebs_volume_monthly("us-east-1", "io2", 500, 32000) == Decimal("2142.5")
    # 62.5 + 32000 x 0.065 + 8000 x 0.0455
    assert prices.ebs_volume_monthly("us-east-1", "io2", 500, 40000) == Decimal("2506.5")
    # 62.5 + 2080 + 32000 x 0.0455 + 16000 x 0.032
    assert prices.ebs_volume_monthly("us-east-1", "io2", 500, 80000) == Decimal("4110.5")


def test_io1_bills_every_provisioned_iops_and_needs_them(prices: PriceCatalog) -> None:
    assert prices.ebs_volume_monthly("us-east-1", "io1", 100, 10000) == Decimal("662.5")
    with pytest.raises(UnknownPrice, match="EBS io1 volumes without their provisioned IOPS"):
        prices.ebs_volume_monthly("us-east-1", "io1", 100)
    with pytest.raises(UnknownPrice, match="pass iops="):
        prices.ebs_volume_monthly("us-east-1", "io2", 100)


def test_per_gb_volume_types_ignore_iops_and_throughput(prices: PriceCatalog) -> None:
    # gp2 reports IOPS (3 per GiB) that it does not bill separately.
    assert prices.ebs_volume_monthly("us-east-1", "gp2", 100, 300) == Decimal("10")
    assert prices.ebs_volume_monthly("us-east-1", "st1", 1000, None, 500) == Decimal("45")
    assert prices.ebs_volume_monthly("us-east-1", "sc1", 1000) == Decimal("15")
    assert prices.ebs_volume_monthly("us-east-1", "standard", 100) == Decimal("5")


def test_snapshots_standard_and_archive(prices: PriceCatalog) -> None:
    assert prices.ebs_snapshot_monthly("us-east-1", 100) == Decimal("5")
    assert prices.ebs_snapshot_monthly("us-east-1", 100, "archive") == Decimal("1.25")
    assert prices.ebs_snapshot_monthly("us-east-1", Decimal("12.5")) == Decimal("0.625")
    with pytest.raises(UnknownPrice, match=r"'glacier' tier.*standard, archive"):
        prices.ebs_snapshot_monthly("us-east-1", 100, "glacier")


def test_unknown_volume_type_names_the_known_ones(prices: PriceCatalog) -> None:
    with pytest.raises(UnknownPrice, match=r"EBS gp9 volumes in us-east-1.*gp2, gp3"):
        prices.ebs_volume_monthly("us-east-1", "gp9", 100)


def test_bad_quantities_are_refused(prices: PriceCatalog) -> None:
    with pytest.raises(ValueError, match="size_gib must not be negative"):
        prices.ebs_volume_monthly("us-east-1", "gp3", -1)
    with pytest.raises(TypeError, match="not a float"):
        prices.ebs_snapshot_monthly("us-east-1", 1.5)  # type: ignore[arg-type]


# --- public IPv4 and load balancers ----------------------------------------------------------------


def test_public_ipv4_is_half_a_cent_an_hour(prices: PriceCatalog) -> None:
    assert prices.public_ipv4_monthly("us-east-1") == Decimal("0.005") * 730 == Decimal("3.65")


def test_load_balancers_base_hourly_times_730(prices: PriceCatalog) -> None:
    assert prices.load_balancer_monthly("us-east-1", "application") == Decimal("16.425")
    assert prices.load_balancer_monthly("us-east-1", "network") == Decimal("16.425")
    assert prices.load_balancer_monthly("us-east-1", "gateway") == Decimal("9.125")
    assert prices.load_balancer_monthly("us-east-1", "classic") == Decimal("18.25")
    with pytest.raises(UnknownPrice, match="types: application, network, gateway, classic"):
        prices.load_balancer_monthly("us-east-1", "alb")


# --- RDS -------------------------------------------------------------------------------------------


def test_rds_instance_compute(prices: PriceCatalog) -> None:
    # us-east-1 db.m5.large: PostgreSQL $0.178/h, MySQL and MariaDB $0.171/h.
    assert prices.rds_instance_monthly("us-east-1", "db.m5.large", "postgres", False) == Decimal(
        "129.94"
    )
    mysql = prices.rds_instance_monthly("us-east-1", "db.m5.large", "mysql", False)
    assert mysql == Decimal("124.83")
    assert prices.rds_instance_monthly("us-east-1", "db.m5.large", "mariadb", False) == mysql
    assert prices.rds_instance_monthly("us-east-1", "db.t3.micro", "postgres", False) == Decimal(
        "13.14"
    )
    # Sizes scale linearly within a family: 24xlarge = 48 x large.
    assert prices.rds_instance_monthly("us-east-1", "db.r5.24xlarge", "mysql", False) == (
        prices.rds_instance_monthly("us-east-1", "db.r5.large", "mysql", False) * 48
    )


@pytest.mark.parametrize("engine", ["postgres", "mysql", "mariadb"])
@pytest.mark.parametrize(
    "instance_class", ["db.t3.micro", "db.t4g.medium", "db.m6g.2xlarge", "db.r6i.32xlarge"]
)
def test_multi_az_doubles_rds_compute(
    prices: PriceCatalog, engine: str, instance_class: str
) -> None:
    single = prices.rds_instance_monthly("eu-west-1", instance_class, engine, False)
    assert prices.rds_instance_monthly("eu-west-1", instance_class, engine, True) == single * 2


def test_aurora_instances_are_priced_each_on_their_own(prices: PriceCatalog) -> None:
    single = prices.rds_instance_monthly("us-east-1", "db.r6g.large", "aurora-postgresql", False)
    assert single == Decimal("0.26") * 730
    assert prices.rds_instance_monthly("us-east-1", "db.r6g.large", "aurora-postgresql", True) == (
        single
    )
    assert prices.rds_instance_monthly("us-east-1", "db.r6g.large", "aurora-mysql", False) == single


def test_unknown_instance_class_raises_a_clear_unknown_price(prices: PriceCatalog) -> None:
    with pytest.raises(UnknownPrice) as caught:
        prices.rds_instance_monthly("eu-west-1", "db.x9.large", "postgres", False)
    assert str(caught.value) == (
        f"no price for RDS db.x9.large (postgres) in eu-west-1 in catalog {prices.version}; "
        "run `cloudsweep pricing refresh`"
    )
    assert isinstance(caught.value, LookupError)


def test_licensed_and_unknown_engines_are_unknown(prices: PriceCatalog) -> None:
    with pytest.raises(UnknownPrice, match="license model"):
        prices.rds_instance_monthly("us-east-1", "db.m5.large", "oracle-ee", False)
    with pytest.raises(UnknownPrice, match="license model"):
        prices.rds_instance_monthly("us-east-1", "db.m5.large", "sqlserver-se", True)
    with pytest.raises(UnknownPrice, match="known engines: aurora"):
        prices.rds_instance_monthly("us-east-1", "db.m5.large", "cockroach", False)


def test_unknown_region_names_the_region(prices: PriceCatalog) -> None:
    with pytest.raises(UnknownPrice, match=r"in cn-north-1 in catalog .*not this one"):
        prices.public_ipv4_monthly("cn-north-1")


def test_rds_storage(prices: PriceCatalog) -> None:
    # us-east-1: gp2/gp3 $0.115/GB-month; gp3 $0.02/IOPS-month, $0.08/MiBps-month above baseline;
    # io1/io2 $0.125/GB-month + $0.10/IOPS-month; magnetic $0.10/GB-month. Multi-AZ twice.
    assert prices.rds_storage_monthly("us-east-1", "gp2", 100) == Decimal("11.5")
    assert prices.rds_storage_monthly("us-east-1", "gp2", 100, multi_az=True) == Decimal("23")
    assert prices.rds_storage_monthly("us-east-1", "gp3", 100) == Decimal("11.5")
    assert prices.rds_storage_monthly("us-east-1", "gp3", 100, 3000, 125) == Decimal("11.5")
    # From 400 GiB the baseline is 12,000 IOPS and 500 MiB/s: 57.5 + 3000 x 0.02 + 100 x 0.08
    assert prices.rds_storage_monthly("us-east-1", "gp3", 500, 15000, 600) == Decimal("125.5")
    assert prices.rds_storage_monthly(
        "us-east-1", "gp3", 500, 15000, 600, multi_az=True
    ) == Decimal("251")
    assert prices.rds_storage_monthly("us-east-1", "io1", 100, 1000) == Decimal("112.5")
    assert prices.rds_storage_monthly("us-east-1", "io2", 100, 1000, multi_az=True) == Decimal(
        "225"
    )
    assert prices.rds_storage_monthly("us-east-1", "standard", 100) == Decimal("10")
    with pytest.raises(UnknownPrice, match="RDS io1 storage without its provisioned IOPS"):
        prices.rds_storage_monthly("us-east-1", "io1", 100)
    with pytest.raises(UnknownPrice, match=r"RDS aurora storage in us-east-1.*types: gp2"):
        prices.rds_storage_monthly("us-east-1", "aurora", 100)


def test_rds_gp3_baseline_depends_on_the_engine(prices: PriceCatalog) -> None:
    # 300 GiB with 12,000 IOPS: PostgreSQL's baseline is still 3,000 below 400 GiB (9000 x 0.02
    # billed), Oracle's is 12,000 from 200 GiB, SQL Server's is always 3,000.
    assert prices.rds_storage_monthly("us-east-1", "gp3", 300, 12000) == Decimal("214.5")
    assert prices.rds_storage_monthly(
        "us-east-1", "gp3", 300, 12000, engine="oracle-ee"
    ) == Decimal("34.5")
    assert prices.rds_storage_monthly(
        "us-east-1", "gp3", 500, 12000, engine="sqlserver-se"
    ) == Decimal("237.5")


def test_rds_snapshot_storage(prices: PriceCatalog) -> None:
    # us-east-1: $0.095/GB-month of backup storage beyond the free amount; not doubled by
    # Multi-AZ, and cheaper per GB than the gp2/gp3 storage it replaces ($0.115).
    assert prices.rds_snapshot_monthly("us-east-1", 100) == Decimal("9.5")
    assert prices.rds_snapshot_monthly("us-east-1", Decimal("12.5")) == Decimal("1.1875")
    # eu-west-1: $0.095 too, as a May 2025 bill shows.
    assert prices.rds_snapshot_monthly("eu-west-1", 100) == Decimal("9.5")
    assert prices.rds_snapshot_monthly("us-east-1", 100) < prices.rds_storage_monthly(
        "us-east-1", "gp2", 100
    )
    with pytest.raises(ValueError, match="size_gib must not be negative"):
        prices.rds_snapshot_monthly("us-east-1", -1)


# --- loading other files ---------------------------------------------------------------------------


def _minimal_doc() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "version": "2026-01-01",
        "source": "test",
        "currency": "USD",
        "hours_per_month": "730",
        "regions": {
            "us-east-1": {
                "location": "US East (N. Virginia)",
                "basis": "published",
                "ebs_volumes": {"gp2": {"gb_month": "0.10"}},
                "ebs_snapshots": {},
                "load_balancers_hourly": {},
                "rds_instances": {},
                "rds_storage": {},
            }
        },
    }


def _write(tmp_path: Path, doc: dict[str, Any] | str) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_load_catalog_reads_another_file(tmp_path: Path) -> None:
    other = load_catalog(_write(tmp_path, _minimal_doc()))
    assert other.version == "2026-01-01"
    assert other.ebs_volume_monthly("us-east-1", "gp2", 10) == Decimal("1")
    with pytest.raises(UnknownPrice, match="public IPv4 addresses in us-east-1"):
        other.public_ipv4_monthly("us-east-1")
    # A catalog written before RDS snapshot prices were kept has none: unknown, not zero.
    with pytest.raises(UnknownPrice, match="RDS snapshot storage in us-east-1"):
        other.rds_snapshot_monthly("us-east-1", 100)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema_version=2), "schema_version 2 is not 1"),
        (lambda d: d.update(currency="EUR"), "currency must be USD"),
        (lambda d: d["regions"]["us-east-1"].pop("basis"), "basis must say how"),
        (
            lambda d: d["regions"]["us-east-1"]["ebs_volumes"]["gp2"].update(gb_month=True),
            r"ebs_volumes\.gp2\.gb_month must be a price string",
        ),
        (
            lambda d: d["regions"]["us-east-1"].update(rds_snapshot_gb_month="-0.1"),
            r"us-east-1\.rds_snapshot_gb_month must be a finite, non-negative price",
        ),
        (
            lambda d: d["regions"]["us-east-1"]["ebs_volumes"]["gp2"].update(
                iops_tiers=[{"up_to": None, "usd": "1"}, {"up_to": 5, "usd": "1"}]
            ),
            "only the last may be open",
        ),
    ],
)
def test_malformed_catalogs_are_refused_with_the_field_named(
    tmp_path: Path, change: Any, message: str
) -> None:
    doc = _minimal_doc()
    change(doc)
    with pytest.raises(InvalidCatalog, match=message):
        load_catalog(_write(tmp_path, doc))


def test_a_json_number_price_is_read_exactly(tmp_path: Path) -> None:
    # 0.1 as a float is 0.1000000000000000055...; read as Decimal it stays 0.1.
    text = json.dumps(_minimal_doc()).replace('"0.10"', "0.1")
    other = load_catalog(_write(tmp_path, text))
    assert other.ebs_volume_monthly("us-east-1", "gp2", 3) == Decimal("0.3")


def test_unreadable_and_invalid_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidCatalog, match="cannot read price catalog"):
        load_catalog(tmp_path / "missing.json")
    with pytest.raises(InvalidCatalog, match="not valid JSON"):
        load_catalog(_write(tmp_path, "{"))


def test_compute_network_and_storage_prices_of_the_published_regions() -> None:
    catalog = load_catalog()
    assert catalog.ec2_instance_monthly("us-east-1", "t3.micro") == Decimal("0.0104") * 730
    assert catalog.nat_gateway_monthly("us-east-1") == Decimal("0.045") * 730
    assert catalog.nat_gateway_monthly("us-east-1", 100) == Decimal("0.045") * 730 + Decimal("4.5")
    assert catalog.cloudwatch_logs_storage_monthly("us-east-1", 2**30 * 10) == Decimal("0.30")
    assert catalog.s3_standard_storage_monthly("us-east-1", 2**30) == Decimal("0.023")
    with pytest.raises(UnknownPrice, match=r"EC2 x9\.huge"):
        catalog.ec2_instance_monthly("us-east-1", "x9.huge")
    with pytest.raises(ValueError):
        catalog.nat_gateway_monthly("us-east-1", -1)
