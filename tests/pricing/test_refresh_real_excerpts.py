"""`cloudsweep pricing refresh` on real offer excerpts gives the figures the bundled catalog has.

The excerpts in ``data/real/`` were cut from real offer files and GetProducts responses (origin
and date in each file's ``_excerpt``). A local HTTP server answers the command's GetProducts
calls with them, by service code, the way the Price List API would; the command runs as a user
runs it (a subprocess, its own settings from the environment) and writes a catalog whose every
figure must equal the bundled catalog's figure at the same path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cloudsweep.pricing import load_catalog

REAL = Path(__file__).parent / "data" / "real"


def _real_price_list_items() -> list[str]:
    """The excerpts as GetProducts ``PriceList`` strings (the offer file re-shaped per SKU)."""
    items = list(
        json.loads((REAL / "getproducts_eu_west_1_2021-01-15.json").read_text())["PriceList"]
    )
    for name in (
        "offer_ec2_lyft_awspricing_20161213.json",
        "offer_ec2_us_east_2_opencost_20230322.json",
    ):
        items.extend(_as_price_list_items(json.loads((REAL / name).read_text())))
    return items


def _as_price_list_items(offer: dict[str, Any]) -> list[str]:
    items = []
    for sku, product in offer["products"].items():
        terms = {
            kind: offer["terms"][kind][sku]
            for kind in ("OnDemand", "Reserved")
            if sku in offer["terms"].get(kind, {})
        }
        items.append(
            json.dumps(
                {
                    "product": product,
                    "serviceCode": offer["offerCode"],
                    "terms": terms,
                    "version": offer["version"],
                }
            )
        )
    return items


class _PriceListApi(BaseHTTPRequestHandler):
    items: list[str] = []
    asked: list[str] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).asked.append(body["ServiceCode"])
        matching = [i for i in self.items if json.loads(i)["serviceCode"] == body["ServiceCode"]]
        data = json.dumps({"FormatVersion": "aws_v1", "PriceList": matching}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def price_list_api() -> Iterator[tuple[str, type[_PriceListApi]]]:
    handler = type("Handler", (_PriceListApi,), {"items": _real_price_list_items(), "asked": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def _figures(path: Path | None) -> dict[tuple[str, str], Decimal]:
    prices = load_catalog(path)
    return {
        (region, figure.path): figure.usd
        for region in prices.regions
        for figure in prices.figures(region)
    }


def test_refresh_on_real_excerpts_yields_the_bundled_catalogs_figures(
    price_list_api: tuple[str, type[_PriceListApi]], tmp_path: Path
) -> None:
    url, handler = price_list_api
    target = tmp_path / "refreshed.json"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSWEEP_", "AWS_"))}
    environment.update(
        {
            "CLOUDSWEEP_AWS_ENDPOINT_URL": url,
            "CLOUDSWEEP_DATA_DIR": str(tmp_path / "data"),
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "cloudsweep.cli", "pricing", "refresh", "--to", str(target)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert {"AmazonEC2", "AmazonRDS", "AWSELB"} <= set(handler.asked)

    refreshed = _figures(target)
    bundled = _figures(None)
    # What the excerpts publish, and nothing else: the reserved fees, the NAT bytes with
    # provisioned bandwidth, the classic load balancer's per-GB charge are not taken.
    assert set(refreshed) == {
        ("us-east-1", "ec2_instances_hourly/c4.large"),
        ("us-east-1", "ebs_snapshots/standard"),
        ("ca-central-1", "load_balancers_hourly/application"),
        ("ap-south-1", "ebs_volumes/gp2/gb_month"),
        ("eu-west-1", "ec2_instances_hourly/t2.micro"),
        ("us-east-2", "ebs_volumes/gp3/gb_month"),
    }
    for key, usd in refreshed.items():
        assert bundled[key] == usd, key
    # And the bundled catalog says it read them from those excerpts.
    prices = load_catalog()
    basis = prices.figure_basis("eu-west-1", "ec2_instances_hourly/t2.micro")
    assert basis.source is not None and basis.source.date == "2021-01-15"
