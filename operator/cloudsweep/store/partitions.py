"""Monthly partitions of ``waste_item_observations``: made ahead of time, dropped by retention."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloudsweep.store.models import OBSERVATION_PARTITION_PREFIX

_NAME_RE = re.compile(
    re.escape(OBSERVATION_PARTITION_PREFIX) + r"(?P<year>\d{4})m(?P<month>\d{2})$"
)
MONTHS_AHEAD = 3


def ensure(session: Session, now: datetime, *, months_ahead: int = MONTHS_AHEAD) -> int:
    """Make the partitions for ``now``'s month and ``months_ahead`` after it; return how many were new."""
    first = date(now.astimezone(UTC).year, now.astimezone(UTC).month, 1)
    created = session.execute(
        sa.text("SELECT cloudsweep_ensure_observation_partitions(:first, :months)"),
        {"first": first, "months": months_ahead + 1},
    ).scalar_one()
    return int(created)


def existing(session: Session) -> list[tuple[str, date]]:
    """The observation partitions and the first day of the month each holds, oldest first."""
    names = session.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'waste_item_observations'::regclass"
        )
    ).scalars()
    found = []
    for name in names:
        match = _NAME_RE.fullmatch(name)
        if match:
            found.append((name, date(int(match["year"]), int(match["month"]), 1)))
    return sorted(found, key=lambda item: item[1])


def drop_before(session: Session, cutoff: datetime) -> list[str]:
    """Drop every partition whose whole month ends on or before ``cutoff``; return their names."""
    cutoff_day = cutoff.astimezone(UTC).date()
    dropped = []
    for name, month in existing(session):
        next_month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        if next_month <= cutoff_day:
            session.execute(sa.text(f'DROP TABLE "{name}"'))
            dropped.append(name)
    return dropped
