"""``cloudsweep db status``'s figures: the database's schema revision, the newest one the
migrations know, and the exact number of rows of every table."""

from __future__ import annotations

import sqlalchemy as sa

from cloudsweep import domain
from cloudsweep.store import Store
from cloudsweep.store.engine import get_engine

from .conftest import T0, finding


def test_status_gives_the_revision_and_every_tables_row_count(store: Store, make_account) -> None:
    account = make_account()
    store.ensure_organization("team-b")
    scan = store.open_scan(
        account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=T0
    )
    store.upsert_findings(scan, [finding("vol-1"), finding("vol-2"), finding("vol-3")])
    with get_engine(store.url).connect() as conn:
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        # The tables, not the partitions of waste_item_observations (counted in it) nor Alembic's.
        tables = conn.execute(
            sa.text(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                "AND relkind IN ('r', 'p') AND NOT relispartition AND relname <> 'alembic_version'"
            )
        ).scalars()
        expected = {name: 0 for name in tables}

    expected |= {
        "organizations": 2,
        "aws_accounts": 1,
        "aws_account_claims": 1,
        "scan_results": 1,
        "waste_items": 3,
        "waste_item_observations": 3,
    }
    assert store.status() == {"revision": revision, "head": revision, "tables": expected}
