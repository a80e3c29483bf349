"""Refresh and read the materialized views ``savings_summary`` and ``waste_trends``; via ``Store``."""

from __future__ import annotations

import sqlalchemy as sa

from cloudsweep.store.models import MATERIALIZED_VIEWS


def refresh(connection: sa.Connection, *, concurrently: bool = True) -> tuple[str, ...]:
    """Refresh both views. CONCURRENTLY keeps them readable (Grafana, metrics) while refreshing."""
    mode = " CONCURRENTLY" if concurrently else ""
    for view in MATERIALIZED_VIEWS:
        connection.execute(sa.text(f"REFRESH MATERIALIZED VIEW{mode} {view}"))
    return MATERIALIZED_VIEWS
