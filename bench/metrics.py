"""Time a full ``/metrics`` scrape with 100,000 current waste items in the database.

The items are spread over 3 namespaces, 10 accounts, 3 regions, 5 resource types, 4 risk levels;
each account also has a week of hourly scans. Scrapes go through the HTTP endpoint the operator
serves (``metrics.serve``), so the figure includes the five queries, the exposition and HTTP.
"""

from __future__ import annotations

import statistics
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
import typer

from bench.common import fresh_database, machine, peak_rss_mib
from cloudsweep import domain, metrics
from cloudsweep.store import Store
from cloudsweep.store.engine import get_engine

NAMESPACES = ("team-a", "team-b", "team-c")
ACCOUNTS = tuple(f"{100000000000 + i:012d}" for i in range(10))
REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
TYPES = ("ebs-volume", "ebs-snapshot", "elastic-ip", "load-balancer", "rds-instance")
RISKS = tuple(domain.RiskLevel)
CHUNK = 5_000


def _findings(account: int, count: int) -> list[domain.Finding]:
    return [
        domain.Finding(
            resource_type=TYPES[i % 5],
            resource_id=f"r-{account:02d}-{i:012x}",
            region=REGIONS[i % 3],
            monthly_cost=Decimal(i % 500) + Decimal("0.37"),
            confidence=1 + i % 100,
            risk=RISKS[i % 4],
            evidence=("idle for 30 days",),
            details={"size_gib": 100 + i % 900},
        )
        for i in range(count)
    ]


def _scrape(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return time.perf_counter() - start, len(body)


def run(
    count: int = typer.Option(100_000, "--count", "-n", help="How many waste items."),
    scrapes: int = typer.Option(10, "--scrapes", help="How many timed scrapes."),
    scans_per_account: int = typer.Option(168, "--scans", help="Scan history per account."),
) -> None:
    """Store COUNT items, then time SCRAPES full scrapes of /metrics and print median and max."""
    per_account = count // len(ACCOUNTS)
    with fresh_database() as url:
        store = Store(url)
        now = datetime.now(UTC)
        load_start = time.perf_counter()
        for index, account_id in enumerate(ACCOUNTS):
            org = store.ensure_organization(NAMESPACES[index % len(NAMESPACES)])
            account = store.register_account(
                org.id,
                account_id=account_id,
                role_arn=f"arn:aws:iam::{account_id}:role/bench",
                external_id=None,
                regions=list(REGIONS),
            )
            store.set_connection(account.id, domain.ConnectionStatus.CONNECTED)
            for hour in range(scans_per_account, 0, -1):
                started = now - timedelta(hours=hour)
                scan = store.open_scan(
                    account.id, scan_type=domain.ScanType.FULL, regions=REGIONS, started_at=started
                )
                if hour == 1:
                    rows = _findings(index, per_account)
                    for offset in range(0, len(rows), CHUNK):
                        store.upsert_findings(scan, rows[offset : offset + CHUNK])
                status = domain.ScanStatus.FAILED if hour % 50 == 0 else domain.ScanStatus.COMPLETED
                store.close_scan(
                    scan,
                    status=status,
                    completed_at=started + timedelta(seconds=5 + hour % 300),
                    resources_scanned=per_account,
                )
        load = time.perf_counter() - load_start
        server = metrics.serve(0, url, addr="127.0.0.1")
        endpoint = f"http://127.0.0.1:{server.port}/metrics"
        try:
            # Right after the bulk load, before any statistics: the worst case, once.
            unanalyzed, _ = _scrape(endpoint)
            # What autovacuum does within a minute of such a load; the steady state.
            with get_engine(url).connect() as conn:
                conn.execute(sa.text("ANALYZE"))
                conn.commit()
            _scrape(endpoint)  # warm PostgreSQL's caches after the new plans
            timings = []
            size = 0
            for _ in range(scrapes):
                seconds, size = _scrape(endpoint)
                timings.append(seconds)
            query = server.registry.get_sample_value("cloudsweep_metrics_query_duration_seconds")
            with urllib.request.urlopen(endpoint, timeout=30) as response:
                series = sum(
                    1 for line in response.read().splitlines() if line and not line.startswith(b"#")
                )
        finally:
            server.stop()
    print(f"machine: {machine()}")
    print(
        f"waste items: {per_account * len(ACCOUNTS):,} current, {len(NAMESPACES)} namespaces, "
        f"{len(ACCOUNTS)} accounts, {len(REGIONS)} regions, {len(TYPES)} types; "
        f"scans: {scans_per_account * len(ACCOUNTS):,} (loaded in {load:.1f} s)"
    )
    print(f"exposition: {series:,} samples, {size / 1024:.0f} KiB")
    print(
        f"scrape over HTTP ({scrapes} runs): median {statistics.median(timings) * 1000:.0f} ms, "
        f"max {max(timings) * 1000:.0f} ms, min {min(timings) * 1000:.0f} ms"
    )
    print(f"first scrape right after the load, before ANALYZE: {unanalyzed * 1000:.0f} ms")
    if query is not None:
        print(f"database part of the last scrape: {query * 1000:.0f} ms")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
