"""The webhook's admission records: the first record of a CleanupApproval's UID is kept as it was
written, a later one for the same UID is refused, and each UID reads back its own."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from cloudsweep.store import AdmissionRecord, Store

CREATED = datetime(2026, 12, 4, 20, 0, 0, tzinfo=UTC)


def _admitted(uid: str, name: str) -> AdmissionRecord:
    return AdmissionRecord(
        object_uid=uid,
        namespace="team-a",
        name=name,
        spec_hash="a" * 64,
        policy_name="idle-ips",
        policy_hash="b" * 64,
        username="maria@example.com",
        groups=("payments-leads", "oncall"),
        object_created_at=CREATED,
        admitted_at=CREATED + timedelta(seconds=2),
    )


def test_the_first_admission_of_an_object_is_kept_and_read_back_as_written(store: Store) -> None:
    first = _admitted("uid-1", "release-ip")
    other = replace(_admitted("uid-2", "release-other-ip"), groups=(), object_created_at=None)
    assert store.record_admission(first) is True
    assert store.record_admission(other) is True

    forged = replace(first, username="mallory@example.com", spec_hash="c" * 64)
    assert store.record_admission(forged) is False

    assert store.admission("uid-1") == first
    assert store.admission("uid-2") == other
    assert store.admission("uid-3") is None
