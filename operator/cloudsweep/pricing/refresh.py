"""Rebuild the price catalog from AWS Price List items.

Called by the ``cloudsweep pricing refresh`` command, which pages ``pricing:GetProducts`` with
``aws.pricing_api.iter_price_lists`` (this package never talks to AWS itself) and hands the items
here; ``write_catalog`` then replaces the catalog file.
"""

from __future__ import annotations

from collections.abc import Iterable

from cloudsweep.pricing import build, catalog, offers
from cloudsweep.pricing.build import write_catalog

__all__ = ["refresh_catalog", "write_catalog"]


def refresh_catalog(
    price_lists: Iterable[str], *, version: str, source: str | None = None
) -> catalog.CatalogDoc:
    """Turn GetProducts ``PriceList`` JSON strings into a catalog document, validated.

    ``version`` is the refresh date (``2026-11-25``). Every region's basis says its figures
    were published by the Price List API on that date, since each one was read from it.
    """
    doc = build.build_catalog(
        offers.parse_price_lists(price_lists),
        version=version,
        source=source,
        basis=f"published: AWS Price List API (pricing:GetProducts), read on {version}",
    )
    if not doc["regions"]:
        raise catalog.InvalidCatalog(
            "the price lists held no on-demand region prices the catalog keeps; check the "
            "service codes and filters given to `cloudsweep pricing refresh`"
        )
    catalog.catalog_from_document(doc, origin="refreshed catalog")
    return doc
