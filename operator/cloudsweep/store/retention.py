"""Retention of the brief: scans 12 months, cleanup actions 24 months; via ``cloudsweep db retention``.

Observations are partitioned by month, so their retention drops whole partitions (instant, no
vacuum debt); the small unpartitioned tables are deleted from in bounded batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloudsweep.store import partitions

DELETE_BATCH = 5_000


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    scan_days: int = 365
    action_days: int = 730


def _delete_in_batches(session: Session, table: str, column: str, cutoff: datetime) -> int:
    deleted = 0
    while True:
        result = session.execute(
            sa.text(
                f"DELETE FROM {table} WHERE id IN "
                f"(SELECT id FROM {table} WHERE {column} < :cutoff LIMIT :batch)"
            ),
            {"cutoff": cutoff, "batch": DELETE_BATCH},
        )
        count = int(result.rowcount)  # type: ignore[attr-defined]
        deleted += count
        if count < DELETE_BATCH:
            return deleted


def apply(
    session: Session, now: datetime, policy: RetentionPolicy
) -> tuple[int, int, list[str], int]:
    """Apply retention and make next months' partitions; returns (scans, actions, dropped, created)."""
    scan_cutoff = now - timedelta(days=policy.scan_days)
    dropped = partitions.drop_before(session, scan_cutoff)
    scans = _delete_in_batches(session, "scan_results", "started_at", scan_cutoff)
    actions = _delete_in_batches(
        session, "cleanup_actions", "executed_at", now - timedelta(days=policy.action_days)
    )
    created = partitions.ensure(session, now)
    return scans, actions, dropped, created
