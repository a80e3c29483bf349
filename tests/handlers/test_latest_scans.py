"""LatestScans: every AwsAccount's timer reads the latest scans from one query per refresh."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudsweep.handlers.latest_scans import OVERLAP, LatestScans


class _Store:
    """Answers latest_scans_changed as PostgreSQL would, and counts the questions."""

    def __init__(self) -> None:
        self.asked: list[datetime | None] = []
        self.answer: dict[uuid.UUID, Any] = {}

    def latest_scans_changed(self, since: datetime | None) -> dict[uuid.UUID, Any]:
        self.asked.append(since)
        return dict(self.answer)


def test_one_query_per_refresh_for_all_accounts_then_only_what_changed() -> None:
    store, clock = _Store(), [0.0]
    start = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    accounts = [uuid.uuid4() for _ in range(1000)]
    store.answer = {a: f"scan-of-{a}" for a in accounts}
    latest = LatestScans(store, 30, now=lambda: start, clock=lambda: clock[0])  # type: ignore[arg-type]

    assert all(latest.get(a) == f"scan-of-{a}" for a in accounts)
    assert store.asked == [None]  # one query, for every account's latest

    clock[0] = 29.0
    store.answer = {accounts[0]: "newer"}
    assert latest.get(accounts[0]) == f"scan-of-{accounts[0]}"  # within the interval: memory
    clock[0] = 30.0
    assert latest.get(accounts[0]) == "newer"
    assert latest.get(accounts[1]) == f"scan-of-{accounts[1]}"  # unchanged ones are kept
    assert store.asked == [None, start - OVERLAP]
    assert timedelta(minutes=1) <= OVERLAP
