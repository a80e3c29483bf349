"""Which price catalog a process uses: configured, refreshed by the user, or the bundled one.

Called by the scan run and the ``cloudsweep pricing`` commands.
"""

from __future__ import annotations

from pathlib import Path

from cloudsweep.pricing.catalog import PriceCatalog, load_catalog
from cloudsweep.settings import Settings, get_settings


def refreshed_catalog_path(settings: Settings) -> Path:
    """Where ``cloudsweep pricing refresh`` writes by default."""
    return settings.data_dir / "pricing" / "catalog.json"


def active_catalog_path(settings: Settings | None = None) -> Path | None:
    """CLOUDSWEEP_PRICE_CATALOG, else a refreshed catalog in the data dir, else None (bundled)."""
    settings = settings or get_settings()
    if settings.price_catalog is not None:
        return settings.price_catalog
    refreshed = refreshed_catalog_path(settings)
    return refreshed if refreshed.is_file() else None


def active_catalog(settings: Settings | None = None) -> PriceCatalog:
    return load_catalog(active_catalog_path(settings))
