"""Timers write only what changed; an "evaluated at" heartbeat alone waits five minutes."""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf

from cloudsweep.handlers import awsaccounts, common


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


def test_a_rewritten_status_is_not_rewritten_while_the_view_lags() -> None:
    """The reconcile's status is rewritten once the object, as this process sees it, has
    changed without it for two refresh intervals; then that rewrite is waited for like the
    reconcile's patch: a view minutes behind (1,000 AwsAccounts on a loaded machine) rewrote every
    object at every tick."""
    status = {"observedGeneration": 1, "externalId": "cs-x"}
    memo: dict[str, Any] = {
        awsaccounts._RECONCILED: awsaccounts.Reconciled(
            generation=1, status=status, resource_version="10", at=time.monotonic() - 120
        )
    }
    lagging = {"metadata": {"generation": 1, "resourceVersion": "11"}, "status": {}}
    log = logging.getLogger("test")

    first, again, later = kopf.Patch(), kopf.Patch(), kopf.Patch()
    awsaccounts._restore_status(memo, kopf.Body(lagging), first, log, refresh_seconds=30)
    awsaccounts._restore_status(memo, kopf.Body(lagging), again, log, refresh_seconds=30)
    newer = {**lagging, "metadata": {"generation": 1, "resourceVersion": "12"}}
    awsaccounts._restore_status(memo, kopf.Body(newer), later, log, refresh_seconds=30)

    assert dict(first.status) == status
    assert not again and not later
    landed = {**newer, "status": status}
    awsaccounts._restore_status(memo, kopf.Body(landed), kopf.Patch(), log, refresh_seconds=30)
    assert awsaccounts._RECONCILED not in memo
