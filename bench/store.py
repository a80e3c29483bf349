"""Upsert 100,000 findings into PostgreSQL: first insert, re-upsert, and a plain COPY as the ceiling.

The ceiling is a COPY of the same rows into ``waste_items`` itself, which maintains the same
indexes, checks and foreign keys; a COPY into a bare table shows what those cost.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
import typer

from bench.common import fresh_database, machine, peak_rss_mib
from cloudsweep import domain
from cloudsweep.store import BATCH_SIZE, Store
from cloudsweep.store import findings as store_findings
from cloudsweep.store.engine import get_engine

CHUNK = 5_000  # findings per Store.upsert_findings call, as a scan streams them


def _findings(count: int) -> list[domain.Finding]:
    regions = ("us-east-1", "us-west-2", "eu-west-1")
    return [
        domain.Finding(
            resource_type="ebs-volume",
            resource_id=f"vol-{i:017x}",
            region=regions[i % 3],
            monthly_cost=Decimal(i % 500) + Decimal("0.37"),
            confidence=1 + i % 100,
            risk=domain.RiskLevel.LOW,
            resource_arn=f"arn:aws:ec2:{regions[i % 3]}:111111111111:volume/vol-{i:017x}",
            availability_zone=f"{regions[i % 3]}a",
            evidence=(f"unattached since 2026-0{1 + i % 9}-01", "no I/O in 30 days"),
            safety_checks=(domain.SafetyCheck("protection-tag", True, "no protection tag"),),
            tags={"team": f"team-{i % 40}", "Name": f"data-{i}"},
            details={"volume_type": "gp3", "size_gib": 100 + i % 900},
        )
        for i in range(count)
    ]


def _timed_upsert(store: Store, scan: object, rows: list[domain.Finding]) -> float:
    start = time.perf_counter()
    for offset in range(0, len(rows), CHUNK):
        store.upsert_findings(scan, rows[offset : offset + CHUNK])  # type: ignore[arg-type]
    return time.perf_counter() - start


def _timed_copy_into_waste_items(
    url: str, account_uuid: object, rows: list[domain.Finding]
) -> float:
    """COPY the same rows into waste_items itself: same indexes, constraints and foreign keys."""
    columns = ", ".join(("aws_account_id", *store_findings._STAGE_COLUMNS))
    start = time.perf_counter()
    with get_engine(url).begin() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY waste_items ({columns}) FROM STDIN") as copy,
        ):
            for finding in rows:
                copy.write_row((account_uuid, *store_findings._stage_row(finding)))
    return time.perf_counter() - start


def _timed_copy_bare(url: str, rows: list[domain.Finding]) -> float:
    """COPY the same rows into a table with waste_items' columns and nothing else."""
    columns = ", ".join(store_findings._STAGE_COLUMNS)
    with get_engine(url).begin() as conn:
        conn.execute(sa.text("CREATE TABLE copy_bare (LIKE waste_items INCLUDING DEFAULTS)"))
        conn.execute(sa.text("ALTER TABLE copy_bare ALTER COLUMN aws_account_id DROP NOT NULL"))
    start = time.perf_counter()
    with get_engine(url).begin() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(f"COPY copy_bare ({columns}) FROM STDIN") as copy:
            for finding in rows:
                copy.write_row(store_findings._stage_row(finding))
    return time.perf_counter() - start


def run(count: int = typer.Option(100_000, "--count", "-n", help="How many findings.")) -> None:
    """Upsert COUNT findings twice, then COPY them, and print rows per second for each."""
    rows = _findings(count)
    with fresh_database() as url:
        store = Store(url)
        org = store.ensure_organization("bench")
        account = store.register_account(
            org.id,
            account_id="111111111111",
            role_arn="arn:aws:iam::111111111111:role/bench",
            external_id=None,
            regions=["us-east-1"],
        )
        now = datetime.now(UTC)
        first_scan = store.open_scan(
            account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=now
        )
        first = _timed_upsert(store, first_scan, rows)
        second_scan = store.open_scan(
            account.id, scan_type=domain.ScanType.FULL, regions=["us-east-1"], started_at=now
        )
        again = _timed_upsert(store, second_scan, rows)
        other = store.register_account(
            org.id,
            account_id="222222222222",
            role_arn="arn:aws:iam::222222222222:role/bench",
            external_id=None,
            regions=["us-east-1"],
        )
        copy_same = _timed_copy_into_waste_items(url, other.id, rows)
        copy_bare = _timed_copy_bare(url, rows)
    print(f"machine: {machine()}")
    print(f"findings: {count:,} in calls of {CHUNK:,} (statements of {BATCH_SIZE:,})")
    for label, seconds in [
        ("upsert, first insert", first),
        ("upsert, same rows again", again),
        ("COPY into waste_items (the ceiling)", copy_same),
        ("COPY into a bare table, no indexes", copy_bare),
    ]:
        print(f"{label:40s} {seconds:7.2f} s  {count / seconds:10,.0f} rows/s")
    print(f"first insert / COPY into waste_items: {copy_same / first:.2f}")
    print(f"re-upsert / COPY into waste_items:    {copy_same / again:.2f}")
    print(f"first insert / bare COPY:             {copy_bare / first:.2f}")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
