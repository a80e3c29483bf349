"""Timers write only what changed; an "evaluated at" heartbeat alone waits five minutes."""

from __future__ import annotations

from typing import Any

from cloudsweep.handlers import common


def _pruned(patch_status: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {"status": dict(patch_status)}
    common.drop_unchanged_status(patch, {"status": current}, "lastEvaluationTime", 300)
    return patch


def test_unchanged_fields_and_absent_nulls_are_dropped() -> None:
    current = {"matched": 2, "conditions": [{"type": "Ready", "status": "True"}]}
    assert (
        _pruned(
            {"matched": 2, "conditions": [{"type": "Ready", "status": "True"}], "gone": None},
            current,
        )
        == {}
    )
    assert _pruned({"matched": 3}, current) == {"status": {"matched": 3}}


def test_the_heartbeat_alone_is_written_only_when_old() -> None:
    current = {"matched": 2, "lastEvaluationTime": "2026-11-25T10:00:00Z"}
    assert _pruned({"matched": 2, "lastEvaluationTime": "2026-11-25T10:04:59Z"}, current) == {}
    assert _pruned({"lastEvaluationTime": "2026-11-25T10:05:00Z"}, current) == {
        "status": {"lastEvaluationTime": "2026-11-25T10:05:00Z"}
    }
    # With a real change it goes along at once.
    assert _pruned({"matched": 3, "lastEvaluationTime": "2026-11-25T10:00:30Z"}, current) == {
        "status": {"matched": 3, "lastEvaluationTime": "2026-11-25T10:00:30Z"}
    }
