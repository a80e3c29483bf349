"""Prices of the resources CloudSweep finds: an embedded, versioned catalog and its refresh.

Called by the detectors (``load_catalog().ebs_volume_monthly(...)``) and by the command line
(``cloudsweep pricing refresh`` uses ``refresh_catalog`` and ``write_catalog``).
"""

from cloudsweep.pricing.catalog import (
    HOURS_PER_MONTH,
    RDS_ENGINES,
    InvalidCatalog,
    PriceCatalog,
    UnknownPrice,
    bundled_catalog_path,
    load_catalog,
)
from cloudsweep.pricing.refresh import refresh_catalog, write_catalog

__all__ = [
    "HOURS_PER_MONTH",
    "RDS_ENGINES",
    "InvalidCatalog",
    "PriceCatalog",
    "UnknownPrice",
    "bundled_catalog_path",
    "load_catalog",
    "refresh_catalog",
    "write_catalog",
]
