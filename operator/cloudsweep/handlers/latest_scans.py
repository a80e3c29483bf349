"""The latest scan of every account, for the AwsAccounts' status: one query per refresh, process-wide.

Called by the ``publish-totals`` timer of every AwsAccount (``handlers.awsaccounts``). Each timer
used to ask PostgreSQL three questions every ``status_refresh_seconds`` (organization, account,
latest scan): at 1,000 accounts, 100 queries a second for status that rarely changes (issue 16).
Now the first timer due after a refresh interval asks once, for the scans started or finished
since the last refresh (with an overlap for clocks and transactions in flight), and every timer
reads the answer from memory. Scans run by another process (``cloudsweep scan``, a scan Job) are
seen the same way, within one interval.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from cloudsweep.store import ScanRecord, Store

# Scans whose rows were written this long before the previous refresh are asked for again: the
# database's clock may differ from ours, and a transaction may commit a row stamped earlier.
OVERLAP = timedelta(minutes=5)


class LatestScans:
    def __init__(
        self,
        store: Store,
        refresh_seconds: float,
        now: Callable[[], datetime],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._now = now
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: dict[uuid.UUID, ScanRecord] = {}
        self._asked_at: datetime | None = None  # None: never asked, the first asks for all
        self._next_refresh = 0.0

    def cached(self, account_uuid: uuid.UUID) -> tuple[bool, ScanRecord | None]:
        """(True, the latest scan) when the answer in memory is fresh, else (False, None): then
        :meth:`get` asks the database. Never waits: for kopf's event loop."""
        if not self._lock.acquire(blocking=False):
            return False, None  # a refresh is under way in a thread
        try:
            if self._clock() >= self._next_refresh:
                return False, None
            return True, self._latest.get(account_uuid)
        finally:
            self._lock.release()

    def get(self, account_uuid: uuid.UUID) -> ScanRecord | None:
        """The account's latest scan, at most ``refresh_seconds`` old."""
        with self._lock:
            if self._clock() >= self._next_refresh:
                asked_at = self._now()
                since = self._asked_at - OVERLAP if self._asked_at is not None else None
                self._latest.update(self._store.latest_scans_changed(since))
                self._asked_at = asked_at
                self._next_refresh = self._clock() + self._refresh_seconds
            return self._latest.get(account_uuid)
